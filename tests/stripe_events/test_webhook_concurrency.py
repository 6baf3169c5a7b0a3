"""Duplicate deliveries at once, on PostgreSQL: one Event, no 500, no IntegrityError."""

import json
import logging
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from djstripe.models import Event, WebhookEventTrigger

from stripe_events.models import StripeWebhookJob
from stripe_events.webhook_endpoints import webhook_endpoint_register
from stripe_events.webhook_jobs import webhook_job_run
from tests.support.pipeline import WEBHOOK_SECRET, deliver_concurrently, in_own_connection, paid_event_body

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrency is tested on PostgreSQL")
def test_same_event_delivered_20_times_concurrently_is_processed_once(live_server, sandbox, caplog):
    caplog.set_level(logging.INFO)
    endpoint, _ = webhook_endpoint_register(secret=WEBHOOK_SECRET, base_url=live_server.url)
    body = paid_event_body(sandbox)
    event_id = json.loads(body)["id"]
    assert deliver_concurrently(endpoint.url, body, times=20) == [200] * 20
    assert WebhookEventTrigger.objects.filter(valid=True).count() == 20

    job_ids = list(StripeWebhookJob.objects.values_list("id", flat=True))
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda job_id: in_own_connection(webhook_job_run, job_id=job_id), job_ids))

    assert results == ["succeeded"] * 20
    assert Event.objects.filter(id=event_id).count() == 1
    assert WebhookEventTrigger.objects.filter(processed=True).count() == 20
    assert "IntegrityError" not in caplog.text
