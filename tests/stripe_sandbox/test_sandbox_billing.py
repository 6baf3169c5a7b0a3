"""Subscription checkouts, renewals on demand, failed renewals, cancellations and stand-alone invoices."""

from datetime import UTC, datetime

import pytest
import stripe

from tests.stripe_sandbox.helpers import API_KEY, event_objects, event_types

START = 1_767_225_600  # 2026-01-01 00:00 UTC


def subscribe(sandbox, **overrides):
    fields = {
        "email": "ada@example.com",
        "name": "Ada",
        "service_id": "retainer",
        "amount": 50000,
        "currency": "eur",
        "mode": "subscription",
        "created": START,
    }
    return sandbox.create_checkout(**{**fields, **overrides})


def test_subscription_checkout_links_session_subscription_and_first_paid_invoice(sandbox):
    result = subscribe(sandbox)
    session = stripe.checkout.Session.retrieve(
        result["session"]["id"], expand=["subscription", "invoice.payments"], api_key=API_KEY
    )
    assert (
        session.mode == "subscription" and session.payment_status == "paid" and session.status == "complete"
    )
    assert session.payment_intent is None  # subscription mode pays through the invoice
    subscription, invoice = session.subscription, session.invoice
    assert subscription.status == "active" and subscription.customer == session.customer
    assert subscription.latest_invoice == invoice.id and subscription.metadata["serviceId"] == "retainer"
    item = subscription["items"].data[0]
    assert item.price.recurring.interval == "month" and item.price.unit_amount == 50000
    assert (item.current_period_start, item.current_period_end) == (START, 1_769_904_000)  # Feb 1st
    assert invoice.billing_reason == "subscription_create" and invoice.status == "paid"
    assert invoice.amount_paid == invoice.total == session.amount_total == 50000
    assert invoice.parent.subscription_details.subscription == subscription.id
    assert invoice.parent.subscription_details.metadata["serviceId"] == "retainer"
    intent = stripe.PaymentIntent.retrieve(
        invoice.payments.data[0].payment.payment_intent, expand=["latest_charge"], api_key=API_KEY
    )
    assert intent.status == "succeeded" and intent.latest_charge.amount == 50000
    assert intent.latest_charge.customer == session.customer


def test_subscription_checkout_event_sequence_and_snapshots(sandbox):
    result = subscribe(sandbox)
    assert event_types(sandbox, result["events"]) == [
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
        "checkout.session.completed",
    ]
    objects = event_objects(sandbox, result["events"])
    assert [o["status"] for o in objects] == [
        "incomplete",
        "draft",
        "open",
        "paid",
        "paid",
        "active",
        "complete",
    ]
    assert objects[-1]["invoice"] == objects[1]["id"] and objects[-1]["subscription"] == objects[0]["id"]


def test_payment_mode_checkout_is_unchanged(sandbox):
    result = sandbox.create_checkout(email="a@example.com", name="A", service_id="s", amount=900)
    assert event_types(sandbox, result["events"]) == ["checkout.session.completed"]
    session = result["session"]
    assert session["mode"] == "payment" and session["payment_intent"].startswith("pi_")
    assert session["invoice"] is None and session["subscription"] is None


def test_renewal_bills_the_next_period(sandbox):
    subscription_id = subscribe(sandbox)["session"]["subscription"]
    first = sandbox.renew_subscription(subscription_id)
    second = sandbox.renew_subscription(subscription_id)
    assert event_types(sandbox, first["events"]) == [
        "customer.subscription.updated",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]
    invoices = [first["invoice"], second["invoice"]]
    assert [i["billing_reason"] for i in invoices] == ["subscription_cycle"] * 2
    assert [datetime.fromtimestamp(i["period_start"], UTC).month for i in invoices] == [2, 3]
    assert invoices[0]["created"] == invoices[0]["period_start"]  # billed when the period starts
    assert invoices[0]["amount_paid"] == 50000 and invoices[0]["number"] != invoices[1]["number"]
    item = stripe.Subscription.retrieve(subscription_id, api_key=API_KEY)["items"].data[0]
    assert datetime.fromtimestamp(item.current_period_end, UTC).month == 4
    listed = stripe.Invoice.list(subscription=subscription_id, api_key=API_KEY).data
    assert [i.billing_reason for i in listed] == [
        "subscription_cycle",
        "subscription_cycle",
        "subscription_create",
    ]


def test_failed_renewal_leaves_subscription_past_due_until_retried(sandbox):
    subscription_id = subscribe(sandbox)["session"]["subscription"]
    failed = sandbox.renew_subscription(subscription_id, fail=True)
    assert event_types(sandbox, failed["events"]) == [
        "customer.subscription.updated",
        "invoice.created",
        "invoice.finalized",
        "invoice.payment_failed",
        "customer.subscription.updated",
    ]
    invoice = failed["invoice"]
    assert (
        invoice["status"] == "open" and invoice["amount_paid"] == 0 and invoice["amount_remaining"] == 50000
    )
    assert invoice["attempted"] is True and invoice["next_payment_attempt"] > invoice["created"]
    assert failed["subscription"]["status"] == "past_due"
    charges = stripe.Charge.list(customer=failed["subscription"]["customer"], api_key=API_KEY).data
    assert [c.status for c in charges] == ["failed", "succeeded"]

    retried = sandbox.pay_invoice(invoice["id"])
    assert event_types(sandbox, retried["events"]) == [
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
    ]
    assert retried["invoice"]["status"] == "paid" and retried["invoice"]["attempt_count"] == 2
    assert stripe.Subscription.retrieve(subscription_id, api_key=API_KEY).status == "active"
    payments = stripe.InvoicePayment.list(invoice=invoice["id"], api_key=API_KEY).data
    intent = stripe.PaymentIntent.retrieve(payments[0].payment.payment_intent, api_key=API_KEY)
    assert len(payments) == 1 and intent.status == "succeeded"  # the retry reuses the intent
    with pytest.raises(ValueError, match="not open"):
        sandbox.pay_invoice(invoice["id"])


