"""Stripe requests per onboarding, counted by the sandbox (goal: at most 2 for a paid checkout), and
the API version every request asks for."""

import io

import pytest
import stripe
from django.core.management import call_command
from djstripe.models import Customer, PaymentIntent, PaymentMethod, Session

from crm.models import MoneyMovement, Onboarding
from stripe_events.stripe_client import stripe_api_key
from stripe_events.webhook_jobs import PROCESS_TASK
from tests.factories import ServiceFactory
from tests.support.money import assert_matches_sandbox, deliver_shuffled, undelivered
from tests.support.pipeline import queued_task_names, run_next_task, run_queued_tasks

pytestmark = pytest.mark.django_db


def stripe_json(obj) -> dict:
    return obj.to_dict(for_json=True)


def test_a_paid_checkout_is_onboarded_and_settled_with_one_stripe_request(pipeline, service, sandbox):
    pipeline.pay_and_process(email="warm@example.com")  # dj-stripe reads the account once per key
    sandbox.reset_request_counts()

    result = pipeline.pay_and_process(email="one@example.com")

    counts = sandbox.request_counts()
    assert Onboarding.objects.get(checkout_session_id=result["session"]["id"]).status == "onboarded"
    # The session's retrieve brings the charge and its balance transaction: no settle request.
    assert counts == {"total": 1, "GET /v1/checkout/sessions/{id}": 1}, counts
    payment = MoneyMovement.objects.get(stripe_id=result["session"]["id"])
    assert payment.charge_id.startswith("ch_") and payment.settlement_net is not None
    assert_matches_sandbox(sandbox)


def test_a_charge_without_its_balance_transaction_yet_is_settled_by_the_task(pipeline, service, sandbox):
    """Stripe may not have the balance transaction when the session is read: the payment's settlement
    is "not available yet" and the settle task asks Stripe again."""
    checkout = pipeline.checkout(email="later@example.com")
    intent = sandbox.store.get("payment_intent", checkout["session"]["payment_intent"])
    charge = sandbox.store.get("charge", intent["latest_charge"])
    balance_transaction, charge["balance_transaction"] = charge["balance_transaction"], None
    assert pipeline.deliver(checkout["events"][0]).status_code == 200

    assert run_next_task() == PROCESS_TASK

    payment = MoneyMovement.objects.get(stripe_id=checkout["session"]["id"])
    assert payment.charge_id == charge["id"] and payment.settlement_net is None
    assert "crm.tasks.money_movement_settle" in queued_task_names()
    charge["balance_transaction"] = balance_transaction  # Stripe has it now
    run_queued_tasks()
    payment.refresh_from_db()
    assert payment.settlement_net is not None
    assert_matches_sandbox(sandbox)


def test_the_mirror_holds_what_djstripes_own_retrieves_store(pipeline, service, sandbox):
    result = pipeline.pay_and_process(email="mirror@example.com")
    session = Session.objects.get(id=result["session"]["id"])

    key = {"api_key": stripe_api_key()}
    # What dj-stripe's retrieves (its expand_fields, relations as ids) return for the same objects.
    fresh = stripe_json(stripe.checkout.Session.retrieve(session.id, expand=Session.expand_fields, **key))
    intent = stripe_json(stripe.PaymentIntent.retrieve(fresh["payment_intent"], **key))
    method = stripe_json(stripe.PaymentMethod.retrieve(intent["payment_method"], **key))
    customer = stripe_json(stripe.Customer.retrieve(fresh["customer"], expand=Customer.expand_fields, **key))
    assert session.stripe_data == fresh
    assert session.customer_id == customer["id"] and session.payment_intent_id == intent["id"]
    assert PaymentIntent.objects.get(id=intent["id"]).stripe_data == intent
    assert PaymentMethod.objects.get(id=method["id"]).stripe_data == method
    # dj-stripe's Customer hook adds these two keys to whatever it syncs.
    added = {"deleted": False, "default_payment_method": None}
    assert Customer.objects.get(id=customer["id"]).stripe_data == {**customer, **added}


def test_a_subscription_checkout_counts_its_requests(pipeline, service, sandbox):
    pipeline.pay_and_process(email="warm@example.com")
    sandbox.reset_request_counts()

    result = pipeline.pay_and_process(email="sub@example.com", mode="subscription")

    counts = sandbox.request_counts()
    assert Onboarding.objects.get(checkout_session_id=result["session"]["id"]).status == "onboarded"
    # Seven events (subscription, invoice x4, session): the session costs one request; the
    # subscription and invoice events still go through dj-stripe's own retrieves.
    assert counts.get("GET /v1/checkout/sessions/{id}") == 1, counts
    print("subscription-mode requests", counts)


def test_every_stripe_request_asks_for_the_pinned_api_version(pipeline, service, sandbox, settings):
    """Webhooks (dj-stripe's retrieves and the ledger's settle task), the backfill and reconcile:
    each request to Stripe names the pinned version, so Stripe answers in the shapes the code reads
    (stripe-python would otherwise send its own, newer, default)."""
    ServiceFactory(service_id="retainer", name="Monthly retainer")
    sandbox.reset_request_counts()
    paid = pipeline.checkout(email="pin@example.com", amount=10000)
    events = [event["id"] for event in paid["events"]]
    events += undelivered(sandbox.refund(paid["session"]["id"], amount=1000, deliver=False))
    events += undelivered(sandbox.dispute(paid["session"]["id"], outcome="lost", deliver=False))
    sub = pipeline.checkout(email="pin@example.com", service_id="retainer", mode="subscription")
    events += [event["id"] for event in sub["events"]]
    events += undelivered(sandbox.renew_subscription(sub["session"]["subscription"], deliver=False))
    events += undelivered(
        sandbox.create_invoice(amount=500, service_id="retainer", email="inv@example.com", deliver=False)
    )
    deliver_shuffled(pipeline, events, seed=3)
    call_command("backfill_onboarding", "--since", "2020-01-01", "--json", stdout=io.StringIO())
    call_command("reconcile_onboarding", "--json", "--fix", stdout=io.StringIO())

    versions = sandbox.request_versions()
    assert list(versions) == [settings.STRIPE_API_VERSION], versions
    assert settings.STRIPE_API_VERSION == "2026-05-27.dahlia"
