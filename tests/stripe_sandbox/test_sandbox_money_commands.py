"""The sandbox_* commands drive a running sandbox over HTTP and deliver signed webhooks to the app."""

import json
from io import StringIO

import pytest
import stripe
from django.core.management import CommandError, call_command

SECRET = "whsec_sandbox_command_secret"


@pytest.fixture
def run(sandbox, receiver):
    def command(name, *args, deliver=True):
        out = StringIO()
        target = ["--webhook-url", receiver.url, "--webhook-secret", SECRET] if deliver else []
        call_command(name, *args, "--sandbox-url", sandbox.url, *target, stdout=out)
        return out.getvalue()

    return command


def delivered_types(receiver):
    types = []
    for delivery in receiver.deliveries:
        header = delivery["headers"]["Stripe-Signature"]
        assert stripe.WebhookSignature.verify_header(delivery["body"], header, SECRET, 300)
        types.append(json.loads(delivery["body"])["type"])
    receiver.deliveries.clear()
    return types


def value(output, name):
    return next(line.split()[1] for line in output.splitlines() if line.startswith(f"{name} "))


def test_subscription_lifecycle_from_the_shell(run, receiver, sandbox):
    out = run(
        "sandbox_checkout",
        "--email",
        "ada@example.com",
        "--service",
        "care",
        "--amount",
        "9900",
        "--mode",
        "subscription",
    )
    subscription = value(out, "subscription")
    assert delivered_types(receiver)[-2:] == ["customer.subscription.updated", "checkout.session.completed"]
    out = run("sandbox_renew", "--subscription", subscription)
    assert "HTTP 200" in out and value(out, "invoice").startswith("in_")
    assert delivered_types(receiver) == [
        "customer.subscription.updated",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]
    failed_invoice = value(run("sandbox_renew", "--subscription", subscription, "--fail"), "invoice")
    assert "invoice.payment_failed" in delivered_types(receiver)
    run("sandbox_renew", "--retry-invoice", failed_invoice)
    assert delivered_types(receiver)[:2] == ["invoice.paid", "invoice.payment_succeeded"]
    run("sandbox_cancel", "--subscription", subscription)
    assert delivered_types(receiver) == ["customer.subscription.deleted"]


def test_refund_and_dispute_commands(run, receiver, sandbox):
    session = value(
        run("sandbox_checkout", "--email", "b@example.com", "--service", "s", "--amount", "5000"), "session"
    )
    receiver.deliveries.clear()
    out = run("sandbox_refund", "--charge", session, "--amount", "1000")
    refund = value(out, "refund")
    assert delivered_types(receiver) == ["charge.refunded", "refund.created", "refund.updated"]
    run("sandbox_refund", "--fail-refund", refund)
    assert delivered_types(receiver) == ["refund.updated", "refund.failed"]
    run("sandbox_refund", "--charge", value(out, "charge"), "--amount", "500", "--fail")
    assert delivered_types(receiver)[-1] == "refund.failed"
    dispute = value(run("sandbox_dispute", "--charge", session), "dispute")
    assert delivered_types(receiver) == ["charge.dispute.created", "charge.dispute.funds_withdrawn"]
    run("sandbox_dispute", "--close", dispute, "--outcome", "lost")
    assert delivered_types(receiver) == ["charge.dispute.closed"]
    ledger = json.loads(run("sandbox_ledger", deliver=False))
    assert ledger["customers"]["b@example.com"]["currencies"]["eur"] == {
        "paid": 5000,
        "refunded": 0,
        "disputed": 5000,
        "net": 0,
    }


def test_invoice_coupon_and_payment_link_commands(run, receiver, sandbox):
    out = run(
        "sandbox_invoice",
        "--email",
        "c@example.com",
        "--amount",
        "30000",
        "--currency",
        "jpy",
        "--service",
        "audit",
    )
    assert delivered_types(receiver) == [
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]
    assert sandbox.store.get("invoice", value(out, "invoice"))["metadata"] == {"serviceId": "audit"}
    coupon = value(run("sandbox_coupon", "--percent-off", "100", "--code", "FREE", deliver=False), "coupon")
    out = run(
        "sandbox_checkout",
        "--email",
        "d@example.com",
        "--service",
        "s",
        "--amount",
        "100",
        "--coupon",
        coupon,
    )
    [completed] = [json.loads(d["body"]) for d in receiver.deliveries]
    assert completed["data"]["object"]["payment_status"] == "no_payment_required"
    receiver.deliveries.clear()
    link = value(
        run(
            "sandbox_payment_link",
            "--service",
            "kit",
            "--amount",
            "700",
            "--metadata",
            "campaign=x",
            deliver=False,
        ),
        "payment_link",
    )
    run(
        "sandbox_checkout",
        "--email",
        "e@example.com",
        "--service",
        "ignored",
        "--amount",
        "1",
        "--payment-link",
        link,
    )
    [completed] = [json.loads(d["body"]) for d in receiver.deliveries]
    session = completed["data"]["object"]
    assert session["payment_link"] == link and session["metadata"] == {"serviceId": "kit", "campaign": "x"}


def test_command_reports_failed_deliveries_and_sandbox_refusals(run, receiver, sandbox):
    session = value(
        run("sandbox_checkout", "--email", "f@example.com", "--service", "s", "--amount", "100"), "session"
    )
    receiver.status = 500
    with pytest.raises(CommandError, match="3 webhook deliveries failed"):
        run("sandbox_refund", "--charge", session, "--amount", "10")
    with pytest.raises(CommandError, match="greater than unrefunded amount"):
        run("sandbox_refund", "--charge", session, "--amount", "1000")
    with pytest.raises(CommandError, match="No such subscription"):
        run("sandbox_renew", "--subscription", "sub_missing")


def test_customer_discount_command_puts_a_dahlia_discount_on_the_customer(run, receiver, sandbox):
    session = value(
        run("sandbox_checkout", "--email", "g@example.com", "--service", "s", "--amount", "900"), "session"
    )
    customer = sandbox.store.get("checkout.session", session)["customer"]
    coupon = value(run("sandbox_coupon", "--percent-off", "15", "--code", "LOYAL", deliver=False), "coupon")
    receiver.deliveries.clear()

    out = run("sandbox_customer_discount", "--customer", customer, "--promotion-code", "LOYAL")

    assert value(out, "customer") == customer and value(out, "discount").startswith("di_")
    assert delivered_types(receiver) == ["customer.discount.created", "customer.updated"]
    discount = sandbox.store.get("customer", customer)["discount"]
    assert "coupon" not in discount and discount["source"] == {"coupon": coupon, "type": "coupon"}
    with pytest.raises(CommandError, match="--coupon or --promotion-code"):
        run("sandbox_customer_discount", "--customer", customer)
