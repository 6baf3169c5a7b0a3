"""The workspace step: provision once per client and service, safely re-run, retried on failure."""

import threading
import time

import pytest
from django.db import connection
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from core import retry
from crm.models import Client, Onboarding, Service
from crm.services.workspace_step import workspace_step_requeue, workspace_step_run
from crm.tasks import workspace_step_run as workspace_step_task
from provisioning.backends import ProvisionResult
from provisioning.models import Workspace
from tests.factories import ClientFactory, OnboardingFactory, ServiceFactory

Step = Onboarding.StepStatus


class UnreachableBackend:
    """Stands in for an external provisioning API that is down."""

    def provision(self, workspace):
        raise ConnectionError("provisioning API unreachable")


class SlowBackend:
    """Stands in for an external provisioning API that takes a while, to widen race windows."""

    def provision(self, workspace):
        time.sleep(0.3)
        return ProvisionResult(
            url=f"https://dashboards.example/{workspace.id}", external_id=f"slow-{workspace.id}"
        )


def dotted(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def onboarding_create(*, client: Client, service: Service, **fields) -> Onboarding:
    """An onboarding whose email is sent and whose workspace step is queued."""
    defaults = {
        "status": Onboarding.Status.IN_PROGRESS,
        "email_status": Step.DONE,
        "workspace_status": Step.PENDING,
        "amount": 12345,
        "currency": "usd",
    }
    return OnboardingFactory(client=client, service=service, **{**defaults, **fields})


@pytest.fixture
def onboarding(db) -> Onboarding:
    return onboarding_create(
        client=ClientFactory(), service=ServiceFactory(service_id="seo-audit", name="SEO audit")
    )


def test_provisions_one_ready_workspace_and_marks_step_done(onboarding, settings):
    status = workspace_step_run(onboarding_id=onboarding.id)

    assert status == Step.DONE
    workspace = Workspace.objects.get()
    assert (workspace.client, workspace.service) == (onboarding.client, onboarding.service)
    assert workspace.status == Workspace.Status.READY
    assert workspace.url == f"{settings.SITE_URL}/portal/workspaces/{workspace.id}/"
    assert workspace.external_id == f"local-{workspace.id}"
    assert workspace.backend == "provisioning.backends.LocalBackend"
    assert workspace.attempts == 1
    assert workspace.ready_at is not None
    onboarding.refresh_from_db()
    assert onboarding.workspace_status == Step.DONE
    assert onboarding.workspace_attempts == 1
    # Email already done, so crm.services.onboarding_finish_if_done completes the onboarding.
    assert onboarding.status == Onboarding.Status.ONBOARDED


def test_task_is_a_door_into_the_service(onboarding):
    assert workspace_step_task(onboarding.id) == Step.DONE
    assert Workspace.objects.filter(status=Workspace.Status.READY).count() == 1


def test_running_twice_keeps_one_workspace_and_second_run_is_a_noop(onboarding):
    workspace_step_run(onboarding_id=onboarding.id)
    first = Workspace.objects.get()

    assert workspace_step_run(onboarding_id=onboarding.id) == Step.DONE

    workspace = Workspace.objects.get()
    assert (workspace.id, workspace.attempts, workspace.updated) == (first.id, 1, first.updated)
    onboarding.refresh_from_db()
    assert onboarding.workspace_attempts == 1


@pytest.mark.parametrize("status", [Step.NOT_STARTED, Step.SKIPPED, Step.DONE, Step.FAILED])
def test_step_not_queued_is_not_run(onboarding, status):
    Onboarding.objects.filter(id=onboarding.id).update(workspace_status=status)

    assert workspace_step_run(onboarding_id=onboarding.id) == status
    assert not Workspace.objects.exists()


def test_returning_client_reuses_the_ready_workspace(onboarding):
    workspace_step_run(onboarding_id=onboarding.id)
    second = onboarding_create(client=onboarding.client, service=onboarding.service)

    assert workspace_step_run(onboarding_id=second.id) == Step.DONE

    workspace = Workspace.objects.get()
    assert workspace.attempts == 1  # the backend was not called again


def test_step_left_running_by_a_dead_worker_is_taken_over(onboarding):
    long_ago = timezone.now() - timezone.timedelta(hours=1)
    Onboarding.objects.filter(id=onboarding.id).update(
        workspace_status=Step.RUNNING, workspace_claimed_at=long_ago, updated=long_ago
    )

    assert workspace_step_run(onboarding_id=onboarding.id) == Step.DONE


def test_step_running_recently_is_left_alone(onboarding):
    Onboarding.objects.filter(id=onboarding.id).update(
        workspace_status=Step.RUNNING, workspace_claimed_at=timezone.now(), updated=timezone.now()
    )

    assert workspace_step_run(onboarding_id=onboarding.id) == Step.RUNNING
    assert not Workspace.objects.exists()


def test_backend_failure_records_error_and_schedules_a_retry(onboarding, settings):
    settings.PROVISIONING_BACKEND = dotted(UnreachableBackend)

    assert workspace_step_run(onboarding_id=onboarding.id) == Step.RETRYING

    error = "ConnectionError: provisioning API unreachable"
    workspace = Workspace.objects.get()
    assert (workspace.status, workspace.last_error, workspace.attempts) == (Workspace.Status.FAILED, error, 1)
    onboarding.refresh_from_db()
    assert (onboarding.workspace_status, onboarding.workspace_last_error) == (Step.RETRYING, error)
    assert onboarding.workspace_attempts == 1
    assert onboarding.status == Onboarding.Status.IN_PROGRESS
    schedule = Schedule.objects.get(func="crm.tasks.workspace_step_run")  # exactly one retry
    assert schedule.args == f"({onboarding.id},)"
    assert schedule.schedule_type == Schedule.ONCE
    assert schedule.next_run > timezone.now()


def test_retry_after_a_failure_provisions_and_clears_the_error(onboarding, settings):
    settings.PROVISIONING_BACKEND = dotted(UnreachableBackend)
    workspace_step_run(onboarding_id=onboarding.id)
    settings.PROVISIONING_BACKEND = "provisioning.backends.LocalBackend"

    assert workspace_step_task(onboarding.id) == Step.DONE

    workspace = Workspace.objects.get()
    assert (workspace.status, workspace.last_error, workspace.attempts) == (Workspace.Status.READY, "", 2)
    onboarding.refresh_from_db()
    assert (onboarding.workspace_last_error, onboarding.workspace_attempts) == ("", 2)


def test_gives_up_after_the_retry_window(onboarding, settings):
    settings.PROVISIONING_BACKEND = dotted(UnreachableBackend)
    settings.RETRY_WINDOW_HOURS = 0.1  # 30 s doubling: 5 attempts
    max_attempts = retry.max_attempts()

    statuses = [workspace_step_task(onboarding.id) for _ in range(max_attempts)]

    assert statuses == [Step.RETRYING] * (max_attempts - 1) + [Step.FAILED]
    assert (
        Schedule.objects.filter(func="crm.tasks.workspace_step_run").count() == max_attempts - 1
    )  # no retry after giving up
    onboarding.refresh_from_db()
    assert onboarding.workspace_attempts == max_attempts
    assert onboarding.workspace_last_error == "ConnectionError: provisioning API unreachable"
    assert onboarding.status == Onboarding.Status.FAILED
    assert Workspace.objects.get().status == Workspace.Status.FAILED
    # A stray retry after giving up changes nothing.
    assert workspace_step_task(onboarding.id) == Step.FAILED
    assert Workspace.objects.get().attempts == max_attempts


def test_staff_retry_queues_a_failed_step_in_the_same_transaction(onboarding):
    Onboarding.objects.filter(id=onboarding.id).update(workspace_status=Step.FAILED)

    assert workspace_step_requeue(onboarding=onboarding) is True

    onboarding.refresh_from_db()
    assert onboarding.workspace_status == Step.PENDING
    assert OrmQ.objects.count() == 1  # the django-q2 ORM broker's queued task


def test_staff_retry_refuses_a_step_that_is_done(onboarding, django_capture_on_commit_callbacks):
    workspace_step_run(onboarding_id=onboarding.id)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert workspace_step_requeue(onboarding=onboarding) is False

    assert callbacks == []
    onboarding.refresh_from_db()
    assert onboarding.workspace_status == Step.DONE


def run_concurrently(*calls) -> list:
    """Run each call in its own thread and connection, started together; returns results or errors."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait()
            results[index] = call()
        except Exception as exc:  # noqa: BLE001 - reported to the test, not swallowed
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs PostgreSQL: SQLite serialises all writers, so there is no race to test",
)
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["provisioning.backends.LocalBackend", dotted(SlowBackend)])
def test_concurrent_onboardings_of_one_client_and_service_share_one_workspace(settings, caplog, backend):
    settings.PROVISIONING_BACKEND = backend
    client, service = ClientFactory(), ServiceFactory(service_id="seo-audit", name="SEO audit")
    first = onboarding_create(client=client, service=service)
    second = onboarding_create(client=client, service=service)

    results = run_concurrently(
        lambda: workspace_step_run(onboarding_id=first.id),
        lambda: workspace_step_run(onboarding_id=second.id),
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    assert Step.DONE in results
    # The loser either found the workspace ready or waits for a retry while the winner provisions.
    assert set(results) <= {Step.DONE, Step.RETRYING}
    workspace = Workspace.objects.get()
    assert (workspace.status, workspace.attempts) == (Workspace.Status.READY, 1)
    assert not [r for r in caplog.records if r.levelname in {"WARNING", "ERROR", "CRITICAL"}]

    # The scheduled retry of the loser (if any) then finds the ready workspace.
    for onboarding in (first, second):
        workspace_step_task(onboarding.id)
        onboarding.refresh_from_db()
        assert onboarding.workspace_status == Step.DONE
    assert Workspace.objects.get().attempts == 1
