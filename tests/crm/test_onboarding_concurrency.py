"""Duplicate and concurrent deliveries of one paid checkout, on PostgreSQL, end in one of each."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core import mail
from django.db import connection

from crm.models import Client, Onboarding, Payment
from crm.services.emails import welcome_email_send
from crm.services.workspace_step import workspace_step_run
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
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrency is tested on PostgreSQL"),
]


def test_20_concurrent_deliveries_give_one_client_payment_email_and_workspace(
    live_server, sandbox, anymail_outbox, service
):
    endpoint, _ = webhook_endpoint_register(secret=WEBHOOK_SECRET, base_url=live_server.url)
    assert deliver_concurrently(endpoint.url, paid_event_body(sandbox), times=20) == [200] * 20

    job_ids = list(StripeWebhookJob.objects.values_list("id", flat=True))
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda job_id: in_own_connection(webhook_job_run, job_id=job_id), job_ids))
    onboarding = Onboarding.objects.get()
    # The email and workspace tasks, each run by 6 workers at once.
    with ThreadPoolExecutor(max_workers=12) as pool:
        runs = [
            pool.submit(in_own_connection, welcome_email_send, onboarding_id=onboarding.id) for _ in range(6)
        ]
        runs += [
            pool.submit(in_own_connection, workspace_step_run, onboarding_id=onboarding.id) for _ in range(6)
        ]
        [run.result() for run in runs]
    run_queued_tasks()  # the queued copies of all of the above: each a no-op now

    assert Client.objects.count() == 1 and Payment.objects.count() == 1
    assert Client.objects.get().invoiced_value == 1000
    assert len(mail.outbox) == 1
    assert Workspace.objects.count() == 1
    onboarding.refresh_from_db()
    assert onboarding.status == Onboarding.Status.ONBOARDED
    assert (onboarding.email_attempts, onboarding.workspace_attempts) == (1, 1)
