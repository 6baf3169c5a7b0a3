"""Provision a workspace for a client and a service: once per pair, recorded on the Workspace."""

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from core.locks import lock_name_for_transaction
from core.retry import abandoned_before

from .backends import ProvisionResult, get_backend
from .models import Workspace


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
    except Exception as exc:  # noqa: BLE001 - any failure is recorded and retried, never dropped
        return workspace_record_failure(workspace=workspace, error=f"{type(exc).__name__}: {exc}")
    return workspace_record_ready(workspace=workspace, result=result)


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
