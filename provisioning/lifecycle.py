"""Suspend and resume a client's workspace for a service through the provisioning backend.

Knows nothing of onboarding or money: crm decides when (crm/lifecycle.py) and calls these from a
task, outside any transaction, like provisioning itself. Each is safe to call again: only a ready
workspace is suspended and only a suspended one resumed, and the status is recorded after the
backend has done its part (a failing backend leaves the status as it was, for the next run).
"""

from django.db.models import F
from django.utils import timezone

from .backends import get_backend
from .models import Workspace

Status = Workspace.Status


def workspace_suspend(*, client_id: int, service_id: int, reason: str) -> bool:
    """Suspend the ready workspace of this client and service; True if it was suspended now."""
    workspace = Workspace.objects.filter(client_id=client_id, service_id=service_id).first()
    if workspace is None or workspace.status != Status.READY:
        return False
    get_backend().suspend(workspace)
    return bool(
        Workspace.objects.filter(id=workspace.id, status=Status.READY).update(
            status=Status.SUSPENDED,
            suspended_at=timezone.now(),
            suspended_reason=reason[:300],
            transitions=F("transitions") + 1,
        )
    )


def workspace_resume(*, client_id: int, service_id: int) -> bool:
    """Resume the suspended workspace of this client and service; True if it was resumed now."""
    workspace = Workspace.objects.filter(client_id=client_id, service_id=service_id).first()
    if workspace is None or workspace.status != Status.SUSPENDED:
        return False
    get_backend().resume(workspace)
    return bool(
        Workspace.objects.filter(id=workspace.id, status=Status.SUSPENDED).update(
            status=Status.READY, suspended_at=None, suspended_reason="", transitions=F("transitions") + 1
        )
    )
