"""A client's lifecycle (active, at risk, churned) and its services' workspaces, derived from the ledger.

Derived, not driven by events: each recompute looks at the ledger as it stands, so duplicate and
shuffled deliveries end in the same status. Per service, the latest counted payment decides:

- a subscription of the service cancelled at or after it, a full refund of it, or a lost dispute
  on it ends the service (its workspace is suspended); a newer payment reactivates it (resumed);
- the client is churned when every service it paid for has ended, at risk while a dispute is open
  or an invoice's payment failed and is not paid yet, active otherwise.

Staff can offboard by hand (`client_offboard`, all workspaces suspended until a new payment or
`client_reactivate`) and keep a client active whatever the ledger says (`client_keep_active`).
Workspaces change through a task, outside any lock (the provisioning backend may be remote).
"""

import logging

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from core.queue import enqueue_transactionally
from provisioning.lifecycle import workspace_resume, workspace_suspend
from provisioning.models import Workspace

from ..models import Client, StaffAlert
from .activity import Kind as ActivityKind
from .activity import activity_record
from .alerts import admin_url, staff_alert_raise
from .client_ledger import (
    LedgerRow,
    client_ledger_rows,
    failed_payment,
    open_dispute,
    paid_service_ids,
    service_end_reason,
)

logger = logging.getLogger(__name__)

Status = Client.LifecycleStatus
WORKSPACES_TASK = "crm.tasks.client_workspaces_apply"


def client_services_ended(*, client: Client, rows: list[LedgerRow] | None = None) -> dict[int, str]:
    """{service id: why it ended} for each service of the client's payments that should be suspended.

    `rows`: the client's ledger when the caller has just read it (client_ledger_rows).
    """
    rows = client_ledger_rows(client_id=client.id) if rows is None else rows
    service_ids = paid_service_ids(rows, counted_only=False)
    if client.offboarded_by_staff:
        return {service_id: "Offboarded by staff" for service_id in service_ids}
    if client.keep_active:
        return {}
    ended = {}
    for service_id in service_ids:
        reason = service_end_reason(rows, service_id)
        if reason:
            ended[service_id] = reason
    return ended


def client_lifecycle_evaluate(*, client: Client, rows: list[LedgerRow] | None = None) -> str:
    """Set the client's lifecycle status and reason from the ledger (caller holds the client's lock).

    `client` as read in this transaction; `rows` its ledger if the caller has just read it.
    """
    rows = client_ledger_rows(client_id=client.id) if rows is None else rows
    ended = client_services_ended(client=client, rows=rows)
    paid_services = paid_service_ids(rows, counted_only=True)
    dispute = open_dispute(rows)
    failed = failed_payment(rows)
    if client.offboarded_by_staff:
        status, reason = Status.CHURNED, "Offboarded by staff"
    elif paid_services and paid_services <= set(ended):
        status, reason = Status.CHURNED, "; ".join(sorted(set(ended.values())))
    elif dispute is not None:
        status, reason = Status.AT_RISK, f"Open dispute {dispute.stripe_id}"
    elif failed is not None:
        status, reason = Status.AT_RISK, f"Past due: payment of invoice {failed.stripe_id} failed"
    else:
        status, reason = Status.ACTIVE, "Kept active by staff" if client.keep_active else ""
    reason = reason[:300]
    if (client.lifecycle_status, client.lifecycle_reason) != (status, reason):
        Client.objects.filter(id=client.id).update(
            lifecycle_status=status, lifecycle_reason=reason, lifecycle_changed_at=timezone.now()
        )
        if client.lifecycle_status != status:
            label = Status(status).label
            activity_record(
                kind=ActivityKind.ONBOARDING, summary=f"Client {label.lower()}", detail=reason, client=client
            )
            lifecycle_alert(client, status=status, reason=reason, dispute=dispute)
    client_workspaces_check(client=client, ended=ended)
    return status


def lifecycle_alert(client: Client, *, status: str, reason: str, dispute: LedgerRow | None) -> None:
    """Tell staff when a client churns (unless staff offboarded them) or a dispute opens; ids only."""
    page = admin_url("admin:crm_client_change", client.id)
    if status == Status.CHURNED and not client.offboarded_by_staff:
        staff_alert_raise(
            kind=StaffAlert.Kind.CLIENT_CHURNED, summary=f"Client {client.id} churned: {reason}", url=page
        )
    elif status == Status.AT_RISK and dispute is not None:
        summary = f"Dispute {dispute.stripe_id} opened on client {client.id}'s payment"
        staff_alert_raise(kind=StaffAlert.Kind.DISPUTE_OPENED, summary=summary, url=page)


