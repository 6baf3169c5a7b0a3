"""Work a dead worker left "running" goes back to the queue within a minute, with no one asking.

A worker can die mid-task (SIGKILL, OOM) or lose its database connection mid-task (PostgreSQL
restarted, bench/failure_drills.py), after which django-q does not run that task again: the step
stayed "running" until the daily reconciliation. The rows below are what such a worker leaves.
"""

import importlib
from datetime import timedelta

import pytest
from django.apps import apps as django_apps
from django.utils import timezone
from django_q.models import Schedule

from crm.models import Onboarding
from crm.tasks import requeue_abandoned_work
from provisioning.models import Workspace
from stripe_events.models import StripeWebhookJob
from tests.support.pipeline import run_queued_tasks

Step = Onboarding.StepStatus
pytestmark = pytest.mark.usefixtures("anymail_outbox", "service")


def long_ago():
    return timezone.now() - timedelta(hours=1)


def test_a_schedule_requeues_abandoned_work_every_minute(db):
    importlib.import_module("crm.migrations.0015_abandoned_work_schedule").schedule_create(django_apps, None)
    schedule = Schedule.objects.get(func="crm.tasks.requeue_abandoned_work")
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 1, -1)


def test_a_workspace_and_an_email_left_running_by_a_dead_worker_finish(pipeline):
    pipeline.pay_and_process()
    onboarding = Onboarding.objects.get()
    Onboarding.objects.filter(id=onboarding.id).update(status=Onboarding.Status.IN_PROGRESS)
    # Claimed by a worker that died before it could record anything.
    Onboarding.objects.filter(id=onboarding.id).update(
        email_status=Step.RUNNING,
        email_attempts=1,
        email_claimed_at=long_ago(),
        workspace_status=Step.RUNNING,
        workspace_claimed_at=long_ago(),
        workspace_attempts=1,
        updated=long_ago(),
    )
    Workspace.objects.update(status=Workspace.Status.PROVISIONING, url="", updated=long_ago())
    from django_q.models import OrmQ

    OrmQ.objects.all().delete()  # their queue messages are gone (acknowledged as failed)

    assert requeue_abandoned_work() == 2
    run_queued_tasks()

    onboarding.refresh_from_db()
    assert (onboarding.status, onboarding.email_status, onboarding.workspace_status) == (
        Onboarding.Status.ONBOARDED,
        Step.DONE,
        Step.DONE,
    )
    assert Workspace.objects.get().status == Workspace.Status.READY
    assert requeue_abandoned_work() == 0  # nothing left


def test_a_webhook_job_left_running_by_a_dead_worker_is_processed(pipeline):
    pipeline.deliver(pipeline.checkout()["events"][0])
    from django_q.models import OrmQ

    OrmQ.objects.all().delete()
    StripeWebhookJob.objects.update(status="running", attempts=1, updated=long_ago())

    assert requeue_abandoned_work() == 1
    run_queued_tasks()

    assert StripeWebhookJob.objects.get().status == "succeeded"
    assert Onboarding.objects.get().status == Onboarding.Status.ONBOARDED


def test_work_still_inside_the_queue_timeout_is_left_to_its_worker(pipeline):
    pipeline.deliver(pipeline.checkout()["events"][0])
    StripeWebhookJob.objects.update(status="running", attempts=1, updated=timezone.now())
    assert requeue_abandoned_work() == 0
