"""The webhook's lean path: staff middleware skipped, security kept, the rows the ORM would write."""

import json

import pytest
from django.db import IntegrityError, connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signing import SignedPackage
from djstripe.apps import __version__ as djstripe_version
from djstripe.models import WebhookEventTrigger

from stripe_events.models import StripeWebhookJob
from stripe_events.webhook_jobs import PROCESS_TASK
from tests.support.pipeline import run_next_task, run_with_commit_hooks, signed_post
from tests.support.redis_db import redis_db_or_skip

pytestmark = pytest.mark.django_db


def test_a_valid_delivery_stores_every_column_the_orm_would(pipeline):
    event = pipeline.checkout()["events"][0]

    response = pipeline.deliver(event)

    trigger = WebhookEventTrigger.objects.get()
    job = StripeWebhookJob.objects.get()
    assert response.content.decode() == str(trigger.id)
    assert (trigger.valid, trigger.processed, trigger.exception, trigger.traceback) == (True, False, "", "")
    assert trigger.djstripe_version == djstripe_version
    assert trigger.webhook_endpoint_id == pipeline.endpoint.id
    assert trigger.stripe_trigger_account_id == pipeline.endpoint.djstripe_owner_account_id
    assert trigger.remote_ip == "127.0.0.1"
    assert trigger.headers["Stripe-Signature"].startswith("t=")
    assert trigger.json_body == json.loads(json.dumps(event))
    assert trigger.created is not None and job.created is not None
    if connection.vendor == "postgresql":  # the raw INSERT's one clock reading (SQLite takes the ORM)
        assert trigger.created == trigger.updated == job.created == job.updated
    assert (job.trigger_id, job.event_id, job.event_type) == (trigger.id, event["id"], event["type"])
    assert (job.status, job.attempts, job.last_error, job.next_attempt_at) == ("queued", 0, "", None)


def test_the_webhook_skips_the_staff_session_middleware_but_keeps_security_headers(
    pipeline, client, django_user_model
):
    staff = django_user_model.objects.create_user("ops", password="x" * 20, is_staff=True)
    client.force_login(staff)
    # The chain every other request takes: the staff idle timeout refreshes the session cookie.
    assert "sessionid" in client.get("/healthz/").cookies
    event = pipeline.checkout()["events"][0]

    response = run_with_commit_hooks(signed_post, client, pipeline.path, json.dumps(event))

    assert response.status_code == 200
    assert "sessionid" not in response.cookies  # sessions, auth and the timeout did not run
    assert response.headers["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware did
    assert StripeWebhookJob.objects.filter(event_id=event["id"]).count() == 1


def test_an_unknown_webhook_path_under_the_prefix_is_a_404(client, db):
    assert (
        client.post("/stripe/webhook/not-a-uuid/", data="{}", content_type="application/json").status_code
        == 404
    )


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement ingest is PostgreSQL's")
def test_a_valid_delivery_is_two_statements_and_its_task_runs_its_job(pipeline):
    """The endpoint's SELECT (reserving the job's id) and one INSERT of trigger, job and task."""
    event = pipeline.checkout()["events"][0]

    with CaptureQueriesContext(connection) as queries:
        response = pipeline.deliver(event)

    assert response.status_code == 200
    statements = [query["sql"].strip().split()[0].upper() for query in queries.captured_queries]
    assert statements == ["SELECT", "WITH"], queries.captured_queries
    job = StripeWebhookJob.objects.get()
    assert "nextval" in queries.captured_queries[0]["sql"]
    [(_, payload)] = OrmQ.objects.values_list("key", "payload")
    task = SignedPackage.loads(payload)  # django-q2's own package, as its worker reads it
    assert (task["func"], task["args"]) == (PROCESS_TASK, (job.id,))
    assert run_next_task() == PROCESS_TASK
    job.refresh_from_db()
    assert job.status == StripeWebhookJob.Status.SUCCEEDED


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement ingest is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_when_the_queue_row_cannot_be_written_neither_trigger_nor_job_is_stored(pipeline):
    """All or nothing without a transaction block: the database refuses the task's row (a CHECK
    constraint added for the test), and the trigger and job of the same statement go with it."""
    event = pipeline.checkout()["events"][0]
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {OrmQ._meta.db_table} ADD CONSTRAINT refuse_all CHECK (false) NOT VALID")
    try:
        with pytest.raises(IntegrityError):
            pipeline.deliver(event)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {OrmQ._meta.db_table} DROP CONSTRAINT refuse_all")

    assert not WebhookEventTrigger.objects.exists()
    assert not StripeWebhookJob.objects.exists()
    assert pipeline.deliver(event).status_code == 200  # Stripe's retry then stores all three
    assert (WebhookEventTrigger.objects.count(), StripeWebhookJob.objects.count(), OrmQ.objects.count()) == (
        1,
        1,
        1,
    )


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the raw trigger + job INSERT is PostgreSQL's")
def test_with_the_redis_broker_trigger_and_job_are_one_insert_and_the_task_is_sent_after_the_commit(
    pipeline, client, settings, monkeypatch
):
    """REDIS_URL set: the queue is not in the database, so the view writes trigger and job in one
    INSERT inside a transaction and sends the task to Redis once it commits."""
    url = "redis://127.0.0.1:6379/13"
    redis_db = redis_db_or_skip(url)
    # As settings.py configures django-q2 when REDIS_URL is set (django-q2 reads Conf at import).
    settings.Q_CLUSTER = {
        **{key: value for key, value in settings.Q_CLUSTER.items() if key != "orm"},
        "redis": url,
        "broker_class": "core.brokers.RedisBroker",
    }
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", url)
    monkeypatch.setattr(Conf, "BROKER_CLASS", "core.brokers.RedisBroker")
    event = pipeline.checkout()["events"][0]

    with CaptureQueriesContext(connection) as queries, TestCase.captureOnCommitCallbacks() as on_commit:
        response = signed_post(client, pipeline.path, json.dumps(event))
    assert get_broker().queue_size() == 0  # nothing sent to Redis before the commit
    for callback in on_commit:
        callback()

    assert response.status_code == 200
    sql = [query["sql"] for query in queries.captured_queries]
    assert "nextval" not in sql[0] and not any(OrmQ._meta.db_table in statement for statement in sql)
    job = StripeWebhookJob.objects.get()
    assert job.trigger_id == WebhookEventTrigger.objects.get().id and not OrmQ.objects.exists()
    [(_, payload)] = get_broker().dequeue()
    assert SignedPackage.loads(payload)["args"] == (job.id,)
    redis_db.flushdb()
