"""Balance transactions in the account's settlement currency, converted with the day's FX rate."""

from . import factories, fx
from .ids import IdFactory
from .store import ObjectStore

DISPUTE_FEE = 1500  # settlement minor units, withdrawn with a dispute and returned if it is won


def settle(
    store: ObjectStore,
    ids: IdFactory,
    *,
    created: int,
    amount: int,
    currency: str,
    source_id: str,
    kind: str = "charge",
    fee: int | None = None,
    reporting_category: str | None = None,
    description: str | None = None,
    fee_description: str = "Stripe processing fees",
) -> dict:
    """Store and return the balance transaction of `amount` (signed, minor units of `currency`)."""
    settlement = store.settlement_currency
    settled, fx_rate = fx.convert(amount, currency, settlement, created)
    transaction = factories.balance_transaction(
        ids,
        created=created,
        amount=settled,
        currency=settlement,
        source_id=source_id,
        fee=fee,
        exchange_rate=None if fx_rate is None else float(fx_rate),
        kind=kind,
        reporting_category=reporting_category,
        description=description,
        fee_description=fee_description,
    )
    return store.add(transaction)
