"""Delivery tracking for the welcome email: Postmark's tracking webhooks into Anymail's real view.

The email goes out through Anymail's real Postmark backend to a fake Postmark at the network edge,
so the MessageID the webhooks carry is the one the send recorded. Payload shapes come from Anymail's
own test suite (tests/crm/fixtures/anymail_tracking_payloads.json).
"""

import base64
import copy
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from crm.models import Activity, EmailEvent, Onboarding, StaffAlert
from crm.services.client_email import client_email_change
from crm.services.staff import onboarding_approve, welcome_email_resend
from tests.support.pipeline import run_queued_tasks

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("service")]

PAYLOADS = json.loads((Path(__file__).parent / "fixtures" / "anymail_tracking_payloads.json").read_text())
WEBHOOK_SECRET = "postmark:tracking-secret-for-tests"
URL = "/anymail/postmark/tracking/"

Delivery = Onboarding.EmailDelivery
Status = Onboarding.Status
Held = Onboarding.HeldReason


@pytest.fixture
def postmark(postmark, settings):
    """The suite's fake Postmark (tests/support/postmark.py), with the tracking webhooks' secret."""
    settings.ANYMAIL = {**postmark.anymail_settings, "WEBHOOK_SECRET": WEBHOOK_SECRET}
    settings.STAFF_ALERT_EMAILS = ["ops@agency.example"]
    return postmark


def basic_auth(secret: str = WEBHOOK_SECRET) -> str:
    return "Basic " + base64.b64encode(secret.encode()).decode()


def postmark_event(kind: str, *, message_id: str, at: datetime | None = None, **fields) -> dict:
    """One of Anymail's Postmark payloads, about `message_id`, stamped `at` (default now)."""
    event = copy.deepcopy(PAYLOADS["postmark"][kind])
    event["MessageID"] = message_id
    stamp = (at or datetime.now(UTC)).isoformat()
    for name in ("DeliveredAt", "BouncedAt", "ReceivedAt", "ChangedAt"):
        if name in event:
            event[name] = stamp
    if "ID" in event:
        event["ID"] = fields.pop("ID", uuid.uuid4().int % 10**9)
    event.update(fields)
    return event


def post_tracking(http, event: dict, *, auth: str | None = None):
    return http.post(
        URL,
        data=json.dumps(event),
        content_type="application/json",
        HTTP_AUTHORIZATION=auth if auth is not None else basic_auth(),
    )


def onboarded(pipeline, postmark, email: str = "ada@example.com") -> Onboarding:
    pipeline.pay_and_process(email=email)
    onboarding = Onboarding.objects.select_related("client").get(customer_email=email)
    assert onboarding.email_message_id == postmark.messages[-1]["message_id"]
    assert onboarding.email_delivery == Delivery.SENT
    return onboarding


def timeline(onboarding: Onboarding) -> list[str]:
    return list(Activity.objects.filter(onboarding=onboarding).values_list("summary", flat=True))


def test_delivered_event_marks_the_welcome_email_delivered(pipeline, postmark, client):
    onboarding = onboarded(pipeline, postmark)
    at = datetime.now(UTC) - timedelta(seconds=5)

    response = post_tracking(
        client, postmark_event("delivery", message_id=onboarding.email_message_id, at=at)
    )

    assert response.status_code == 200
    onboarding.refresh_from_db()
    assert (onboarding.email_delivery, onboarding.email_delivery_at) == (Delivery.DELIVERED, at)
    assert onboarding.status == Status.ONBOARDED
    event = EmailEvent.objects.get()
    assert (event.onboarding, event.esp, event.event_type, event.applied) == (
        onboarding,
        "Postmark",
        "delivered",
        True,
    )
    assert "Welcome email delivered (recipient@example.com), Postmark" in timeline(onboarding)


