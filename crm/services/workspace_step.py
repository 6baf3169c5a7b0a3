"""The onboarding's workspace step: claim it, have provisioning provision, retry or finish.

The state machine (Onboarding.workspace_status) lives here; provisioning only provisions a
workspace for a client and a service and knows nothing of onboarding.
"""

import logging

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from core.queue import enqueue_transactionally
from core.retry import abandoned_before, max_attempts, retry_schedule
from provisioning.models import Workspace
from provisioning.services import workspace_provision

from ..models import Onboarding
from .activity import Kind, activity_record
from .onboarding import WORKSPACE_TASK, onboarding_finish_if_done

logger = logging.getLogger(__name__)

Step = Onboarding.StepStatus


def workspace_step_run(*, onboarding_id: int) -> str:
    """Give the onboarding's client a ready workspace for its service; returns the step's status.

    Safe to run twice or concurrently: only a pending or retrying step is claimed, and onboardings
    of the same client and service share one workspace, provisioned by one run at a time.
    """
    now = timezone.now()
    # The step's own claim time: Onboarding.updated also moves with the email step.
    abandoned = Q(workspace_status=Step.RUNNING, workspace_claimed_at__lt=abandoned_before(now))
    claimable = Q(workspace_status__in=[Step.PENDING, Step.RETRYING])
    claimed = Onboarding.objects.filter(claimable | abandoned, id=onboarding_id).update(
        workspace_status=Step.RUNNING,
        workspace_attempts=F("workspace_attempts") + 1,
        workspace_claimed_at=now,
        updated=now,
    )
    onboarding = Onboarding.objects.get(id=onboarding_id)
    if not claimed:
        return onboarding.workspace_status
    if onboarding.client_id is None or onboarding.service_id is None:
        return _step_finish(
            onboarding, Step.FAILED, error="No client or service to provision a workspace for."
        )

    workspace = workspace_provision(client_id=onboarding.client_id, service_id=onboarding.service_id)
    if workspace.status == Workspace.Status.READY:
        if workspace.ready_at and workspace.ready_at >= now:  # provisioned by this run, not before
            activity_record(
                kind=Kind.WORKSPACE, summary=f"Workspace ready at {workspace.url}", onboarding=onboarding
            )
        return _step_finish(onboarding, Step.DONE)
    if workspace.status == Workspace.Status.SUSPENDED:
        # Provisioned before and suspended since: the service ended for this client (a refund, a
        # lost dispute, a cancellation), possibly processed before this onboarding's step ran.
        # The workspace exists; whether it runs is the client's lifecycle's business (a new
        # payment resumes it, crm.services.lifecycle), so the step is done, not retried.
        activity_record(
            kind=Kind.WORKSPACE,
            summary="Workspace exists but is suspended (the service has ended); a new payment resumes it",
            onboarding=onboarding,
        )
        return _step_finish(onboarding, Step.DONE)
    if workspace.status == Workspace.Status.FAILED and workspace.rejected:
        # The backend refused it (4xx): retrying cannot help, staff see the backend's answer.
        activity_record(
            kind=Kind.WORKSPACE,
            summary="Workspace refused by the backend",
            detail=workspace.last_error,
            onboarding=onboarding,
        )
        return _step_finish(onboarding, Step.FAILED, error=workspace.last_error)
    if workspace.status == Workspace.Status.FAILED:
        return _step_retry_or_give_up(onboarding, error=workspace.last_error)
    if workspace.callback_due:
        # An asynchronous backend accepted it: its callback requeues this step (crm.receivers).
        return _step_retry_or_give_up(
            onboarding, error="Waiting for the provisioning backend's callback.", busy=True
        )
    # Another onboarding of this client is provisioning the same workspace right now; the
    # retry will find it ready (or take it over if that worker died).
    return _step_retry_or_give_up(
        onboarding,
        error="The workspace is being provisioned by another onboarding; checking again later.",
        busy=True,
    )


def workspace_steps_wake(*, client_id: int, service_id: int) -> int:
    """A workspace changed outside its step (a backend's callback): the steps waiting on it run now."""
    waiting = Onboarding.objects.filter(
        client_id=client_id, service_id=service_id, workspace_status=Step.RETRYING
    ).only("id")
    return sum(workspace_step_requeue(onboarding=onboarding) for onboarding in waiting)


def workspace_step_requeue(*, onboarding: Onboarding, take_over: bool = False) -> bool:
    """Queue a failed or waiting workspace step again now; False if there is nothing to queue.

    The one door for a requeue (staff's retry, reconciliation). With `take_over` (reconciliation)
    a step still pending, or running in a worker that died, is queued too: its message may be
    lost, and the task claims a pending step or takes over an abandoned one (a duplicate is a no-op).
    """
    requeued = Onboarding.objects.filter(
        id=onboarding.id, workspace_status__in=[Step.FAILED, Step.RETRYING]
    ).update(workspace_status=Step.PENDING, updated=timezone.now())
    if not requeued and take_over:
        stalled = Q(workspace_status=Step.PENDING) | Q(
            workspace_status=Step.RUNNING, workspace_claimed_at__lt=abandoned_before()
        )
        requeued = Onboarding.objects.filter(stalled, id=onboarding.id).exists()
    if requeued:
        enqueue_transactionally(WORKSPACE_TASK, onboarding.id)
    return bool(requeued)


def _step_retry_or_give_up(onboarding: Onboarding, *, error: str, busy: bool = False) -> str:
    attempts = onboarding.workspace_attempts
    if attempts >= max_attempts():  # retried for RETRY_WINDOW_HOURS, then failed for staff
        logger.error(
            "Giving up on the workspace for onboarding %s after %s attempts", onboarding.id, attempts
        )
        activity_record(
            kind=Kind.WORKSPACE,
            summary=f"Workspace attempt {attempts} failed; giving up",
            detail=error,
            onboarding=onboarding,
        )
        return _step_finish(onboarding, Step.FAILED, error=error)
    if busy:
        logger.info(
            "Workspace for onboarding %s is busy (attempt %s); retrying later", onboarding.id, attempts
        )
    else:
        logger.warning("Workspace for onboarding %s failed (attempt %s): %s", onboarding.id, attempts, error)
        activity_record(
            kind=Kind.WORKSPACE,
            summary=f"Workspace attempt {attempts} failed; will retry",
            detail=error,
            onboarding=onboarding,
        )
    # Status and schedule together, so a step never waits for a retry that does not exist.
    with transaction.atomic():
        _step_set(onboarding, Step.RETRYING, error=error)
        retry_schedule(func=WORKSPACE_TASK, arg=onboarding.id, attempts=attempts)
    return Step.RETRYING


def _step_finish(onboarding: Onboarding, status: str, *, error: str = "") -> str:
    _step_set(onboarding, status, error=error)
    # Moves the onboarding on once both steps are settled (onboarded, or failed for staff).
    onboarding_finish_if_done(onboarding_id=onboarding.id)
    return status


def _step_set(onboarding: Onboarding, status: str, *, error: str) -> None:
    # Only while the step is still this run's: never overwrite a state someone else has moved it to.
    Onboarding.objects.filter(id=onboarding.id, workspace_status=Step.RUNNING).update(
        workspace_status=status, workspace_last_error=error, updated=timezone.now()
    )
    onboarding.workspace_status = status
    onboarding.workspace_last_error = error
