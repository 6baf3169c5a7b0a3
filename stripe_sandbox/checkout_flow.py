"""What happens on Stripe's side when a customer pays through Checkout.

Creates the customer, payment method, payment intent, charge and balance transaction, moves the
session to its final state and records the events Stripe would send. The stored objects hold the
final state (as a later retrieve shows); each event keeps the session snapshot of its moment.
"""

from . import factories
from .ids import IdFactory
from .settlement import settle
from .shapes import clone
from .store import ObjectStore

DELAYED_OUTCOMES = (None, "succeeded", "failed")
SESSION_STATUSES = ("open", "complete", "expired")


def ensure_service_price(
    store: ObjectStore,
    ids: IdFactory,
    *,
    service_id: str,
    product_name: str | None,
    amount: int,
    currency: str,
    livemode: bool,
    created: int,
    interval: str | None = None,
) -> dict:
    """Return the price for a service/amount/currency, creating product and price the first time.

    `interval` (day, week, month, year) makes it a recurring price, kept apart from the one-time one.
    """
    key = (livemode, service_id, currency, amount) + ((interval,) if interval else ())
    price_id = store.service_prices.get(key)
    if price_id:
        return store.get("price", price_id)
    product = factories.product(
        ids,
        created=created,
        livemode=livemode,
        name=product_name or f"Service {service_id}",
        metadata={"serviceId": service_id},
    )
    price = factories.price(
        ids,
        created=created,
        livemode=livemode,
        product_id=product["id"],
        currency=currency,
        unit_amount=amount,
    )
    if interval:
        price.update(type="recurring", recurring=recurring(interval))
    product["default_price"] = price["id"]
    store.add(product)
    store.add(price)
    store.service_prices[key] = price["id"]
    return price


def recurring(interval: str, interval_count: int = 1) -> dict:
    """A price's `recurring` hash."""
    return {
        "interval": interval,
        "interval_count": interval_count,
        "meter": None,
        "trial_period_days": None,
        "usage_type": "licensed",
    }


def open_session(
    store: ObjectStore,
    ids: IdFactory,
    *,
    items: list[tuple[dict, int]],
    created: int,
    livemode: bool,
    **session_fields,
) -> dict:
    """Store an open session for (price, quantity) items, with its line items."""
    amount = sum(price["unit_amount"] * quantity for price, quantity in items)
    session = factories.checkout_session(
        ids,
        created=created,
        livemode=livemode,
        currency=items[0][0]["currency"],
        amount=amount,
        **session_fields,
    )
    line_items = []
    for price, quantity in items:
        product = store.get("product", price["product"])
        description = product["name"] if product else "Item"
        line_items.append(
            factories.line_item(ids, price_obj=price, description=description, quantity=quantity)
        )
    store.line_items[session["id"]] = line_items
    return store.add(session)


def record_event(
    store: ObjectStore, ids: IdFactory, event_type: str, obj: dict, created: int, pending_webhooks: int
):
    """Store an event holding a deep snapshot of `obj`."""
    event = factories.event(
        ids, event_type=event_type, obj=clone(obj), created=created, pending_webhooks=pending_webhooks
    )
    return store.add(event)


def expire_session(
    store: ObjectStore, ids: IdFactory, session: dict, *, created: int, pending_webhooks: int = 0
):
    """Expire an open session and return its `checkout.session.expired` event."""
    session.update(status="expired", url=None)
    return [record_event(store, ids, "checkout.session.expired", session, created, pending_webhooks)]


def complete_session(
    store: ObjectStore,
    ids: IdFactory,
    session: dict,
    *,
    email: str | None,
    name: str | None,
    created: int,
    delayed: str | None = None,
    settled: bool = True,
    pending_webhooks: int = 0,
) -> list[dict]:
    """Pay an open session and return its events in delivery order.

    delayed=None: card payment, paid at once. delayed="succeeded"/"failed": an asynchronous payment
    method, completed unpaid and then settled. settled=False leaves an immediate payment processing.
    """
    livemode = session["livemode"]
    amount, currency = session["amount_total"], session["currency"]
    customer = session_customer(store, ids, session, email=email, name=name, created=created)
    if amount == 0:
        # A 100% discount: Checkout completes without a payment intent.
        session.update(
            status="complete",
            url=None,
            customer=customer["id"],
            customer_details=factories.customer_details(email, name),
            payment_status="no_payment_required",
        )
        return [record_event(store, ids, "checkout.session.completed", session, created, pending_webhooks)]
    method = store.add(
        factories.payment_method(ids, created=created, livemode=livemode, email=email, name=name)
    )
    intent = factories.payment_intent(
        ids,
        created=created,
        livemode=livemode,
        amount=amount,
        currency=currency,
        customer_id=customer["id"],
        payment_method_id=method["id"],
        status="processing",
    )
    session.update(
        status="complete",
        url=None,
        customer=customer["id"],
        customer_details=factories.customer_details(email, name),
        payment_intent=intent["id"],
        payment_status="unpaid",
    )
    events = []
    if delayed is not None:
        events.append(
            record_event(store, ids, "checkout.session.completed", session, created, pending_webhooks)
        )

    outcome = delayed or ("succeeded" if settled else "pending")
    charge_status = "pending" if outcome == "pending" else outcome
    charge = factories.charge(
        ids,
        created=created,
        livemode=livemode,
        amount=amount,
        currency=currency,
        customer_id=customer["id"],
        payment_intent_id=intent["id"],
        payment_method_id=method["id"],
        balance_transaction_id=None,
        email=email,
        name=name,
        status=charge_status,
    )
    if charge_status == "succeeded":
        transaction = settle(
            store, ids, created=created, amount=amount, currency=currency, source_id=charge["id"]
        )
        charge["balance_transaction"] = transaction["id"]
    store.add(charge)
    intent["latest_charge"] = charge["id"]
    _settle_intent(intent, charge, method, outcome)
    store.add(intent)

    if outcome == "succeeded":
        session["payment_status"] = "paid"
    if delayed is None:
        events.append(
            record_event(store, ids, "checkout.session.completed", session, created, pending_webhooks)
        )
    else:
        event_type = f"checkout.session.async_payment_{delayed}"
        events.append(record_event(store, ids, event_type, session, created, pending_webhooks))
    return events


def session_customer(store, ids, session, *, email, name, created) -> dict:
    """Reuse the session's customer, or create one as Checkout does for guest payers."""
    if session.get("customer"):
        existing = store.get("customer", session["customer"])
        if existing:
            return existing
    customer = factories.customer(ids, created=created, livemode=session["livemode"], email=email, name=name)
    return store.add(customer)


def _settle_intent(intent: dict, charge: dict, method: dict, outcome: str) -> None:
    """Move the payment intent to the state Stripe leaves it in after `outcome`."""
    if outcome == "succeeded":
        intent.update(status="succeeded", amount_received=intent["amount"])
    elif outcome == "failed":
        # Stripe detaches the failed method and reports it in last_payment_error.
        intent.update(
            status="requires_payment_method",
            payment_method=None,
            last_payment_error={
                "charge": charge["id"],
                "code": "card_declined",
                "decline_code": "generic_decline",
                "doc_url": "https://stripe.com/docs/error-codes/card-declined",
                "message": "Your card was declined.",
                "payment_method": clone(method),
                "type": "card_error",
            },
        )
    else:
        intent.update(status="processing", processing={"type": "card"})
