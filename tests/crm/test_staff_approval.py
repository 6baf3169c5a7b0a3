"""Approving a hold can supply what the session lacked: the service, the client's email, or both."""

import pytest
from django.core import mail

from crm.models import Activity, Client, Onboarding
from crm.services.staff import onboarding_approve
from provisioning.models import Workspace
from tests.factories import ServiceFactory
from tests.support.pipeline import run_queued_tasks, run_with_commit_hooks
from tests.support.staff import staff_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("anymail_outbox")]

Status = Onboarding.Status
Held = Onboarding.HeldReason


@pytest.fixture
def operations(db):
    return staff_user("Operations")


def approve(onboarding, **supplied):
    actor = supplied.pop("actor")
    message = run_with_commit_hooks(onboarding_approve, onboarding=onboarding, actor=actor, **supplied)
    run_queued_tasks()
    onboarding.refresh_from_db()
    return message


def test_staff_pick_the_service_for_an_unknown_service_id(pipeline, operations):
    seo = ServiceFactory(service_id="seo", name="SEO")
    pipeline.pay_and_process(service_id="seo-typo")
    held = Onboarding.objects.get()
    assert (held.status, held.held_reason) == (Status.HELD, Held.SERVICE_UNKNOWN)

    assert "Still held" in approve(held, actor=operations)  # approving alone cannot fix it
    approve(held, actor=operations, service=seo)
    assert (held.status, held.service) == (Status.ONBOARDED, seo)
    assert Workspace.objects.get().service == seo
    assert Activity.objects.filter(
        summary__startswith="Service set by staff: SEO", actor__isnull=False
    ).exists()


def test_several_reasons_at_once_need_each_fixed_before_the_onboarding_resumes(pipeline, operations):
    seo = ServiceFactory(service_id="seo", name="SEO")
    pipeline.pay_and_process(email=None, service_id="")
    held = Onboarding.objects.get()
    # Every reason is checked; the first (most basic) is shown.
    assert held.held_reason == Held.EMAIL_MISSING

    approve(held, actor=operations, service=seo)
    assert (held.status, held.held_reason) == (Status.HELD, Held.EMAIL_MISSING)
    approve(held, actor=operations, email="  Found@Example.com ")
    assert held.status == Status.ONBOARDED
    client = Client.objects.get()
    assert (client.email, client.ordered_service) == ("found@example.com", seo)
    assert mail.outbox[0].to == ["found@example.com"]
    assert Activity.objects.filter(summary__startswith="Client email set by staff").count() == 1


def test_the_admin_approve_action_takes_the_service_and_email(pipeline, operations, client):
    seo = ServiceFactory(service_id="seo", name="SEO")
    pipeline.pay_and_process(email=None, service_id="typo")
    held = Onboarding.objects.get()
    client.force_login(operations)
    data = {
        "action": "approve",
        "_selected_action": [str(held.pk)],
        "service": str(seo.pk),
        "email": "found@example.com",
        "note": "",
    }
    run_with_commit_hooks(client.post, "/admin/crm/heldonboarding/", data, follow=True)
    run_queued_tasks()
    held.refresh_from_db()
    assert (held.status, held.service, held.client.email) == (Status.ONBOARDED, seo, "found@example.com")
