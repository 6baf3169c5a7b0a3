"""django-q2 tasks: thin doors into services. Each takes ids, never model instances."""

from .webhook_jobs import webhook_job_run


def webhook_job_process(job_id: int) -> str:
    """Process one verified Stripe webhook delivery."""
    return webhook_job_run(job_id=job_id)
