"""Operations: liveness and readiness probes, JSON logs with ids, Sentry without personal data."""

import json
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import OrmQ
from django_q.signing import SignedPackage
from django_q.tasks import async_task

from tests.support.pipeline import run_queued_tasks
from tests.support.processes import PRODUCTION, ROOT, manage

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_queue(db):
    """Tasks other tests committed (transactional tests) would be an old queue here."""
    OrmQ.objects.all().delete()


def queued_task(*, enqueued_ago: timedelta, locked: bool = False) -> OrmQ:
    """A task row as the ORM broker stores it, queued `enqueued_ago` while no worker took it."""
    package = {"id": "t1", "name": "t1", "func": "math.floor", "args": (1.5,), "kwargs": {}}
    package["started"] = timezone.now() - enqueued_ago
    return OrmQ.objects.create(
        key=get_broker().list_key,
        payload=SignedPackage.dumps(package),
        # The broker writes lock = enqueue time; a worker that takes the task moves it ahead.
        lock=timezone.now() + timedelta(minutes=3) if locked else package["started"],
    )


def test_liveness_is_always_ok(client):
    assert client.get("/healthz/").content == b"ok"


def test_ready_with_an_empty_or_fresh_queue(client):
    assert client.get("/readyz/").status_code == 200
    async_task("math.floor", 1.5)  # just queued
    response = client.get("/readyz/")
    assert response.status_code == 200 and response.json()["ready"] is True


def test_not_ready_when_the_oldest_queued_task_waited_past_the_threshold(client, settings):
    settings.READINESS_MAX_QUEUE_AGE_SECONDS = 300
    queued_task(enqueued_ago=timedelta(minutes=10))
    response = client.get("/readyz/")
    assert response.status_code == 503
    assert "oldest task waiting 600 s" in response.json()["checks"]["queue"]

    run_queued_tasks()  # a worker comes back and drains the queue
    assert client.get("/readyz/").status_code == 200


def test_a_task_a_worker_is_running_does_not_count_as_waiting(client):
    queued_task(enqueued_ago=timedelta(hours=1), locked=True)
    assert client.get("/readyz/").status_code == 200


def test_not_ready_when_the_database_is_unreachable():
    script = (
        "import django; django.setup(); from django.test import Client; "
        "r = Client().get('/readyz/'); print(r.status_code, r.json()['checks']['database'])"
    )
    env = {
        "DJANGO_DEBUG": "1",
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "DATABASE_URL": "postgres://root@127.0.0.1:1/nowhere",
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "onboarding_project.settings", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.split()[:2] == ["503", "unreachable:"], result.stderr


def test_json_logs_one_object_per_line_with_the_context_ids():
    script = (
        "import logging; from core.log_context import log_context; "
        "log = logging.getLogger('crm.test');"
        'exec(\'with log_context(onboarding_id=7, event_id="evt_1"):\\n    log.warning("step failed")\')'
    )
    result = manage("shell", "-c", script, env={"DJANGO_DEBUG": "1", "LOG_FORMAT": "json"})
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    line = next(entry for entry in lines if entry["logger"] == "crm.test")
    assert (line["message"], line["level"], line["onboarding_id"], line["event_id"]) == (
        "step failed",
        "WARNING",
        "7",
        "evt_1",
    )


def test_sentry_is_on_with_a_dsn_and_never_sends_personal_data():
    script = (
        "import sentry_sdk; o = sentry_sdk.get_client().options; print(bool(o['dsn']), o['send_default_pii'])"
    )
    env = {**PRODUCTION, "SENTRY_DSN": "http://public@127.0.0.1:9/1"}
    result = manage("shell", "-c", script, env=env)
    assert result.stdout.strip().splitlines()[-1] == "True False", result.stderr


def test_a_webhook_jobs_log_lines_carry_its_event_and_job_ids(pipeline, service, caplog):
    import logging

    from core.log_context import LogContextFilter, log_context_clear
    from stripe_events.models import StripeWebhookJob

    checkout = pipeline.checkout()
    pipeline.sandbox.set_fault("*", "http_500", should_retry=False)  # so processing logs a failure
    pipeline.deliver(checkout["events"][0])
    caplog.handler.addFilter(LogContextFilter())
    caplog.set_level(logging.WARNING)
    try:
        pipeline.work()
    finally:
        log_context_clear()
        pipeline.sandbox.clear_faults()
    job = StripeWebhookJob.objects.get()
    [line] = [r for r in caplog.records if r.name == "stripe_events.webhook_jobs"]
    assert (line.event_id, line.job_id) == (job.event_id, str(job.id))