def test_deferred_event_keeps_the_onboarding_going(pipeline, postmark, client):
    onboarding = onboarded(pipeline, postmark)
    transient = postmark_event(
        "bounce", message_id=onboarding.email_message_id, Type="Transient", Description="Mailbox busy"
    )

    assert post_tracking(client, transient).status_code == 200

    onboarding.refresh_from_db()
    assert onboarding.email_delivery == Delivery.DEFERRED
    assert (onboarding.status, onboarding.held_reason) == (Status.ONBOARDED, "")
    # ... and a later delivery completes it.
    post_tracking(client, postmark_event("delivery", message_id=onboarding.email_message_id))
    onboarding.refresh_from_db()
    assert onboarding.email_delivery == Delivery.DELIVERED


def test_bounce_holds_then_staff_fix_the_address_resend_and_it_is_delivered(pipeline, postmark, client):
    onboarding = onboarded(pipeline, postmark, email="ada@exmaple.com")
    bounce = postmark_event("bounce", message_id=onboarding.email_message_id, Email="ada@exmaple.com")

    assert post_tracking(client, bounce).status_code == 200

    onboarding.refresh_from_db()
    assert (onboarding.status, onboarding.held_reason) == (Status.HELD, Held.EMAIL_BOUNCED)
    assert onboarding.email_delivery == Delivery.BOUNCED
    assert "550 5.1.1 The email account that you tried to reach does not exist" in onboarding.held_detail
    assert "ada@exmaple.com" in onboarding.held_detail
    assert "5.1.1" in onboarding.email_delivery_detail
    alert = StaffAlert.objects.get(kind=StaffAlert.Kind.HELD)
    assert f"/admin/crm/heldonboarding/{onboarding.id}/change/" in alert.url
    assert "Held for review: welcome email bounced" in timeline(onboarding)

    staff = User.objects.create_user("ops@agency.example", is_staff=True)
    client_email_change(client=onboarding.client, email="ada@example.com", actor=staff)
    assert welcome_email_resend(onboarding=onboarding, actor=staff)
    run_queued_tasks()

    onboarding.refresh_from_db()
    resent = postmark.messages[-1]
    assert resent["to"] == ["ada@example.com"]
    assert onboarding.email_message_id == resent["message_id"] != bounce["MessageID"]
    assert (onboarding.status, onboarding.held_reason, onboarding.email_delivery) == (
        Status.ONBOARDED,
        "",
        Delivery.SENT,
    )
    post_tracking(
        client, postmark_event("delivery", message_id=resent["message_id"], Recipient="ada@example.com")
    )
    onboarding.refresh_from_db()
    assert (onboarding.status, onboarding.email_delivery) == (Status.ONBOARDED, Delivery.DELIVERED)


def test_approving_a_bounce_hold_sends_a_new_message(pipeline, postmark, client):
    onboarding = onboarded(pipeline, postmark)
    post_tracking(client, postmark_event("bounce", message_id=onboarding.email_message_id))
    staff = User.objects.create_user("ops@agency.example", is_staff=True)

    assert "welcome email queued again" in onboarding_approve(onboarding=onboarding, actor=staff)
    run_queued_tasks()

    onboarding.refresh_from_db()
    assert len(postmark.messages) == 2
    headers = [message["headers"]["Message-ID"] for message in postmark.messages]
    assert headers[0] != headers[1]  # a new Message-ID: the first send's late reports stay its own
    assert (onboarding.status, onboarding.email_delivery) == (Status.ONBOARDED, Delivery.SENT)


@pytest.mark.parametrize(
    ("kind", "fields", "delivery"),
    [
        ("spam_complaint", {}, Delivery.COMPLAINED),
        ("unsubscribe", {}, Delivery.UNSUBSCRIBED),
        ("bounce", {"Type": "BadEmailAddress", "Description": "Invalid email address"}, Delivery.REJECTED),
    ],
)
def test_complaints_unsubscribes_and_rejections_hold_the_onboarding(
    pipeline, postmark, client, kind, fields, delivery
):
    onboarding = onboarded(pipeline, postmark)

    post_tracking(client, postmark_event(kind, message_id=onboarding.email_message_id, **fields))

    onboarding.refresh_from_db()
    assert onboarding.email_delivery == delivery
    assert (onboarding.status, onboarding.held_reason) == (Status.HELD, Held.EMAIL_BOUNCED)


