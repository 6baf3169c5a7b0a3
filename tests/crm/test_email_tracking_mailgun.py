"""Delivery tracking through a second ESP: Mailgun, its real Anymail backend and signed webhooks.

A fake Mailgun API (pytest-httpserver) answers sends the way Mailgun does, with the message's
Message-Id as its id; the tracking webhooks are signed with the webhook signing key as Mailgun signs
them and carry basic auth. Payload shapes: Anymail's test suite (tests/fixtures/).
"""

import base64
import copy
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from werkzeug.wrappers import Response

from crm.models import EmailEvent, Onboarding
from crm.services.client_email import client_email_change
from crm.services.staff import welcome_email_resend
from tests.support.pipeline import run_queued_tasks

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("service")]

PAYLOADS = json.loads((Path(__file__).parent / "fixtures" / "anymail_tracking_payloads.json").read_text())
WEBHOOK_SECRET = "mailgun:tracking-secret-for-tests"
SIGNING_KEY = "mailgun-webhook-signing-key-for-tests"
URL = "/anymail/mailgun/tracking/"

Delivery = Onboarding.EmailDelivery
Status = Onboarding.Status


class FakeMailgun:
    """Mailgun's send API: POST /v3/<domain>/messages (form data) -> {"id": "<…>", "message": …}."""

    def __init__(self, httpserver):
        self.messages: list[dict] = []
        httpserver.expect_request("/v3/localhost/messages", method="POST").respond_with_handler(self.send)

    def send(self, request) -> Response:
        form = request.form.to_dict(flat=False)
        message_id = form.get("h:Message-Id", [f"<{uuid.uuid4().hex}@localhost>"])[0]
        self.messages.append({"id": message_id, "to": form.get("to", []), "form": form})
        body = {"id": message_id, "message": "Queued. Thank you."}
        return Response(json.dumps(body), status=200, content_type="application/json")


@pytest.fixture
def mailgun(settings, httpserver):
    settings.EMAIL_BACKEND = "anymail.backends.mailgun.EmailBackend"
    settings.ANYMAIL = {
        "MAILGUN_API_KEY": "key-for-tests",
        "MAILGUN_API_URL": httpserver.url_for("/v3"),
        "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    return FakeMailgun(httpserver)


def mailgun_event(kind: str, *, message_id: str, key: str = SIGNING_KEY, **event_data) -> dict:
    """One of Anymail's Mailgun payloads about `message_id` (as Mailgun sends it: no <>), signed."""
    payload = copy.deepcopy(PAYLOADS["mailgun"][kind])
    data = payload["event-data"]
    data["message"]["headers"]["message-id"] = message_id.strip("<>")
    data["timestamp"] = time.time()
    data.update(event_data)
    timestamp, token = str(int(data["timestamp"])), uuid.uuid4().hex  # a token per webhook, as Mailgun
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    payload["signature"] = {"timestamp": timestamp, "token": token, "signature": signature}
    return payload


def post_tracking(http, payload: dict, *, secret: str = WEBHOOK_SECRET):
    return http.post(
        URL,
        data=json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(secret.encode()).decode(),
    )


def test_mailgun_bounce_holds_then_fixed_address_resent_and_delivered(pipeline, mailgun, client):
    pipeline.pay_and_process(email="grace@exmaple.com")
    onboarding = Onboarding.objects.select_related("client").get()
    assert (
        onboarding.email_message_id == mailgun.messages[0]["id"] == f"<welcome.{onboarding.id}.0@localhost>"
    )

    failed = mailgun_event("failed_permanent", message_id=onboarding.email_message_id)
    assert post_tracking(client, failed).status_code == 200

    onboarding.refresh_from_db()
    assert (onboarding.status, onboarding.held_reason) == (Status.HELD, Onboarding.HeldReason.EMAIL_BOUNCED)
    assert onboarding.email_delivery == Delivery.BOUNCED
    assert "5.1.1 The email account that you tried to reach does not exist" in onboarding.held_detail
    assert EmailEvent.objects.get().esp == "Mailgun"

    staff = User.objects.create_user("ops@agency.example", is_staff=True)
    client_email_change(client=onboarding.client, email="grace@example.com", actor=staff)
    welcome_email_resend(onboarding=onboarding, actor=staff)
    run_queued_tasks()
    onboarding.refresh_from_db()
    assert mailgun.messages[-1]["to"] == ["grace@example.com"]
    assert onboarding.email_message_id == f"<welcome.{onboarding.id}.1@localhost>"

    post_tracking(client, mailgun_event("delivered", message_id=onboarding.email_message_id))
    # The first send's bounce, redelivered late by Mailgun (a new token), changes nothing.
    post_tracking(
        client,
        mailgun_event(
            "failed_permanent", message_id=failed["event-data"]["message"]["headers"]["message-id"]
        ),
    )

    onboarding.refresh_from_db()
    assert (onboarding.status, onboarding.held_reason, onboarding.email_delivery) == (
        Status.ONBOARDED,
        "",
        Delivery.DELIVERED,
    )


def test_mailgun_temporary_failure_is_deferred(pipeline, mailgun, client):
    pipeline.pay_and_process()
    onboarding = Onboarding.objects.get()

    post_tracking(client, mailgun_event("failed_temporary", message_id=onboarding.email_message_id))

    onboarding.refresh_from_db()
    assert (onboarding.email_delivery, onboarding.status) == (Delivery.DEFERRED, Status.ONBOARDED)
    assert "No MX" in EmailEvent.objects.get().description


def test_mailgun_webhook_with_a_bad_signature_is_refused(pipeline, mailgun, client):
    pipeline.pay_and_process()
    onboarding = Onboarding.objects.get()
    forged = mailgun_event("failed_permanent", message_id=onboarding.email_message_id, key="not-the-key")

    assert post_tracking(client, forged).status_code == 400

    onboarding.refresh_from_db()
    assert not EmailEvent.objects.exists()
    assert (onboarding.status, onboarding.email_delivery) == (Status.ONBOARDED, Delivery.SENT)
