"""What the Stripe edge tells the rest of the project, without importing it."""

from django.dispatch import Signal

# Sent (inside the transaction) when staff send a job back to the worker; kwargs: job, actor.
webhook_job_requeued = Signal()

# Sent (inside the transaction) when the worker gives up on a job after its retries; kwargs: job.
webhook_job_failed = Signal()
