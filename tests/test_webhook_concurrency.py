"""Duplicate deliveries at once, on PostgreSQL: one Event, no 500, no IntegrityError."""

import json
import logging
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import connection, connections
from djstripe.models import Event, WebhookEventTrigger

from crm.models import StripeWebhookJob
from crm.webhook_endpoints import webhook_endpoint_register
from crm.webhook_jobs import webhook_job_run
from stripe_sandbox.signing import sign_payload
from tests.conftest import WEBHOOK_SECRET

pytestmark = pytest.mark.django_db(transaction=True)


def in_own_connection(func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    finally:
        connections.close_all()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrency is tested on PostgreSQL")
def test_same_event_delivered_20_times_concurrently_is_processed_once(live_server, sandbox, caplog):
    caplog.set_level(logging.INFO)
    endpoint, _ = webhook_endpoint_register(secret=WEBHOOK_SECRET, base_url=live_server.url)
    event_id = sandbox.create_checkout(
        email="dup@example.com",
        name="Dup",
        service_id="website-care",
        amount=1000,
        currency="usd",
        deliver=False,
    )["events"][0]
    event = sandbox.store.get("event", event_id)
    body = json.dumps(event)

    def deliver(_):
        headers = {"Stripe-Signature": sign_payload(body, WEBHOOK_SECRET), "Content-Type": "application/json"}
        return requests.post(endpoint.url, data=body, headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(deliver, range(20)))
    assert statuses == [200] * 20
    assert WebhookEventTrigger.objects.filter(valid=True).count() == 20

    job_ids = list(StripeWebhookJob.objects.values_list("id", flat=True))
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda job_id: in_own_connection(webhook_job_run, job_id=job_id), job_ids))

    assert results == ["succeeded"] * 20
    assert Event.objects.filter(id=event["id"]).count() == 1
    assert WebhookEventTrigger.objects.filter(processed=True).count() == 20
    assert "IntegrityError" not in caplog.text
