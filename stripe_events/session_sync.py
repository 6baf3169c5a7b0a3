"""The worker's mirror of a Checkout Session from ONE Stripe request (dj-stripe's sync makes four).

dj-stripe's own handler for `checkout.session.*` retrieves the session, then its sync retrieves
the customer, the payment intent and that intent's payment method, each on its own. Here one
retrieve asks for them expanded (dj-stripe's Session.expand_fields, plus `customer` and
`payment_intent.payment_method`), and the mirror is written from that data by the backfill's page
mirror (stripe_events/session_mirror.py) for a page of one: each object stored with the shape
dj-stripe's own retrieve would store (its relations as ids), so the rows equal what dj-stripe's
sync writes (tests/stripe_events/test_session_mirror.py), in a few statements instead of its ~30.
Like dj-stripe, an object already mirrored is not overwritten by the session's sync (dj-stripe
only creates related rows it does not have).

The same request also expands the payment's charge with its balance transaction
(`payment_intent.latest_charge.balance_transaction`, three levels: Stripe allows four). dj-stripe
does not mirror it (its PaymentIntent keeps `latest_charge` as an id), so it is handed to whoever
listens to `checkout_session_synced` (crm's onboarding records the payment with its charge and
settlement at once, instead of asking Stripe for them in a second request).

The retrieve waits out Stripe's rate limit (429) with capped, jittered exponential backoff
(stripe-python does not retry a 429 unless Stripe sends `Stripe-Should-Retry: true`).
"""

import logging
from collections.abc import Callable
from typing import Any

import stripe
from djstripe.event_handlers import handle_other_event
from djstripe.models import Event, Session
from djstripe.settings import djstripe_settings
from djstripe.signals import WEBHOOK_SIGNALS
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random_exponential,
)

from .session_mirror import checkout_sessions_mirror
from .signals import checkout_session_synced
from .stripe_json import stripe_object_json

logger = logging.getLogger(__name__)

CHECKOUT_SESSION_EVENTS = (
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
)
EXPAND = [
    *Session.expand_fields,
    "customer.sources",
    "payment_intent.payment_method",
    "payment_intent.latest_charge.balance_transaction",
]
# 429s under a burst: up to ~1 min of waiting (0.25 s doubling, capped at 8 s, half of it random).
RATE_LIMITED_ATTEMPTS = 12
_HALF = {"multiplier": 0.125, "max": 4.0}


def _log_wait(state: RetryCallState) -> None:
    wait = state.next_action.sleep if state.next_action else 0.0
    logger.warning("Stripe rate limit (429), attempt %s; waiting %.2f s", state.attempt_number, wait)


def stripe_rate_limited_call(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Call `func` (a Stripe request), waiting out 429s with backoff; other errors propagate."""
    retrying = Retrying(
        retry=retry_if_exception_type(stripe.RateLimitError),
        stop=stop_after_attempt(RATE_LIMITED_ATTEMPTS),
        wait=wait_exponential(**_HALF) + wait_random_exponential(**_HALF),
        before_sleep=_log_wait,
        reraise=True,
    )
    return retrying(func, *args, **kwargs)


def checkout_session_sync(*, session_id: str, api_key: str) -> dict[str, Any] | None:
    """Retrieve the session once, expanded, and mirror it and its customer, intent and method.

    Returns its payment's latest charge (balance transaction expanded), or None when the session
    has no payment intent (subscription mode, a no-cost order).
    """
    session = stripe_rate_limited_call(
        stripe.checkout.Session.retrieve,
        session_id,
        api_key=api_key,
        expand=EXPAND,
        stripe_version=djstripe_settings.STRIPE_API_VERSION,
    )
    data = stripe_object_json(session)
    # The backfill's page mirror, for a page of one: the rows dj-stripe's own sync of the session,
    # its customer, intent and method would write (tests/stripe_events/test_session_mirror.py),
    # in a few statements instead of ~30 (its owner-account lookups and savepoints per object).
    checkout_sessions_mirror([data], api_key=api_key)
    return latest_charge(data)


def latest_charge(session: dict[str, Any]) -> dict[str, Any] | None:
    """The session's payment's latest charge when Stripe expanded it (retrieve or list with
    `payment_intent.latest_charge.balance_transaction`), else None."""
    intent = session.get("payment_intent")
    charge = intent.get("latest_charge") if isinstance(intent, dict) else None
    return charge if isinstance(charge, dict) else None


def checkout_session_mirror(sender: Any, event: Any, **kwargs: Any) -> None:
    """dj-stripe's handler for checkout.session.* events, in one Stripe request; then tells
    `checkout_session_synced` listeners (crm's onboarding) with the payment's charge."""
    charge = checkout_session_sync(session_id=event.data["object"]["id"], api_key=event.default_api_key)
    checkout_session_synced.send(sender=Event, event=event, charge=charge)


def checkout_session_mirror_install() -> None:
    """Replace dj-stripe's handler for checkout.session.* events with ours (before crm's receivers).

    Called from StripeEventsConfig.ready(): stripe_events comes after djstripe and before crm in
    INSTALLED_APPS, so ours runs where dj-stripe's did, and crm's onboarding receiver after it.
    """
    for name in CHECKOUT_SESSION_EVENTS:
        signal = WEBHOOK_SIGNALS[name]
        if not signal.disconnect(handle_other_event, sender=Event):
            raise RuntimeError(f"dj-stripe's handler for {name} was not connected: check the upgrade")
        signal.connect(checkout_session_mirror, sender=Event, dispatch_uid=f"session-mirror:{name}")
