"""Services for the workspace step of an onboarding: claim, provision once per client+service, record."""

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from crm.activity import Kind, activity_record
from crm.locks import lock_name_for_transaction
from crm.models import Onboarding
from crm.queue import enqueue_transactionally
from crm.retry import abandoned_before, max_attempts, retry_schedule
from crm.services import WORKSPACE_TASK, onboarding_finish_if_done

from .backends import ProvisionResult, get_backend
from .models import Workspace

logger = logging.getLogger(__name__)

Step = Onboarding.StepStatus


def workspace_provision_for_onboarding(*, onboarding_id: int) -> str:
    """Give the onboarding's client a ready workspace for its service; returns the step's status.

    Safe to run twice or concurrently: only a pending or retrying step is claimed, and onboardings
    of the same client and service share one workspace, provisioned by one run at a time.
    """
    now = timezone.now()
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

    workspace, workspace_claimed = workspace_claim(
        client_id=onboarding.client_id, service_id=onboarding.service_id
    )
    if workspace.status == Workspace.Status.READY:
        return _step_finish(onboarding, Step.DONE)
    if not workspace_claimed:
        # Another onboarding of this client is provisioning the same workspace right now; the
        # retry will find it ready (or take it over if that worker died).
        return _step_retry_or_give_up(
            onboarding,
            error="The workspace is being provisioned by another onboarding; checking again later.",
            busy=True,
        )

    # The backend may be a slow external system: no transaction or lock is held while it runs.
    try:
        result = get_backend().provision(workspace)
    except Exception as exc:  # noqa: BLE001 - any failure is recorded and retried, never dropped
        error = f"{type(exc).__name__}: {exc}"
        workspace_record_failure(workspace=workspace, error=error)
        return _step_retry_or_give_up(onboarding, error=error)

    workspace_record_ready(workspace=workspace, result=result)
    activity_record(kind=Kind.WORKSPACE, summary=f"Workspace ready at {result.url}", onboarding=onboarding)
    return _step_finish(onboarding, Step.DONE)


def workspace_claim(*, client_id: int, service_id: int) -> tuple[Workspace, bool]:
    """Get or create the client's workspace for the service and claim it for provisioning.

    Returns the workspace and whether this caller claimed it (False when it is ready, or another
    run is provisioning it).
    """
    now = timezone.now()
    abandoned = Q(status=Workspace.Status.PROVISIONING, updated__lt=abandoned_before())
    claimable = Q(status__in=[Workspace.Status.PENDING, Workspace.Status.FAILED])
    with transaction.atomic():
        # Serialise get_or_create for this pair, so a concurrent run waits for the first one's
        # row instead of hitting the unique constraint.
        lock_name_for_transaction(f"workspace:{client_id}:{service_id}")
        workspace, _ = Workspace.objects.get_or_create(client_id=client_id, service_id=service_id)
        claimed = Workspace.objects.filter(claimable | abandoned, id=workspace.id).update(
            status=Workspace.Status.PROVISIONING, attempts=F("attempts") + 1, updated=now
        )
    workspace.refresh_from_db()
    return workspace, bool(claimed)


def workspace_record_ready(*, workspace: Workspace, result: ProvisionResult) -> Workspace:
    """Record what the backend provisioned."""
    workspace.status = Workspace.Status.READY
    workspace.url = result.url
    workspace.external_id = result.external_id
    workspace.backend = settings.PROVISIONING_BACKEND
    workspace.last_error = ""
    workspace.ready_at = timezone.now()
    workspace.save(
        update_fields=["status", "url", "external_id", "backend", "last_error", "ready_at", "updated"]
    )
    return workspace


def workspace_record_failure(*, workspace: Workspace, error: str) -> Workspace:
    """Keep the backend's error on the workspace, so the next run claims it again."""
    workspace.status = Workspace.Status.FAILED
    workspace.last_error = error
    workspace.backend = settings.PROVISIONING_BACKEND
    workspace.save(update_fields=["status", "last_error", "backend", "updated"])
    return workspace


def workspace_retry(*, onboarding: Onboarding) -> bool:
    """Staff door: queue a failed or waiting workspace step again now. False if not retryable."""
    requeued = Onboarding.objects.filter(
        id=onboarding.id, workspace_status__in=[Step.FAILED, Step.RETRYING]
    ).update(workspace_status=Step.PENDING, updated=timezone.now())
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
