"""The retry schedule every step shares (core.retry): it outlasts a day-long outage, at most an hour apart."""

from core.retry import backoff_seconds, max_attempts
from crm.models import Onboarding
from crm.tasks import welcome_email_send
from provisioning.tasks import workspace_provision
from stripe_events.models import StripeWebhookJob
from stripe_events.webhook_jobs import webhook_job_run
from tests.provisioning.test_provisioning import UnreachableBackend, dotted

Step = Onboarding.StepStatus


def delays(attempts: int) -> list[float]:
    """The waits between `attempts` attempts."""
    return [backoff_seconds(n) for n in range(1, attempts)]


def test_by_default_retries_span_a_day_with_at_most_an_hour_between_attempts():
    waits = delays(max_attempts())
    assert waits[:3] == [30, 60, 120] and max(waits) == 3600
    assert 24 * 3600 <= sum(waits) < 25 * 3600
    assert sum(waits[:-1]) < 24 * 3600  # no attempt more than the window needs


def test_the_window_and_the_delays_come_from_settings(settings):
    settings.RETRY_WINDOW_HOURS = 48
    assert 48 * 3600 <= sum(delays(max_attempts())) < 49 * 3600
    settings.RETRY_BASE_DELAY_SECONDS, settings.RETRY_MAX_DELAY_SECONDS = 1, 4
    settings.RETRY_WINDOW_HOURS = 0.01  # 36 s: 1 + 2 + 4 * 9 = 39 s
    assert delays(max_attempts()) == [1, 2] + [4] * 9


def test_a_welcome_email_is_retried_through_a_day_long_esp_outage_then_sent(pipeline, service, postmark):
    postmark.fail_next(max_attempts() - 1)
    pipeline.pay_and_process()
    onboarding = Onboarding.objects.get()
    for _ in range(max_attempts() - 2):  # the 6th failure gave up before
        assert welcome_email_send(onboarding_id=onboarding.id) == Step.RETRYING

    assert welcome_email_send(onboarding_id=onboarding.id) == Step.DONE  # the last attempt, a day later
    assert len(postmark.messages) == 1


def test_the_workspace_and_a_webhook_job_still_retry_after_twenty_failures(
    pipeline, service, sandbox, settings
):
    settings.PROVISIONING_BACKEND = dotted(UnreachableBackend)
    pipeline.pay_and_process()
    onboarding = Onboarding.objects.get()
    Onboarding.objects.filter(id=onboarding.id).update(workspace_status=Step.RETRYING, workspace_attempts=20)
    assert workspace_provision(onboarding.id) == Step.RETRYING  # was failed after 6

    pipeline.deliver(pipeline.checkout(email="grace@example.com")["events"][0])  # not yet processed
    job = StripeWebhookJob.objects.get(status="queued")
    StripeWebhookJob.objects.filter(id=job.id).update(status="retrying", attempts=20)
    sandbox.set_fault("*", "http_500")
    assert webhook_job_run(job_id=job.id) == "retrying"  # was failed after 8
