"""Duplicate deliveries at once, on PostgreSQL: no 500, no IntegrityError, the receiver's effect once."""

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core import mail
from django.db import connection, transaction
from djstripe.models import Event, WebhookEventTrigger

from core.locks import lock_name_for_transaction
from crm.models import Activity, Client, Onboarding, Payment
from provisioning.models import Workspace
from stripe_events.models import StripeWebhookJob
from stripe_events.webhook_endpoints import webhook_endpoint_register
from stripe_events.webhook_jobs import webhook_job_run
from tests.support.pipeline import (
    WEBHOOK_SECRET,
    deliver_concurrently,
    in_own_connection,
    paid_event_body,
    run_queued_tasks,
    wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrency is tested on PostgreSQL")
def test_same_event_delivered_20_times_concurrently_is_processed_once(
    live_server, sandbox, service, anymail_outbox, caplog
):
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
    # One Event is dj-stripe's unique id; what our receiver did must also have happened once.
    run_queued_tasks()
    assert (Client.objects.count(), Payment.objects.count(), Onboarding.objects.count()) == (1, 1, 1)
    assert len(mail.outbox) == 1 and Workspace.objects.count() == 1
    assert Client.objects.get().invoiced_value == 1000
    assert Onboarding.objects.get().status == Onboarding.Status.ONBOARDED
    # One event delivered 20 times is one line on the client's timeline.
    assert Activity.objects.filter(summary=f"Stripe checkout.session.completed ({event_id})").count() == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrency is tested on PostgreSQL")
def test_events_about_one_payment_are_processed_one_at_a_time(pipeline, service, anymail_outbox):
    """charge.refunded and refund.* for one refund mirror the same rows in dj-stripe: two workers
    inserting them in different orders deadlocked. A worker waits while another holds the payment."""
    checkout = pipeline.pay_and_process(email="ada@example.com")
    intent_id = checkout["session"]["payment_intent"]
    refund = pipeline.sandbox.refund(checkout["session"]["id"], amount=300, deliver=False)
    event = pipeline.sandbox.store.get("event", refund["events"][0])
    assert pipeline.deliver(event).status_code == 200
    job = StripeWebhookJob.objects.get(event_id=event["id"])

    holding, release = threading.Event(), threading.Event()

    def another_worker_on_the_payment():
        with transaction.atomic():
            lock_name_for_transaction(f"stripe-payment:{intent_id}")
            holding.set()
            release.wait(timeout=30)

    with ThreadPoolExecutor(max_workers=2) as pool:
        other = pool.submit(in_own_connection, another_worker_on_the_payment)
        assert holding.wait(timeout=10)
        ours = pool.submit(in_own_connection, webhook_job_run, job_id=job.id)
        # Our worker is seen waiting on an advisory lock (the payment's), not merely not started.
        assert wait_until(lambda: advisory_lock_waiters() == 1, timeout=10)
        assert not ours.done()  # waiting for the payment, not processing beside it
        release.set()
        other.result(timeout=10)
        assert ours.result(timeout=30) == "succeeded"
    assert Client.objects.get().invoiced_value == checkout["session"]["amount_total"] - 300


def advisory_lock_waiters() -> int:
    """Backends of this database waiting for an advisory lock."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
        )
        return int(cursor.fetchone()[0])
