"""The worker's mirror of a Checkout Session from ONE Stripe request (dj-stripe's sync makes four).

dj-stripe's own handler for `checkout.session.*` retrieves the session, then its sync retrieves
the customer, the payment intent and that intent's payment method, each on its own. Here one
retrieve asks for them expanded (dj-stripe's Session.expand_fields, plus `customer` and
`payment_intent.payment_method`), and the mirror is synced from that data, innermost first, each
object stored with the shape dj-stripe's own retrieve would store (its relations as ids), so the
rows equal what dj-stripe writes. Like dj-stripe, an object already mirrored is not overwritten
by the session's sync (dj-stripe only creates related rows it does not have).

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
from djstripe.models import Customer, Event, PaymentIntent, PaymentMethod, Session
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


def _id_of(value: Any) -> Any:
    return value.get("id") if isinstance(value, dict) else value


def checkout_session_sync(*, session_id: str, api_key: str) -> tuple[Session, dict[str, Any] | None]:
    """Retrieve the session once, expanded, and sync it and its customer, intent and method.

    Returns the mirrored session and its payment's latest charge (balance transaction expanded),
    or None when the session has no payment intent (subscription mode, a no-cost order).
    """
    session = stripe_rate_limited_call(
        stripe.checkout.Session.retrieve,
        session_id,
        api_key=api_key,
        expand=EXPAND,
        stripe_version=djstripe_settings.STRIPE_API_VERSION,
    )
    data = stripe_object_json(session)
    customer = data.get("customer")
    if isinstance(customer, dict) and not Customer.objects.filter(id=customer["id"]).exists():
        Customer.sync_from_stripe_data(customer, api_key=api_key)
    intent = data.get("payment_intent")
    charge = intent.get("latest_charge") if isinstance(intent, dict) else None
    if isinstance(intent, dict) and not PaymentIntent.objects.filter(id=intent["id"]).exists():
        method = intent.get("payment_method")
        if isinstance(method, dict) and not PaymentMethod.objects.filter(id=method["id"]).exists():
            PaymentMethod.sync_from_stripe_data(method, api_key=api_key)
        flat_intent = {**intent, "payment_method": _id_of(method), "latest_charge": _id_of(charge)}
        PaymentIntent.sync_from_stripe_data(flat_intent, api_key=api_key)
    flat = {**data, "customer": _id_of(customer), "payment_intent": _id_of(intent)}
    session_row = Session.sync_from_stripe_data(flat, api_key=api_key)
    return session_row, charge if isinstance(charge, dict) else None


def checkout_session_mirror(sender: Any, event: Any, **kwargs: Any) -> None:
    """dj-stripe's handler for checkout.session.* events, in one Stripe request; then tells
    `checkout_session_synced` listeners (crm's onboarding) with the payment's charge."""
    _, charge = checkout_session_sync(session_id=event.data["object"]["id"], api_key=event.default_api_key)
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
