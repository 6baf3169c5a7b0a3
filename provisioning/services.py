"""Provision a workspace for a client and a service: once per pair, recorded on the Workspace."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from core.locks import lock_name_for_transaction
from core.retry import abandoned_before

from .backends import ProvisionRejected, ProvisionResult, get_backend
from .models import Workspace
from .signals import workspace_changed


def workspace_provision(*, client_id: int, service_id: int) -> Workspace:
    """Get or create the client's workspace for the service and provision it unless it is ready.

    Returns the workspace: ready; failed (this run's backend error in `last_error`, the next call
    tries again); or still provisioning by another run (nothing done).
    """
    workspace, claimed = workspace_claim(client_id=client_id, service_id=service_id)
    if not claimed:
        return workspace
    # The backend may be a slow external system: no transaction or lock is held while it runs.
    try:
        result = get_backend().provision(workspace)
    except ProvisionRejected as exc:
        return workspace_record_failure(
            workspace=workspace, error=f"Rejected by the backend: {exc}", rejected=True
        )
    except Exception as exc:  # noqa: BLE001 - any failure is recorded and retried, never dropped
        return workspace_record_failure(workspace=workspace, error=f"{type(exc).__name__}: {exc}")
    if result.pending:
        return workspace_record_pending(workspace=workspace, result=result)
    return workspace_record_ready(workspace=workspace, result=result)


def workspace_claim(*, client_id: int, service_id: int) -> tuple[Workspace, bool]:
    """Get or create the client's workspace for the service and claim it for provisioning.

    Returns the workspace and whether this caller claimed it (False when it is ready, or another
    run is provisioning it).
    """
    now = timezone.now()
    # A run that died mid-call, or an asynchronous backend that never called back in time.
    abandoned = Q(status=Workspace.Status.PROVISIONING) & (
        Q(callback_due__isnull=True, updated__lt=abandoned_before()) | Q(callback_due__lt=now)
    )
    claimable = Q(status__in=[Workspace.Status.PENDING, Workspace.Status.FAILED], rejected=False)
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
    workspace.callback_due = None
    workspace.save(
        update_fields=[
            "status",
            "url",
            "external_id",
            "backend",
            "last_error",
            "ready_at",
            "callback_due",
            "updated",
        ]
    )
    workspace_changed.send(sender=Workspace, workspace=workspace)
    return workspace


def workspace_record_pending(*, workspace: Workspace, result: ProvisionResult) -> Workspace:
    """The backend accepted the work and will call back; until PROVISIONING_CALLBACK_TIMEOUT passes
    no run claims the workspace again (after that one does, and retries with the same key)."""
    workspace.external_id = result.external_id
    workspace.backend = settings.PROVISIONING_BACKEND
    workspace.callback_due = timezone.now() + timedelta(seconds=settings.PROVISIONING_CALLBACK_TIMEOUT)
    workspace.last_error = ""
    workspace.save(update_fields=["external_id", "backend", "callback_due", "last_error", "updated"])
    return workspace


def workspace_record_failure(*, workspace: Workspace, error: str, rejected: bool = False) -> Workspace:
    """Keep the backend's error on the workspace; the next run claims it again unless it was rejected."""
    workspace.status = Workspace.Status.FAILED
    workspace.last_error = error
    workspace.rejected = rejected
    workspace.callback_due = None
    workspace.backend = settings.PROVISIONING_BACKEND
    workspace.save(update_fields=["status", "last_error", "rejected", "callback_due", "backend", "updated"])
    workspace_changed.send(sender=Workspace, workspace=workspace)
    return workspace


def workspace_callback_record(*, external_id: str, status: str, url: str, error: str) -> Workspace | None:
    """An asynchronous backend's answer for a workspace it accepted; None for an unknown id."""
    workspace = Workspace.objects.filter(
        external_id=external_id, backend=settings.PROVISIONING_BACKEND
    ).first()
    if workspace is None:
        return None
    if workspace.status == Workspace.Status.READY:
        return workspace  # a repeated callback
    if status == "ready":
        return workspace_record_ready(
            workspace=workspace, result=ProvisionResult(url=url, external_id=external_id)
        )
    return workspace_record_failure(workspace=workspace, error=f"Backend reported failure: {error}"[:2000])
