"""A bounced welcome email in a real browser: held for review, the address fixed, the email resent
and delivered.

The email goes out through Anymail's real Postmark backend to a fake Postmark; its delivery reports
are Postmark's tracking webhooks (Anymail's payload shapes) posted over HTTP to the live server.
"""

import base64
import json
import uuid
from datetime import UTC, datetime

import pytest
import requests
from playwright.sync_api import expect

from crm.models import Onboarding
from tests.e2e.test_cockpit import log_in, run_action
from tests.factories import ServiceFactory
from tests.support.pipeline import run_queued_tasks
from tests.support.staff import staff_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WEBHOOK_SECRET = "postmark:browser-test-secret"


@pytest.fixture
def postmark(postmark, settings):
    """The suite's fake Postmark (tests/support/postmark.py), with the tracking webhooks' secret."""
    settings.ANYMAIL = {**postmark.anymail_settings, "WEBHOOK_SECRET": WEBHOOK_SECRET}
    return postmark


def postmark_reports(live_server, event: dict) -> None:
    """Postmark posting a tracking webhook, with the basic auth it was configured with."""
    response = requests.post(
        f"{live_server.url}/anymail/postmark/tracking/",
        data=json.dumps(event),
        headers={
            "Content-Type": "application/json",
            "Authorization": "Basic " + base64.b64encode(WEBHOOK_SECRET.encode()).decode(),
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text


def test_a_bounced_welcome_email_is_held_fixed_resent_and_delivered(
    page, live_server, live_pipeline, postmark
):
    ServiceFactory(service_id="website-care", name="Website Care Plan")
    live_pipeline.pay(email="ada@exmaple.com", name="Ada Lovelace")
    run_queued_tasks()
    sent = postmark.messages[0]
    postmark_reports(
        live_server,
        {  # Anymail's test payload for a Postmark hard bounce
            "RecordType": "Bounce",
            "ID": 901542550,
            "Type": "HardBounce",
            "TypeCode": 1,
            "Name": "Hard bounce",
            "MessageID": sent["message_id"],
            "Description": "The server was unable to deliver your message"
            " (ex: unknown user, mailbox not found).",
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
            "Email": "ada@exmaple.com",
            "BouncedAt": datetime.now(UTC).isoformat(),
            "Inactive": True,
            "Metadata": sent["metadata"],
        },
    )
    operations = staff_user("Operations")

    log_in(page, live_server, operations)
    queue = page.locator(".dash-queues tr", has_text="Welcome emails bounced")
    expect(queue.locator(".queue-count")).to_have_text("1")
    queue.get_by_role("link").click()
    held_row = page.locator("#result_list tbody tr", has_text="ada@exmaple.com")
    expect(held_row).to_contain_text("Welcome email bounced")
    expect(held_row).to_contain_text("550 5.1.1")

    # Staff fix the address on the client's page ...
    page.goto(f"{live_server.url}/admin/crm/client/")
    page.locator("#result_list").get_by_role("link", name="ada@exmaple.com").click()
    expect(page.locator("#welcome-email-delivery")).to_contain_text("Bounced")
    page.locator("input[name=email]").fill("ada@example.com")
    page.locator("input[name=_save]").click()
    expect(page.locator(".messagelist .success")).to_be_visible()

    # ... and resend the welcome email.
    run_action(page, "Resend welcome email (fresh link)", "ada@example.com")
    expect(page.locator(".messagelist .success")).to_have_text("Welcome emails queued: 1 of 1.")
    run_queued_tasks()
    resent = postmark.messages[-1]
    assert resent["to"] == ["ada@example.com"]
    postmark_reports(
        live_server,
        {  # Anymail's test payload for a Postmark delivery
            "RecordType": "Delivery",
            "ServerId": 23,
            "MessageID": resent["message_id"],
            "Recipient": "ada@example.com",
            "Tag": "welcome",
            "Metadata": resent["metadata"],
            "DeliveredAt": datetime.now(UTC).isoformat(),
            "Details": "Test delivery webhook details",
        },
    )

    page.locator("#result_list").get_by_role("link", name="ada@example.com").click()
    expect(page.locator("#welcome-email-delivery")).to_contain_text("Delivered")
    expect(page.locator("#client-summary")).to_contain_text("Onboarded")
    timeline = page.locator("#timeline")
    expect(timeline).to_contain_text("Welcome email bounced (ada@exmaple.com), Postmark")
    expect(timeline).to_contain_text("Welcome email delivered (ada@example.com), Postmark")
    page.goto(f"{live_server.url}/admin/crm/heldonboarding/")
    expect(page.locator("#result_list")).to_have_count(0)
    assert Onboarding.objects.get().status == Onboarding.Status.ONBOARDED
    assert uuid.UUID(resent["message_id"]) != uuid.UUID(sent["message_id"])
