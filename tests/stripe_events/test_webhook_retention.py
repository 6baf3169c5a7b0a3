"""Webhook bodies and headers (personal data) are emptied after the retention period; the record stays."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule
from djstripe.models import WebhookEventTrigger

from stripe_events.models import StripeWebhookJob
from stripe_events.retention import PURGED_NOTE, webhook_triggers_purge
from tests.support.migrations import migration_code_rerun

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("service", "anymail_outbox")]


def age(trigger_ids, days: int) -> None:
    WebhookEventTrigger.objects.filter(id__in=trigger_ids).update(
        created=timezone.now() - timedelta(days=days)
    )


def test_old_finished_deliveries_lose_body_and_headers_but_stay_listed(pipeline, settings):
    settings.WEBHOOK_RETENTION_DAYS = 30
    pipeline.pay_and_process(email="old@example.com", name="Old Client")
    pipeline.pay_and_process(email="new@example.com")
    old, new = WebhookEventTrigger.objects.order_by("id")
    age([old.id], 31)
    age([new.id], 29)

    assert webhook_triggers_purge() == 1
    old.refresh_from_db()
    new.refresh_from_db()
    assert (old.body, old.headers) == (PURGED_NOTE, {})
    assert "old@example.com" not in str(old.__dict__) and old.valid
    assert "new@example.com" in new.body
    assert webhook_triggers_purge() == 0  # already purged


def test_a_delivery_whose_job_may_still_run_keeps_its_body(pipeline, settings):
    settings.WEBHOOK_RETENTION_DAYS = 30
    checkout = pipeline.checkout()
    pipeline.deliver(checkout["events"][0])  # queued, not yet worked
    trigger = WebhookEventTrigger.objects.get()
    age([trigger.id], 40)
    assert StripeWebhookJob.objects.get().status == StripeWebhookJob.Status.QUEUED
    assert webhook_triggers_purge() == 0


def test_the_purge_runs_daily(db):
    migration_code_rerun("stripe_events", "0002_trigger_purge_schedule")
    assert (
        Schedule.objects.get(name="Purge old webhook bodies").func
        == "stripe_events.tasks.webhook_triggers_purge"
    )
