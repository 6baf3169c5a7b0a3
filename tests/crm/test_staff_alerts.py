"""Staff alerts: batched per kind and window, delivered to Slack and email, retried, never blocking."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from django_q.models import Schedule
from werkzeug import Response

from core.retry import max_attempts
from crm.models import Onboarding, StaffAlert, StaffAlertBatch
from crm.services.alerts import Kind, admin_url, staff_alert_raise, staff_alerts_flush
from crm.services.emails import welcome_email_send
from crm.services.staff import onboarding_approve
from stripe_events.models import StripeWebhookJob
from stripe_events.webhook_jobs import webhook_job_run
from tests.support.migrations import migration_code_rerun
from tests.support.pipeline import run_with_commit_hooks

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
    migration_code_rerun("crm", "0013_staff_alerts")
    schedule = Schedule.objects.get(name="Staff alerts")
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (
        "crm.tasks.staff_alerts_flush",
        Schedule.MINUTES,
        1,
    )


@pytest.fixture
def channels(settings):
    settings.STAFF_ALERT_EMAILS = ["ops@agency.example"]
    settings.SLACK_WEBHOOK_URL = ""


@pytest.mark.usefixtures("anymail_outbox", "channels")
def test_a_held_onboarding_raises_one_alert_linked_to_needs_review(pipeline, service, settings):
    pipeline.pay_and_process(service_id="no-such-service")
    onboarding = Onboarding.objects.get()
    [alert] = StaffAlert.objects.all()
    assert alert.kind == Kind.HELD and "Unknown service" in alert.summary
    assert alert.url == f"{settings.SITE_URL}/admin/crm/heldonboarding/{onboarding.id}/change/"
    assert "@" not in alert.summary  # ids, not the client's email

    # Approving while still held does not alert again.
    run_with_commit_hooks(onboarding_approve, onboarding=onboarding, actor=None)
    assert StaffAlert.objects.count() == 1


@pytest.mark.usefixtures("channels")
def test_a_step_that_gives_up_raises_a_step_failed_alert(pipeline, service, postmark):
    postmark.fail_next(1000)
    pipeline.pay_and_process()
    onboarding = Onboarding.objects.get()
    for _ in range(max_attempts() - 1):
        welcome_email_send(onboarding_id=onboarding.id)
    assert list(StaffAlert.objects.values_list("kind", flat=True)) == [Kind.STEP_FAILED]


@pytest.mark.usefixtures("anymail_outbox", "channels")
def test_a_webhook_job_that_gives_up_raises_an_alert(pipeline, service, sandbox):
    checkout = pipeline.checkout()
    sandbox.set_fault("*", "http_500", should_retry=False)
    pipeline.deliver(checkout["events"][0])
    job = StripeWebhookJob.objects.get()
    StripeWebhookJob.objects.filter(id=job.id).update(attempts=max_attempts() - 1)
    webhook_job_run(job_id=job.id)
    [alert] = StaffAlert.objects.all()
    assert alert.kind == Kind.WEBHOOK_FAILED and job.event_id in alert.summary
    assert alert.url.endswith(f"/admin/stripe_events/stripewebhookjob/{job.id}/change/")
