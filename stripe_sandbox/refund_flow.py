"""Refunds of a charge: partial, full, repeated; and refunds that fail after they were created.

Events as Stripe sends them for a card refund: `charge.refunded` (the charge with its new
`amount_refunded`), `refund.created`, then `refund.updated` when the refund settles. A refund that
fails is created pending, counted in `amount_refunded` until it fails, then `refund.updated` (status
failed) and `refund.failed`; `amount_refunded` drops back and a `refund_failure` balance transaction
returns the money.
"""

from . import money_factories
from .billing_flow import Recorder
from .settlement import settle
from .store import ObjectStore

FAILURE_REASON = "expired_or_canceled_card"


class RefundError(ValueError):
    """Stripe would refuse this refund (`code` is Stripe's error code)."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


def check_refundable(store: ObjectStore, charge: dict, amount: int | None) -> int:
    """Return the amount to refund (default: what is left) or raise Stripe's refusal."""
    if charge["status"] != "succeeded":
        raise RefundError(
            f"Charge {charge['id']} has not succeeded and cannot be refunded.", "charge_not_refundable"
        )
    remaining = charge["amount"] - charge["amount_refunded"]
    if charge["disputed"] and any(
        d["charge"] == charge["id"] and d["status"] != "won" for d in store.all("dispute")
    ):
        raise RefundError(
            f"Charge {charge['id']} has been charged back; cannot issue a refund.", "charge_disputed"
        )
    if remaining == 0:
        raise RefundError(f"Charge {charge['id']} has already been refunded.", "charge_already_refunded")
    amount = remaining if amount is None else int(amount)
    if amount <= 0:
        raise RefundError("Refund amount must be a positive integer.", "parameter_invalid_integer")
    if amount > remaining:
        raise RefundError(
            f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})",
            "amount_too_large",
        )
    return amount


def _sync_charge(charge: dict, refund: dict) -> None:
    charge["refunded"] = charge["amount_refunded"] == charge["amount"]
    listing = charge["refunds"]
    listing["data"] = [refund, *[r for r in listing["data"] if r["id"] != refund["id"]]]


def create_refund(
    store: ObjectStore,
    ids,
    charge: dict,
    *,
    amount: int | None = None,
    created: int,
    fail: bool = False,
    reason: str | None = None,
    metadata=None,
    pending_webhooks: int = 0,
) -> tuple[dict, list[dict]]:
    """Refund `amount` (default: the rest) of a charge; fail=True makes it fail after creation."""
    amount = check_refundable(store, charge, amount)
    record = Recorder(store, ids, created, pending_webhooks)
    refund = money_factories.refund(
        ids,
        created=created,
        charge=charge,
        amount=amount,
        status="pending" if fail else "succeeded",
        reason=reason,
        metadata=metadata,
    )
    transaction = settle(
        store,
        ids,
        created=created,
        amount=-amount,
        currency=charge["currency"],
        source_id=refund["id"],
        kind="refund",
        description="REFUND FOR CHARGE",
    )
    refund["balance_transaction"] = transaction["id"]
    store.add(refund)
    charge["amount_refunded"] += amount
    _sync_charge(charge, refund)
    record("charge.refunded", charge)
    record("refund.created", refund)
    if fail:
        record.events += fail_refund(store, ids, refund, created=created, pending_webhooks=pending_webhooks)
    else:
        # Sent once the card network confirms the refund; the refund itself does not change.
        record("refund.updated", refund)
    return refund, record.events


def fail_refund(
    store: ObjectStore, ids, refund: dict, *, created: int, pending_webhooks: int = 0
) -> list[dict]:
    """A refund the card network returned: status failed, money back to the balance."""
    if refund["status"] in ("failed", "canceled"):
        raise ValueError(f"refund {refund['id']} is already {refund['status']}")
    record = Recorder(store, ids, created, pending_webhooks)
    charge = store.get("charge", refund["charge"])
    failure = settle(
        store,
        ids,
        created=created,
        amount=refund["amount"],
        currency=refund["currency"],
        source_id=refund["id"],
        kind="refund_failure",
        description="REFUND FAILURE",
    )
    # Stripe adds these two fields to a failed refund only (the reference fixture shows a succeeded one).
    refund.update(status="failed", failure_reason=FAILURE_REASON, failure_balance_transaction=failure["id"])
    charge["amount_refunded"] -= refund["amount"]
    _sync_charge(charge, refund)
    record("refund.updated", refund)
    record("refund.failed", refund)
    return record.events