def client_workspaces_check(*, client: Client, ended: dict[int, str] | None = None) -> bool:
    """Queue `client_workspaces_apply` if a workspace is ready that should be suspended, or the
    reverse. Also called when a workspace becomes ready (it may have been provisioned after its
    service ended: deliveries arrive in any order)."""

    if client_workspaces_out_of_step(client=client, ended=ended):
        enqueue_transactionally(WORKSPACES_TASK, client.id, first=True)
        return True
    return False


def client_workspaces_apply(*, client_id: int) -> list[str]:
    """Suspend the workspaces of ended services and resume the others (task; outside locks)."""

    client = Client.objects.get(id=client_id)
    ended = client_services_ended(client=client)
    done = []
    for workspace in Workspace.objects.filter(client=client).select_related("service"):
        reason = ended.get(workspace.service_id)
        name = workspace.service.name
        try:
            if reason and workspace_suspend(
                client_id=client.id, service_id=workspace.service_id, reason=reason
            ):
                summary, detail = f"Workspace for {name} suspended", reason
            elif not reason and workspace_resume(client_id=client.id, service_id=workspace.service_id):
                summary, detail = f"Workspace for {name} resumed", ""
            else:
                continue
        except Exception as exc:  # noqa: BLE001 - the backend may be remote; reconciliation tries again
            action = "suspended" if reason else "resumed"
            logger.warning("Workspace %s could not be %s: %s", workspace.id, action, exc)
            summary, detail = f"Workspace for {name} could not be {action}", f"{type(exc).__name__}: {exc}"
        activity_record(kind=ActivityKind.WORKSPACE, summary=summary, detail=detail[:2000], client=client)
        done.append(summary)
    return done


def client_workspaces_out_of_step(*, client: Client, ended: dict[int, str] | None = None) -> list[str]:
    """Workspaces whose state is not what the client's lifecycle says (`ended`: its services that
    ended, when the caller has them): a delivery that changed it, or a backend that failed."""
    ended = client_services_ended(client=client) if ended is None else ended
    workspaces = Workspace.objects.filter(
        client=client, status__in=[Workspace.Status.READY, Workspace.Status.SUSPENDED]
    ).select_related("service")
    return [
        f"{w.service.name} is {w.status}, should be {'suspended' if w.service_id in ended else 'ready'}"
        for w in workspaces
        if (w.status == Workspace.Status.SUSPENDED) != (w.service_id in ended)
    ]


# -- staff doors ------------------------------------------------------------------------------------


def _staff_change(
    *, client_id: int, actor: User | None, summary: str, detail: str = "", **fields: object
) -> Client:
    from .ledger import client_lock, client_value_recompute

    with transaction.atomic():
        client = client_lock(client_id)
        Client.objects.filter(id=client.id).update(**fields)
        activity_record(kind=ActivityKind.STAFF, summary=summary, detail=detail, client=client, actor=actor)
        client_value_recompute(client_id=client.id)
    return Client.objects.get(id=client_id)


def client_offboard(*, client_id: int, actor: User | None = None, reason: str = "") -> Client:
    """Staff: offboard the client by hand (churned, every workspace suspended) until a new payment."""
    return _staff_change(
        client_id=client_id,
        actor=actor,
        summary="Offboarded by staff",
        detail=reason,
        offboarded_by_staff=True,
    )


def client_reactivate(*, client_id: int, actor: User | None = None) -> Client:
    """Staff: reactivate the client by hand; keeps it active despite refunds, disputes or cancellations
    that would offboard it again (that is what reactivating by hand means)."""
    client = Client.objects.get(id=client_id)
    automatic = bool(client_services_ended(client=Client(id=client.id, keep_active=False)))
    return _staff_change(
        client_id=client_id,
        actor=actor,
        summary="Reactivated by staff",
        offboarded_by_staff=False,
        keep_active=client.keep_active or automatic,
    )


def client_keep_active(*, client_id: int, actor: User | None = None, keep: bool = True) -> Client:
    """Staff: keep the client active despite a refund, lost dispute or cancellation (or stop doing so)."""
    summary = (
        "Kept active by staff despite refunds and disputes" if keep else "No longer kept active by staff"
    )
    return _staff_change(client_id=client_id, actor=actor, summary=summary, keep_active=keep)
