"""django-q2 tasks: thin doors into services. Each takes ids, never model instances."""

from .emails import welcome_email_send as welcome_email_service
from .ledger import money_movement_settle as money_movement_settle_service
from .lifecycle import client_workspaces_apply as client_workspaces_apply_service
from .reconcile import Fix, reconciliation_run
from .webhook_jobs import webhook_job_run


def webhook_job_process(job_id: int) -> str:
    """Process one verified Stripe webhook delivery."""
    return webhook_job_run(job_id=job_id)


def welcome_email_send(onboarding_id: int) -> str:
    """Send one onboarding's welcome email."""
    return welcome_email_service(onboarding_id=onboarding_id)


def reconcile_onboarding_daily() -> str:
    """Scheduled: reconcile the last 7 days with the safe repairs; the run is kept for the admin."""
    _, report = reconciliation_run(days=7, fix=Fix.SAFE, triggered_by="schedule")
    return report.summary()


def money_movement_settle(movement_id: int) -> str:
    """Read a ledger row's object and balance transactions from Stripe now, and record them."""
    return money_movement_settle_service(movement_id=movement_id)


def client_workspaces_apply(client_id: int) -> list[str]:
    """Suspend or resume the client's workspaces as its lifecycle says."""
    return client_workspaces_apply_service(client_id=client_id)
