"""What the Stripe edge tells the rest of the project, without importing it."""

from django.dispatch import Signal

# Sent (inside the transaction) when staff send a job back to the worker; kwargs: job, actor.
webhook_job_requeued = Signal()

# Sent (inside the transaction) when the worker gives up on a job after its retries; kwargs: job.
webhook_job_failed = Signal()

# Sent (inside the worker's transaction) once a checkout.session.* event's session is mirrored;
# kwargs: event (dj-stripe's Event), charge (the session's payment as Stripe returned it with the
# session: its latest charge with the balance transaction expanded; None without a payment intent).
checkout_session_synced = Signal()
