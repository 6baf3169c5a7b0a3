"""django-q2 tasks: thin doors into services. Each takes ids, never model instances."""

from .emails import welcome_email_send as welcome_email_service
from .reconcile import Fix, abandoned_work_requeue, reconciliation_run
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


def requeue_abandoned_work() -> int:
    """Scheduled every minute: steps and webhook jobs whose worker died go back to the queue."""
    return abandoned_work_requeue()
