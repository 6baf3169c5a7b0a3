"""django-q2 tasks: thin doors into services. Each takes ids, never model instances."""

from .reconcile import Fix, abandoned_work_requeue, reconciliation_run
from .services import emails
from .services.alerts import staff_alerts_flush as alerts_flush
from .services.ledger import money_movement_settle as money_movement_settle_service
from .services.lifecycle import client_workspaces_apply as client_workspaces_apply_service
from .services.workspace_step import workspace_step_run as workspace_step_service


def welcome_email_run(onboarding_id: int) -> str:
    """Send one onboarding's welcome email."""
    return emails.welcome_email_send(onboarding_id=onboarding_id)


def workspace_step_run(onboarding_id: int) -> str:
    """Run one onboarding's workspace step (provision, or reuse, the client's workspace)."""
    return workspace_step_service(onboarding_id=onboarding_id)


def reconcile_onboarding_daily() -> str:
    """Scheduled: reconcile the last 7 days with the safe repairs; the run is kept for the admin."""
    _, report = reconciliation_run(days=7, fix=Fix.SAFE, triggered_by="schedule")
    return report.summary()


def requeue_abandoned_work() -> int:
    """Scheduled every minute: steps and webhook jobs whose worker died go back to the queue."""
    return abandoned_work_requeue()


def money_movement_settle(movement_id: int) -> str:
    """Read a ledger row's object and balance transactions from Stripe now, and record them."""
    return money_movement_settle_service(movement_id=movement_id)


def client_workspaces_apply(client_id: int) -> list[str]:
    """Suspend or resume the client's workspaces as its lifecycle says."""
    return client_workspaces_apply_service(client_id=client_id)


def staff_alerts_flush() -> int:
    """Scheduled every minute: batch and deliver staff alerts."""
    return alerts_flush()


# -- Old task paths ------------------------------------------------------------------------------
# Task messages already queued, and retry schedules, may still name these (migration 0012 renames
# the schedules). Drop them once no queued or scheduled row can name them: after one release plus
# the longest retry schedule (RETRY_WINDOW_HOURS, a day by default).
from stripe_events.tasks import webhook_job_process  # noqa: E402, F401 - was crm.tasks.webhook_job_process

welcome_email_send = welcome_email_run  # was crm.tasks.welcome_email_send (the service's name too)