def test_duplicate_event_ids_are_recorded_once(pipeline, postmark, client):
    onboarding = onboarded(pipeline, postmark)
    bounce = postmark_event("bounce", message_id=onboarding.email_message_id)
    # Postmark gives deliveries no event id: deduplicated on message, type and time instead.
    delivery = postmark_event("delivery", message_id=onboarding.email_message_id)

    for event in (bounce, bounce, delivery, delivery, bounce):
        assert post_tracking(client, event).status_code == 200

    assert sorted(EmailEvent.objects.values_list("event_type", flat=True)) == ["bounced", "delivered"]
    assert StaffAlert.objects.filter(kind=StaffAlert.Kind.HELD).count() == 1
    lines = timeline(onboarding)
    assert sum("Welcome email bounced" in line for line in lines) == 1
    assert sum("Welcome email delivered" in line for line in lines) == 1


def test_tracking_that_arrives_before_the_send_is_recorded_is_applied_with_it(
    pipeline, settings, client, httpserver
):
    """A fast ESP: its delivery report reaches us before the worker recorded the send."""
    message_id = str(uuid.uuid4())
    httpserver.expect_request("/email", method="POST").respond_with_json(
        {
            "To": "ada@example.com",
            "SubmittedAt": datetime.now(UTC).isoformat(),
            "MessageID": message_id,
            "ErrorCode": 0,
            "Message": "OK",
        }
    )
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {
        "POSTMARK_SERVER_TOKEN": "test-token",
        "POSTMARK_API_URL": httpserver.url_for("/"),
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    assert post_tracking(client, postmark_event("delivery", message_id=message_id)).status_code == 200
    assert post_tracking(client, postmark_event("open", message_id=message_id)).status_code == 200
    waiting = EmailEvent.objects.get(event_type="delivered")
    assert (waiting.onboarding, waiting.applied) == (None, False)

    pipeline.pay_and_process(email="ada@example.com")

    onboarding = Onboarding.objects.get()
    assert onboarding.email_message_id == message_id
    assert (onboarding.email_delivery, onboarding.status) == (Delivery.DELIVERED, Status.ONBOARDED)
    assert set(EmailEvent.objects.values_list("onboarding", "applied")) == {(onboarding.id, True)}
    lines = timeline(onboarding)
    assert lines.index("Welcome email sent to ada@example.com") < lines.index(
        "Welcome email delivered (recipient@example.com), Postmark"
    )


def test_a_late_delivered_for_an_older_send_does_not_undo_a_newer_bounce(pipeline, postmark, client):
    onboarding = onboarded(pipeline, postmark)
    first = onboarding.email_message_id
    staff = User.objects.create_user("support@agency.example", is_staff=True)
    welcome_email_resend(onboarding=onboarding, actor=staff)
    run_queued_tasks()
    onboarding.refresh_from_db()
    second = onboarding.email_message_id
    assert second != first

    post_tracking(client, postmark_event("bounce", message_id=second))
    # Postmark echoes the message's metadata (onboarding_id): the late report reaches the timeline.
    post_tracking(
        client, postmark_event("delivery", message_id=first, Metadata=postmark.messages[0]["metadata"])
    )

    onboarding.refresh_from_db()
    assert (onboarding.status, onboarding.held_reason, onboarding.email_delivery) == (
        Status.HELD,
        Held.EMAIL_BOUNCED,
        Delivery.BOUNCED,
    )
    assert "Welcome email delivered (recipient@example.com), Postmark (an earlier send)" in timeline(
        onboarding
    )
    assert not EmailEvent.objects.get(message_id=first).applied


def test_a_delivered_reported_after_a_bounce_of_the_same_message_does_not_undo_it(pipeline, postmark, client):
    onboarding = onboarded(pipeline, postmark)
    now = datetime.now(UTC)
    post_tracking(client, postmark_event("bounce", message_id=onboarding.email_message_id, at=now))
    # Out of order: stamped before the bounce, arriving after it.
    post_tracking(
        client,
        postmark_event("delivery", message_id=onboarding.email_message_id, at=now - timedelta(minutes=1)),
    )

    onboarding.refresh_from_db()
    assert (onboarding.email_delivery, onboarding.email_delivery_at) == (Delivery.BOUNCED, now)
    assert onboarding.status == Status.HELD


def test_opens_and_clicks_go_on_the_timeline_only(pipeline, postmark, client):
    onboarding = onboarded(pipeline, postmark)
    # The link clicked is the one-time set-password link: never stored.
    link = postmark.messages[0]["html_body"].split('href="')[1].split('"')[0]

    post_tracking(client, postmark_event("open", message_id=onboarding.email_message_id))
    post_tracking(client, postmark_event("click", message_id=onboarding.email_message_id, OriginalLink=link))

    onboarding.refresh_from_db()
    assert (onboarding.email_delivery, onboarding.status) == (Delivery.SENT, Status.ONBOARDED)
    lines = timeline(onboarding)
    assert "Welcome email opened (recipient@example.com), Postmark" in lines
    assert "Welcome email link clicked (recipient@example.com), Postmark" in lines
    assert not Activity.objects.filter(detail__contains=link).exists()
    assert not Activity.objects.filter(summary__contains=link).exists()


@pytest.mark.parametrize(
    "auth",
    ["", basic_auth("postmark:wrong-password"), basic_auth("someone:" + WEBHOOK_SECRET.split(":")[1])],
    ids=["none", "wrong-password", "wrong-user"],
)
def test_wrong_basic_auth_is_refused_and_nothing_recorded(pipeline, postmark, client, auth):
    onboarding = onboarded(pipeline, postmark)
    lines = timeline(onboarding)

    response = post_tracking(
        client, postmark_event("bounce", message_id=onboarding.email_message_id), auth=auth
    )

    assert response.status_code in (400, 401, 403)
    assert not EmailEvent.objects.exists()
    onboarding.refresh_from_db()
    assert (onboarding.status, onboarding.email_delivery) == (Status.ONBOARDED, Delivery.SENT)
    assert timeline(onboarding) == lines


def test_a_bounce_shows_on_the_onboarding_and_client_pages_and_the_dashboard(
    pipeline, postmark, client, admin_client
):
    onboarding = onboarded(pipeline, postmark)
    post_tracking(client, postmark_event("bounce", message_id=onboarding.email_message_id))
    onboarding.refresh_from_db()
    assert onboarding.status == Onboarding.Status.HELD

    page = admin_client.get(f"/admin/crm/onboarding/{onboarding.id}/change/").content.decode()
    assert "Bounced" in page
    assert 'id="email-reports"' in page
    assert "550 5.1.1 The email account that you tried to reach does not exist" in page

    page = admin_client.get(f"/admin/crm/client/{onboarding.client_id}/change/").content.decode()
    summary = page.split('id="welcome-email-delivery"')[1].split("</dd>")[0]
    assert "Bounced" in summary and "5.1.1" in summary

    listing = admin_client.get("/admin/crm/onboarding/?email_delivery__exact=bounced").content.decode()
    assert onboarding.checkout_session_id in listing

    dashboard = admin_client.get("/admin/").context["dashboard"]
    row = next(row for row in dashboard["count_rows"] if row["key"] == "email_bounced")
    assert row["values"] == [1, 1, 1]
    queue = next(q for q in dashboard["queues"] if q.label == "Welcome emails bounced")
    assert queue.count == 1
    assert queue.url == "/admin/crm/heldonboarding/?held_reason__exact=email_bounced"
    assert onboarding.checkout_session_id in admin_client.get(queue.url).content.decode()
