"""Disputes (chargebacks): opened with the funds withdrawn, then closed won (funds reinstated) or lost.

Events: `charge.dispute.created`, `charge.dispute.funds_withdrawn`; on closing
`charge.dispute.funds_reinstated` (won only) and `charge.dispute.closed`. Each movement has its own
balance transaction at the rate of its own day, plus the dispute fee (returned when won).
"""

from . import money_factories
from .billing_flow import Recorder
from .settlement import DISPUTE_FEE, settle
from .store import ObjectStore

OUTCOMES = ("won", "lost")


def open_dispute(
    store: ObjectStore,
    ids,
    charge: dict,
    *,
    created: int,
    amount: int | None = None,
    reason: str = "fraudulent",
    pending_webhooks: int = 0,
) -> tuple[dict, list[dict]]:
    if charge["status"] != "succeeded":
        raise ValueError(f"charge {charge['id']} has not succeeded")
    if any(d["charge"] == charge["id"] for d in store.all("dispute")):
        raise ValueError(f"charge {charge['id']} is already disputed")
    amount = charge["amount"] if amount is None else int(amount)
    if not 0 < amount <= charge["amount"]:
        raise ValueError("dispute amount must be between 1 and the charge amount")
    record = Recorder(store, ids, created, pending_webhooks)
    dispute = store.add(
        money_factories.dispute(ids, created=created, charge=charge, amount=amount, reason=reason)
    )
    charge["disputed"] = True
    record("charge.dispute.created", dispute)
    withdrawal = settle(
        store,
        ids,
        created=created,
        amount=-amount,
        currency=charge["currency"],
        source_id=dispute["id"],
        kind="adjustment",
        reporting_category="dispute",
        description=f"Chargeback withdrawal for {charge['id']}",
        fee=DISPUTE_FEE,
        fee_description="Dispute fee",
    )
    dispute["balance_transactions"].append(withdrawal)
    record("charge.dispute.funds_withdrawn", dispute)
    return dispute, record.events


def close_dispute(
    store: ObjectStore, ids, dispute: dict, *, outcome: str, created: int, pending_webhooks: int = 0
) -> list[dict]:
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}")
    if dispute["status"] in OUTCOMES:
        raise ValueError(f"dispute {dispute['id']} is already closed ({dispute['status']})")
    record = Recorder(store, ids, created, pending_webhooks)
    dispute["evidence_details"].update(has_evidence=True, submission_count=1)
    if outcome == "won":
        reinstated = settle(
            store,
            ids,
            created=created,
            amount=dispute["amount"],
            currency=dispute["currency"],
            source_id=dispute["id"],
            kind="adjustment",
            reporting_category="dispute_reversal",
            description=f"Chargeback reversal for {dispute['charge']}",
            fee=-DISPUTE_FEE,
            fee_description="Dispute fee refund",
        )
        dispute["balance_transactions"].append(reinstated)
        dispute["status"] = "won"
        record("charge.dispute.funds_reinstated", dispute)
    else:
        dispute["status"] = "lost"
    record("charge.dispute.closed", dispute)
    return record.events
