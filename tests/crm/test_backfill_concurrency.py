"""The backfill running while webhooks for the same sessions arrive and are worked (PostgreSQL)."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test import Client as HttpClient
from djstripe.models import Session

from crm.backfill import onboarding_backfill
from crm.models import Client, MoneyMovement, Onboarding, Payment
from stripe_events.models import StripeWebhookJob
from tests.factories import ServiceFactory
from tests.support.pipeline import Pipeline, in_own_connection, run_queued_tasks

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("anymail_outbox"),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrency is tested on PostgreSQL"),
]

SINCE = datetime(2025, 3, 1, tzinfo=UTC)
UNTIL = datetime(2025, 4, 1, tzinfo=UTC)
N = 150  # two pages of the backfill


def test_backfill_while_webhooks_arrive_records_each_session_once(sandbox, webhook_endpoint):
    ServiceFactory(service_id="website-care", name="Website Care Plan")
    pipeline = Pipeline(sandbox, webhook_endpoint, HttpClient())
    t0 = int(SINCE.timestamp()) + 60
    checkouts = [
        pipeline.checkout(email=f"c{i}@example.com", name=f"C {i}", amount=1000 + i, created=t0 + 60 * i)
        for i in range(N)
    ]

    def webhooks():
        # Newest first, like the backfill, so both meet the same sessions at the same time.
        for checkout in reversed(checkouts):
            for event in checkout["events"]:
                assert pipeline.deliver(event).status_code == 200
            run_queued_tasks(max_rounds=100_000)  # the backfill enqueues tasks meanwhile

    with ThreadPoolExecutor(max_workers=2) as pool:
        hooks = pool.submit(in_own_connection, webhooks)
        backfill = pool.submit(
            in_own_connection, onboarding_backfill, since=SINCE, until=UNTIL, no_email=True, rate=0
        )
        summary = backfill.result()
        hooks.result()
    run_queued_tasks()

    counts = summary.counts
    assert counts["failed"] == 0 and counts["seen"] == N
    assert counts["onboarded_now"] + counts["already_onboarded"] == N
    assert not StripeWebhookJob.objects.exclude(status="succeeded").exists()
    assert Session.objects.count() == N
    assert Client.objects.count() == N and Payment.objects.count() == N
    assert Onboarding.objects.filter(status=Onboarding.Status.ONBOARDED).count() == N
    # Every payment recorded once in the ledger, and each client's value is its one payment.
    assert MoneyMovement.objects.filter(kind="payment").count() == N
    assert sorted(Client.objects.values_list("invoiced_value", flat=True)) == [1000 + i for i in range(N)]
