"""Off-session card payments of an invoice: payment intent, charge and (when paid) balance transaction."""

from . import factories
from .settlement import settle
from .shapes import clone
from .store import ObjectStore


def ensure_payment_method(store: ObjectStore, ids, customer: dict, *, created: int) -> dict:
    """The customer's default card, attached the first time (as Checkout in subscription mode does)."""
    method_id = customer["invoice_settings"]["default_payment_method"]
    if method_id and store.get("payment_method", method_id):
        return store.get("payment_method", method_id)
    method = factories.payment_method(
        ids, created=created, livemode=customer["livemode"], email=customer["email"], name=customer["name"]
    )
    method["customer"] = customer["id"]
    customer["invoice_settings"]["default_payment_method"] = method["id"]
    return store.add(method)


def charge_card(
    store: ObjectStore,
    ids,
    *,
    customer: dict,
    method: dict,
    amount: int,
    currency: str,
    created: int,
    succeed: bool = True,
    description: str | None = None,
    intent: dict | None = None,
) -> tuple[dict, dict]:
    """Charge `amount` to a saved card; return (payment intent, charge) in their final state.

    Passing the `intent` of an earlier failed attempt retries it (a new charge on the same intent).
    """
    livemode = customer["livemode"]
    retry = intent is not None
    if intent is None:
        intent = factories.payment_intent(
            ids,
            created=created,
            livemode=livemode,
            amount=amount,
            currency=currency,
            customer_id=customer["id"],
            payment_method_id=method["id"],
            status="succeeded" if succeed else "requires_payment_method",
        )
        intent["description"] = description
    else:
        intent.update(
            status="succeeded" if succeed else "requires_payment_method",
            payment_method=method["id"],
            last_payment_error=None,
        )
    if succeed:
        intent["amount_received"] = amount
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
        email=customer["email"],
        name=customer["name"],
        status="succeeded" if succeed else "failed",
    )
    charge["description"] = description
    if succeed:
        transaction = settle(
            store, ids, created=created, amount=amount, currency=currency, source_id=charge["id"]
        )
        charge["balance_transaction"] = transaction["id"]
    else:
        intent.update(
            payment_method=None,
            last_payment_error={
                "charge": charge["id"],
                "code": "card_declined",
                "decline_code": "insufficient_funds",
                "doc_url": "https://stripe.com/docs/error-codes/card-declined",
                "message": "Your card has insufficient funds.",
                "payment_method": clone(method),
                "type": "card_error",
            },
        )
        charge.update(failure_code="card_declined", failure_message="Your card has insufficient funds.")
    intent["latest_charge"] = charge["id"]
    store.add(charge)
    if not retry:
        store.add(intent)
    return intent, charge
