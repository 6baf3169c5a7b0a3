"""The backfill imports the money history (paid invoices, refunds, disputes) with list requests, into
the same ledger rows webhook processing makes, each once: twice, or after the webhooks, changes nothing."""

import io
import json
from collections import Counter

import pytest
from django.core.management import call_command

from crm.models import Activity, Client, MoneyMovement, Onboarding
from tests.factories import ServiceFactory
from tests.support.money import DAY, T0, assert_matches_sandbox, deliver_shuffled, undelivered, work_all

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("anymail_outbox")]

LISTS = {
    "GET /v1/checkout/sessions",
    "GET /v1/invoices",
    "GET /v1/refunds",
    "GET /v1/disputes",
}


@pytest.fixture
def services(db):
    ServiceFactory(service_id="website-care", name="Website Care Plan")
    ServiceFactory(service_id="retainer", name="Monthly retainer")


def history(pipeline) -> list[str]:
    """Every kind of money the ledger records, undelivered; returns the event ids."""
    sandbox = pipeline.sandbox
    events: list[str] = []

    def checkout(**fields):
        result = pipeline.checkout(**fields)
        events.extend(event["id"] for event in result["events"])
        return result["session"]

    paid = checkout(
        email="ada@example.com", service_id="website-care", amount=10000, currency="usd", created=T0
    )
    events += undelivered(sandbox.refund(paid["id"], amount=2500, created=T0 + DAY, deliver=False))
    events += undelivered(
        sandbox.refund(paid["id"], amount=500, fail=True, created=T0 + 2 * DAY, deliver=False)
    )
    lost = checkout(
        email="bob@example.com", service_id="website-care", amount=6000, currency="gbp", created=T0 + 60
    )
    events += undelivered(
        sandbox.dispute(lost["id"], outcome="lost", created=T0 + DAY, closed=T0 + 9 * DAY, deliver=False)
    )
    won = checkout(
        email="cy@example.com", service_id="website-care", amount=7000, currency="usd", created=T0 + 120
    )
    events += undelivered(
        sandbox.dispute(won["id"], outcome="won", created=T0 + DAY, closed=T0 + 9 * DAY, deliver=False)
    )
    sub = checkout(
        email="dee@example.com",
        service_id="retainer",
        amount=50000,
        currency="eur",
        mode="subscription",
        created=T0 + 180,
    )
    events += undelivered(sandbox.renew_subscription(sub["subscription"], deliver=False))
    events += undelivered(
        sandbox.create_invoice(
            amount=120000,
            service_id="retainer",
            currency="eur",
            email="eve@example.com",
            name="Eve",
            created=T0 + 240,
            deliver=False,
        )
    )
    return events


def backfill(*, work: bool = True) -> dict:
    out = io.StringIO()
    call_command(
        "backfill_onboarding", "--since", "2025-12-01", "--until", "2026-12-01", "--json", stdout=out
    )
    summary = json.loads(out.getvalue())
    if work:
        work_all()  # the worker: welcome emails, workspaces, settlements
    return summary


def crm_state() -> dict:
    return {
        "movements": sorted(
            MoneyMovement.objects.values_list(
                "stripe_id",
                "kind",
                "status",
                "counts",
                "amount",
                "currency",
                "client__email",
                "settlement_net",
                "settlement_transactions",
            )
        ),
        "clients": sorted(
            Client.objects.values_list("email", "invoiced_value", "currency", "lifecycle_status")
        ),
        "onboardings": sorted(
            Onboarding.objects.values_list("checkout_session_id", "status", "email_status")
        ),
        "activities": Counter(Activity.objects.values_list("client__email", "summary")),
    }


def test_backfill_records_the_money_history_with_list_requests_once(pipeline, services):
    sandbox = pipeline.sandbox
    history(pipeline)
    sandbox.reset_request_counts()

    summary = backfill(work=False)
    # The backfill lists: one request a page and kind, never one per session, invoice, refund,
    # dispute, customer, charge or payment intent. (Known gap: dj-stripe's mirror sync of a
    # subscription-mode session and of a stand-alone invoice still retrieves the subscription, its
    # payment method and the product; those are not in the expansions yet.)
    assert summary["stripe_requests"] == summary["pages"] == 4
    requests = sandbox.request_counts()
    assert {key for key in requests if "{id}" not in key} <= LISTS | {"GET /v1/account", "total"}
    per_object = ("invoices", "refunds", "disputes", "customers", "charges", "payment_intents", "checkout")
    assert not [key for key in requests if "{id}" in key and key.split("/")[2] in per_object]
    sandbox.reset_request_counts()
    work_all()  # the worker: welcome emails, workspaces, settlements (as after webhooks)
    # Refunds and disputes came settled in their lists. (Known gap: each payment's settle task
    # still reads its payment intent, and an invoice's payments first: 1-2 requests a payment.)
    after_import = set(sandbox.request_counts())
    assert after_import <= {"GET /v1/invoice_payments", "GET /v1/payment_intents/{id}", "total"}, after_import

    assert summary["status"] == "completed"
    assert summary["counts"]["ledger"] == {"invoices": 3, "refunds": 2, "disputes": 2, "failed": 0}
    assert_matches_sandbox(sandbox)
    assert Client.objects.get(email="bob@example.com").invoiced_value == 0  # the lost dispute
    assert MoneyMovement.objects.get(kind=MoneyMovement.Kind.REFUND, status="failed").counts is False
    # Each refund and dispute read from its list is on its client's timeline, as a webhook puts it.
    children = MoneyMovement.objects.filter(kind__in=["refund", "dispute"])
    for child in children:
        assert Activity.objects.filter(
            client=child.client, detail__startswith=f"{child.kind.title()} {child.stripe_id}"
        )

    before = crm_state()
    sandbox.reset_request_counts()
    assert backfill()["counts"]["ledger"]["failed"] == 0
    assert crm_state() == before


def test_backfill_after_the_webhooks_changes_nothing_and_equals_them(pipeline, services):
    sandbox = pipeline.sandbox
    deliver_shuffled(pipeline, history(pipeline), seed=5)
    by_webhooks = crm_state()

    backfill()

    assert crm_state() == by_webhooks
    assert_matches_sandbox(sandbox)