def test_cancellation_sends_subscription_deleted_and_stops_renewals(sandbox):
    subscription_id = subscribe(sandbox)["session"]["subscription"]
    result = sandbox.cancel_subscription(subscription_id, created=START + 86400)
    assert event_types(sandbox, result["events"]) == ["customer.subscription.deleted"]
    deleted = event_objects(sandbox, result["events"])[0]
    assert deleted["status"] == "canceled" and deleted["canceled_at"] == deleted["ended_at"] == START + 86400
    assert deleted["cancellation_details"]["reason"] == "cancellation_requested"
    with pytest.raises(ValueError, match="canceled"):
        sandbox.renew_subscription(subscription_id)
    assert stripe.Subscription.list(api_key=API_KEY).data == []  # canceled ones are hidden by default
    assert [s.id for s in stripe.Subscription.list(status="canceled", api_key=API_KEY).data] == [
        subscription_id
    ]
    assert [s.id for s in stripe.Subscription.list(status="all", api_key=API_KEY).data] == [subscription_id]


def test_delete_subscription_endpoint_cancels(sandbox):
    subscription_id = subscribe(sandbox)["session"]["subscription"]
    canceled = stripe.Subscription.cancel(subscription_id, api_key=API_KEY)
    assert canceled.status == "canceled"
    events = stripe.Event.list(type="customer.subscription.deleted", api_key=API_KEY).data
    assert [e.data.object.id for e in events] == [subscription_id]


def test_free_trial_starts_trialing_with_a_zero_invoice_then_bills(sandbox):
    result = subscribe(sandbox, trial_days=14)
    session = result["session"]
    assert session["payment_status"] == "no_payment_required" and session["amount_total"] == 0
    subscription = stripe.Subscription.retrieve(
        session["subscription"], expand=["latest_invoice"], api_key=API_KEY
    )
    assert subscription.status == "trialing" and subscription.trial_end == START + 14 * 86400
    assert subscription.latest_invoice.total == 0 and subscription.latest_invoice.status == "paid"
    assert stripe.Charge.list(api_key=API_KEY).data == []
    renewal = sandbox.renew_subscription(session["subscription"])
    assert renewal["invoice"]["created"] == START + 14 * 86400 and renewal["invoice"]["amount_paid"] == 50000
    assert renewal["subscription"]["status"] == "active"


def test_standalone_invoice_for_a_new_and_a_known_customer(sandbox):
    first = sandbox.create_invoice(
        email="Bob@example.com", name="Bob", amount=120000, currency="usd", service_id="audit"
    )
    assert event_types(sandbox, first["events"]) == [
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]
    invoice = stripe.Invoice.retrieve(
        first["invoice"]["id"], expand=["payments", "customer"], api_key=API_KEY
    )
    assert invoice.billing_reason == "manual" and invoice.parent is None and invoice.subscription is None
    assert (
        invoice.metadata["serviceId"] == "audit"
        and invoice.status == "paid"
        and invoice.amount_paid == 120000
    )
    assert invoice.customer.email == "Bob@example.com" and invoice.collection_method == "send_invoice"
    line = stripe.Invoice.list_lines(invoice.id, api_key=API_KEY).data[0]
    assert line.parent.type == "invoice_item_details" and line.amount == 120000
    item = line.parent.invoice_item_details.invoice_item
    assert sandbox.store.get("invoiceitem", item)["invoice"] == invoice.id
    second = sandbox.create_invoice(email="bob@example.com", amount=5000, currency="usd", service_id="audit")
    assert second["customer"]["id"] == first["customer"]["id"]  # the known customer is billed again
    by_customer = stripe.Invoice.list(customer=first["customer"]["id"], api_key=API_KEY).data
    assert [i.amount_paid for i in by_customer] == [5000, 120000]


def test_failed_standalone_invoice_stays_open(sandbox):
    result = sandbox.create_invoice(email="c@example.com", amount=100, service_id="x", fail=True)
    assert event_types(sandbox, result["events"])[-1] == "invoice.payment_failed"
    assert result["invoice"]["status"] == "open"


def test_subscription_and_invoice_lists_paginate_and_filter_by_created(sandbox):
    for index in range(5):
        subscribe(sandbox, email=f"c{index}@example.com", created=START + index * 60)
    page = stripe.Subscription.list(limit=2, api_key=API_KEY)
    assert len(page.data) == 2 and page.has_more is True
    rest = stripe.Subscription.list(limit=10, starting_after=page.data[-1].id, api_key=API_KEY).data
    assert len(rest) == 3 and not {s.id for s in rest} & {s.id for s in page.data}
    window = stripe.Invoice.list(created={"gte": START + 60, "lt": START + 240}, api_key=API_KEY).data
    assert sorted(i.created - START for i in window) == [60, 120, 180]
    every = [i.id for i in stripe.Invoice.list(limit=2, api_key=API_KEY).auto_paging_iter()]
    assert len(every) == len(set(every)) == 5
    with pytest.raises(stripe.InvalidRequestError) as error:
        stripe.Subscription.list(status="bogus", api_key=API_KEY)
    assert error.value.param == "status"
