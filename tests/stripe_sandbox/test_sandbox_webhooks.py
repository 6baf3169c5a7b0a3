"""Signed webhook delivery of the checkout events, and the signing helper."""

import json
import time

import pytest
import requests
import stripe

from stripe_sandbox.signing import sign_payload
from tests.stripe_sandbox.helpers import API_KEY

SECRET = "whsec_sandbox_test_secret"


def test_sign_payload_verifies_with_stripe_python():
    payload = json.dumps({"id": "evt_1", "object": "event"})
    header = sign_payload(payload, SECRET, timestamp=1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(payload, header, SECRET, 300)  # too old
    assert stripe.WebhookSignature.verify_header(payload, sign_payload(payload, SECRET), SECRET, 300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(payload, sign_payload(payload, "whsec_other"), SECRET, 300)


def deliver_checkout(sandbox, receiver, delayed):
    result = sandbox.create_checkout(
        email="ada@example.com",
        name="Ada",
        service_id="svc-7",
        amount=2500,
        currency="eur",
        delayed=delayed,
        webhook_url=receiver.url,
        webhook_secret=SECRET,
    )
    events = []
    for delivery in receiver.deliveries:
        headers = delivery["headers"]
        assert stripe.WebhookSignature.verify_header(
            delivery["body"], headers["Stripe-Signature"], SECRET, 300
        )
        assert headers["Content-Type"] == "application/json; charset=utf-8"
        assert headers["User-Agent"] == "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
        events.append(json.loads(delivery["body"]))
    assert [d["event"] for d in result["deliveries"]] == result["events"] == [e["id"] for e in events]
    assert all(d["status"] == 200 and d["body"] == '{"received": true}' for d in result["deliveries"])
    return result, events


def summary(events):
    return [(e["type"], e["data"]["object"]["status"], e["data"]["object"]["payment_status"]) for e in events]


def test_card_payment_delivers_completed_paid(sandbox, receiver):
    result, events = deliver_checkout(sandbox, receiver, delayed=None)
    assert summary(events) == [("checkout.session.completed", "complete", "paid")]
    event = events[0]
    assert event["livemode"] is False and event["pending_webhooks"] == 1
    assert event["data"]["object"]["id"] == result["session"]["id"]
    assert event["data"]["object"]["metadata"] == {"serviceId": "svc-7"}
    # dj-stripe's "retrieve_event" validation compares the delivered data with GET /v1/events/{id}.
    assert stripe.Event.retrieve(event["id"], api_key=API_KEY).to_dict()["data"] == event["data"]


def test_delayed_success_delivers_completed_unpaid_then_async_succeeded(sandbox, receiver):
    result, events = deliver_checkout(sandbox, receiver, delayed="succeeded")
    assert summary(events) == [
        ("checkout.session.completed", "complete", "unpaid"),
        ("checkout.session.async_payment_succeeded", "complete", "paid"),
    ]
    session = stripe.checkout.Session.retrieve(
        result["session"]["id"], expand=["payment_intent"], api_key=API_KEY
    )
    assert session.payment_status == "paid" and session.payment_intent.status == "succeeded"


def test_delayed_failure_delivers_completed_unpaid_then_async_failed(sandbox, receiver):
    result, events = deliver_checkout(sandbox, receiver, delayed="failed")
    assert summary(events) == [
        ("checkout.session.completed", "complete", "unpaid"),
        ("checkout.session.async_payment_failed", "complete", "unpaid"),
    ]
    session = stripe.checkout.Session.retrieve(
        result["session"]["id"], expand=["payment_intent.latest_charge"], api_key=API_KEY
    )
    assert session.payment_status == "unpaid"
    assert session.payment_intent.status == "requires_payment_method"
    assert session.payment_intent.last_payment_error.code == "card_declined"
    assert session.payment_intent.latest_charge.status == "failed"


def test_failed_delivery_status_is_reported(sandbox, receiver):
    receiver.status = 500
    result = sandbox.create_checkout(
        email="a@example.com",
        name="A",
        service_id="s",
        amount=100,
        webhook_url=receiver.url,
        webhook_secret=SECRET,
    )
    assert [d["status"] for d in result["deliveries"]] == [500]
    assert stripe.Event.retrieve(result["events"][0], api_key=API_KEY).pending_webhooks == 1


def test_control_endpoint_creates_and_delivers(sandbox, receiver):
    body = {
        "email": "ctl@example.com",
        "name": "Ctl",
        "service_id": "svc-c",
        "amount": 990,
        "currency": "usd",
        "delayed": "succeeded",
        "livemode": True,
        "webhook_url": receiver.url,
        "webhook_secret": SECRET,
        "deliver": True,
    }
    response = requests.post(f"{sandbox.url}/_sandbox/checkouts", json=body, timeout=30)
    assert response.status_code == 200
    result = response.json()
    assert result["session"]["id"].startswith("cs_live_") and result["session"]["livemode"] is True
    assert [d["status"] for d in result["deliveries"]] == [200, 200]
    assert [json.loads(d["body"])["livemode"] for d in receiver.deliveries] == [True, True]
    redelivered = requests.post(
        f"{sandbox.url}/_sandbox/deliver",
        json={"events": result["events"][:1], "webhook_url": receiver.url, "webhook_secret": SECRET},
        timeout=30,
    ).json()
    assert [d["status"] for d in redelivered["deliveries"]] == [200] and len(receiver.deliveries) == 3


def test_delivery_timestamp_is_current(sandbox, receiver):
    deliver_checkout(sandbox, receiver, delayed=None)
    header = receiver.deliveries[0]["headers"]["Stripe-Signature"]
    timestamp = int(header.split(",")[0].removeprefix("t="))
    assert abs(timestamp - time.time()) < 60
