"""Staff alerts: batched per kind and window, delivered to Slack and email, retried, never blocking."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from django_q.models import Schedule
from werkzeug import Response

from crm.models import StaffAlert, StaffAlertBatch
from crm.services.alerts import Kind, admin_url, staff_alert_raise, staff_alerts_flush

pytestmark = pytest.mark.django_db


@pytest.fixture
def slack(httpserver, settings):
    """Slack's incoming-webhook endpoint, at the network edge."""
    settings.SLACK_WEBHOOK_URL = httpserver.url_for("/services/T000/B000/XXXX")
    settings.STAFF_ALERT_EMAILS = ["ops@agency.example"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.STAFF_ALERT_WINDOW = 300
    return httpserver


def slack_texts(httpserver) -> list[str]:
    return [request.get_json()["text"] for request, _ in httpserver.log]


def raise_held(n: int) -> None:
    for i in range(n):
        staff_alert_raise(kind=Kind.HELD, summary=f"cs_{i} held: unknown service", url=f"http://x/{i}")


def test_a_storm_becomes_one_message_per_kind_per_window_with_the_count_and_first_items(slack):
    slack.expect_request("/services/T000/B000/XXXX", method="POST").respond_with_data("ok")
    raise_held(12)
    staff_alert_raise(kind=Kind.DISPUTE_OPENED, summary="dp_1 on ada@example.com", url="http://x/d")

    assert staff_alerts_flush() == 2
    texts = sorted(slack_texts(slack))
    assert len(texts) == 2 and texts[1].startswith("Onboarding held for review: 12")
    assert texts[1].count("\n- ") == 5 and "… and 7 more" in texts[1]
    assert sorted(m.subject for m in mail.outbox) == [
        "[Onboarding] Dispute opened: 1",
        "[Onboarding] Onboarding held for review: 12",
    ]

    # More of the same kind inside the window wait for the next window.
    raise_held(3)
    assert staff_alerts_flush() == 0 and len(slack_texts(slack)) == 2
    later = timezone.now() + timedelta(seconds=301)
    assert staff_alerts_flush(now=later) == 1
    assert slack_texts(slack)[-1].startswith("Onboarding held for review: 3")


def test_a_failing_channel_is_retried_at_the_next_flush_and_the_other_is_not_held_back(slack):
    slack.expect_oneshot_request("/services/T000/B000/XXXX").respond_with_response(
        Response("down", status=500)
    )
    raise_held(1)
    assert staff_alerts_flush() == 0
    batch = StaffAlertBatch.objects.get()
    assert batch.channels_pending == ["slack"] and "HTTPError" in batch.last_error
    assert len(mail.outbox) == 1  # email went out anyway

    slack.expect_request("/services/T000/B000/XXXX").respond_with_data("ok")
    assert staff_alerts_flush() == 1
    batch.refresh_from_db()
    assert batch.sent_at and batch.channels_pending == [] and len(mail.outbox) == 1


def test_an_unreachable_slack_never_raises_into_the_caller(settings):
    settings.SLACK_WEBHOOK_URL = "http://127.0.0.1:9/unreachable"
    settings.STAFF_ALERT_EMAILS = []
    raise_held(1)
    assert staff_alerts_flush() == 0
    assert "ConnectionError" in StaffAlertBatch.objects.get().last_error


def test_no_channel_configured_records_nothing(settings):
    settings.SLACK_WEBHOOK_URL, settings.STAFF_ALERT_EMAILS = "", []
    assert staff_alert_raise(kind=Kind.HELD, summary="x", url="y") is None
    assert not StaffAlert.objects.exists()


def test_links_are_absolute_admin_urls(settings):
    settings.SITE_URL = "https://app.example.com"
    assert (
        admin_url("admin:crm_onboarding_change", 7)
        == "https://app.example.com/admin/crm/onboarding/7/change/"
    )


def test_the_flush_runs_every_minute(db):
    schedule = Schedule.objects.get(name="Staff alerts")
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (
        "crm.tasks.staff_alerts_flush",
        Schedule.MINUTES,
        1,
    )
