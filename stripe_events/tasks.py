"""django-q2 tasks: thin doors into services. Each takes ids, never model instances."""

from .retention import webhook_triggers_purge as triggers_purge
from .webhook_jobs import webhook_job_run


def webhook_job_process(job_id: int) -> str:
    """Process one verified Stripe webhook delivery."""
    return webhook_job_run(job_id=job_id)


def webhook_triggers_purge() -> int:
    """Scheduled daily: empty webhook bodies and headers past WEBHOOK_RETENTION_DAYS."""
    return triggers_purge()
