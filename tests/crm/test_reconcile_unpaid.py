"""Reconciliation reports an onboarding still awaiting payment after its session expired, of any age."""

import time

import pytest

from crm.models import Onboarding
from crm.reconcile import Fix, reconciliation_run

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("service", "anymail_outbox")]

DAY = 24 * 3600


def awaiting_payment(pipeline, *, created: int) -> Onboarding:
    """A delayed-payment checkout whose completion arrived and whose payment never resolved."""
    checkout = pipeline.checkout(email="slow@example.com", delayed="failed", created=created)
    pipeline.deliver(checkout["events"][0])  # checkout.session.completed, payment_status unpaid
    pipeline.work()
    onboarding = Onboarding.objects.get()
    assert onboarding.status == Onboarding.Status.AWAITING_PAYMENT
    return onboarding


@pytest.mark.parametrize("days_ago", [2, 45])
def test_an_unpaid_session_past_its_expiry_is_left_for_staff(pipeline, days_ago):
    onboarding = awaiting_payment(pipeline, created=int(time.time()) - days_ago * DAY)

    _, report = reconciliation_run(days=7, fix=Fix.SAFE)
    [finding] = [f for f in report.findings if f.ref.startswith(f"onboarding {onboarding.id} ")]
    assert "session expired" in finding.detail and finding.state == "for_staff"


def test_an_unpaid_session_before_its_expiry_is_not_reported(pipeline):
    onboarding = awaiting_payment(pipeline, created=int(time.time()) - 3600)

    _, report = reconciliation_run(days=7, fix=Fix.NONE)
    assert not [f for f in report.findings if f.ref.startswith(f"onboarding {onboarding.id} ")]
