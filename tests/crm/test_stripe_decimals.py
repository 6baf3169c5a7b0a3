"""Sessions with a currency conversion (Adaptive Pricing) are caught up and backfilled.

Stripe's JSON carries `currency_conversion.fx_rate` as a decimal string; stripe-python turns it
into a Decimal, which a JSON column cannot store. Each path that takes stripe-python objects to
dj-stripe is run here on that shape, from the sandbox at the network edge.
"""

import io
import json
from datetime import UTC, datetime

import pytest
from django.core.management import call_command
from djstripe.models import Event, Session

from crm.backfill import onboarding_backfill
from crm.models import Client, Onboarding
from tests.support.pipeline import run_queued_tasks

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("anymail_outbox")]

FX_RATE = "1.0856"  # as Stripe's JSON has it: a string, exact


def currency_conversion(session: dict) -> dict:
    """The session priced in the payer's currency from the agency's EUR price, as Stripe shows it."""
    source_amount = round(session["amount_total"] / float(FX_RATE))
    return {
        "amount_subtotal": source_amount,
        "amount_total": source_amount,
        "fx_rate": FX_RATE,
        "source_currency": "eur",
    }


def convert(sandbox, session_id: str, events=()) -> dict:
    """Give the stored session (and the events' snapshots of it) a currency conversion."""
    session = sandbox.store.get("checkout.session", session_id)
    session.update(adaptive_pricing={"enabled": True}, currency_conversion=currency_conversion(session))
    for event in events:
        event["data"]["object"].update(
            adaptive_pricing=session["adaptive_pricing"], currency_conversion=session["currency_conversion"]
        )
    return session


def test_reconcile_fix_catches_up_a_missed_checkout_with_a_currency_conversion(pipeline, service):
    missed = pipeline.checkout(email="fx@example.com", name="Fx Payer", amount=49900, currency="usd")
    session = convert(pipeline.sandbox, missed["session"]["id"], missed["events"])

    out = io.StringIO()
    call_command("reconcile_onboarding", "--json", "--fix", stdout=out)
    report = json.loads(out.getvalue())

    [finding] = [f for f in report["findings"] if f["gap"] == "missed_checkout"]
    assert finding["state"] == "repaired", finding["outcome"]
    run_queued_tasks()  # the welcome email and workspace the catch-up queued
    onboarding = Onboarding.objects.get(checkout_session_id=session["id"])
    assert onboarding.status == Onboarding.Status.ONBOARDED
    assert (Client.objects.get().invoiced_value, Client.objects.get().currency) == (49900, "usd")
    # The stored event holds the rate as Stripe sent it, not a float or a rounded value.
    event = Event.objects.get(id=missed["events"][0]["id"])
    assert event.data["object"]["currency_conversion"]["fx_rate"] == FX_RATE


def test_backfill_imports_a_session_with_a_currency_conversion(sandbox, service):
    """Guard: backfill hands dj-stripe the StripeObjects, which dj-stripe makes JSON itself."""
    created = int(datetime(2025, 3, 2, tzinfo=UTC).timestamp())
    [session_id] = sandbox.seed(
        sessions=[
            {
                "email": "fx@example.com",
                "name": "Fx Payer",
                "service_id": "website-care",
                "amount": 49900,
                "currency": "usd",
                "created": created,
            }
        ]
    )["sessions"]
    convert(sandbox, session_id)

    summary = onboarding_backfill(
        since=datetime(2025, 3, 1, tzinfo=UTC), until=datetime(2025, 4, 1, tzinfo=UTC), no_email=True, rate=0
    )

    assert (summary.counts["failed"], summary.failed_sessions) == (0, []), summary
    run_queued_tasks()
    assert Onboarding.objects.get(checkout_session_id=session_id).status == Onboarding.Status.ONBOARDED
    synced = Session.objects.get(id=session_id)
    assert synced.stripe_data["currency_conversion"]["fx_rate"] == FX_RATE
