"""stripe-python's process-wide configuration, and the one reading of the Stripe secret key."""

import stripe
from django.conf import settings
from djstripe.settings import djstripe_settings


def configure() -> None:
    """Set the API version, HTTP timeout and network retries used by every Stripe API call."""
    # The pinned version (STRIPE_API_VERSION) for every request, not only dj-stripe's: stripe-python
    # otherwise sends its own default (15.x: a newer dahlia), whose shapes our ledger does not read.
    stripe.api_version = djstripe_settings.STRIPE_API_VERSION
    # stripe-python waits 80 s by default; a worker should fail fast and retry with backoff.
    stripe.default_http_client = stripe.new_default_http_client(timeout=settings.STRIPE_API_TIMEOUT)
    # stripe-python itself retries connection errors, 409s and 5xx (with Stripe-Should-Retry)
    # twice with jittered backoff; our task retry (core/retry.py) covers longer outages.
    stripe.max_network_retries = 2
    # The API host (STRIPE_API_HOST, e.g. the sandbox) is dj-stripe's setting: it sets
    # stripe.api_base from it when its settings load.


def stripe_api_key(*, livemode: bool | None = None) -> str:
    """The secret key for Stripe API calls: of the event's mode, or of STRIPE_LIVE_MODE when None."""
    # dj-stripe's reading of STRIPE_TEST_SECRET_KEY / STRIPE_LIVE_SECRET_KEY (and STRIPE_SECRET_KEY).
    key: str = djstripe_settings.get_default_api_key(livemode)
    return key
