"""stripe-python's process-wide configuration, through its documented module attributes."""

import stripe
from django.conf import settings


def configure() -> None:
    """Set the HTTP timeout and network retries used by every Stripe API call."""
    # stripe-python waits 80 s by default; a worker should fail fast and retry with backoff.
    stripe.default_http_client = stripe.new_default_http_client(timeout=settings.STRIPE_API_TIMEOUT)
    # stripe-python itself retries connection errors, 409s and 5xx (with Stripe-Should-Retry)
    # twice with jittered backoff; our task retry (core/retry.py) covers longer outages.
    stripe.max_network_retries = 2
    # The API host (STRIPE_API_HOST, e.g. the sandbox) is dj-stripe's setting: it sets
    # stripe.api_base from it when its settings load.
