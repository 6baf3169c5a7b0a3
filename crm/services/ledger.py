"""The ledger: every Stripe money movement recorded once, and the client's value recomputed from it.

Stripe delivers events at least once and in any order. Each movement is one `MoneyMovement` row
keyed by its Stripe id (unique), written under the client's lock (the `client-email:` advisory
lock every client write takes, then the row's `select_for_update`), and the client's value is
recomputed from the rows in the same transaction, so it never drifts from the ledger.

Statuses only move forward (a snapshot of a pending refund delivered after its failure changes
nothing), and `money_movement_settle` (a task, outside any lock) reads the object's current state
from Stripe with its balance transactions, so every order of deliveries ends in Stripe's state.

A refund or dispute whose payment is not recorded yet (its checkout still on the way) is kept
without a client and attached when the payment is: both sides take a `money-pi:` lock on the
payment intent, so neither misses the other.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import stripe
from django.db import transaction
from django.db.models import Case, F, Q, Sum, When
from django.db.models.functions import Coalesce

from core.locks import lock_name_for_transaction
from core.money import format_money
from core.queue import enqueue_transactionally
from stripe_events.session_sync import stripe_rate_limited_call
from stripe_events.stripe_client import stripe_api_key
from stripe_events.stripe_json import stripe_id_of, stripe_object_json

from ..models import Client, MoneyMovement, Payment, Service
from ..rollups import subscription_mrr_refresh
from .activity import Kind as ActivityKind
from .activity import activity_record
from .client_ledger import client_ledger_rows, first_currency, net_in

logger = logging.getLogger(__name__)

Kind = MoneyMovement.Kind
SETTLE_TASK = "crm.tasks.money_movement_settle"

PAID = "paid"
PAYMENT_FAILED = "payment_failed"
NO_PAYMENT_REQUIRED = "no_payment_required"
# How far each status has moved on: a lower rank never replaces a higher one.
PAYMENT_RANK = {PAYMENT_FAILED: 0, PAID: 1, NO_PAYMENT_REQUIRED: 1}
REFUND_RANK = {"requires_action": 0, "pending": 0, "succeeded": 1, "failed": 2, "canceled": 2}
DISPUTE_CLOSED = {"won", "lost", "warning_closed", "prevented"}


def _rank(kind: str, status: str) -> int:
    if kind == Kind.PAYMENT:
        return PAYMENT_RANK.get(status, 0)
    if kind == Kind.REFUND:
        return REFUND_RANK.get(status, 0)
    if kind == Kind.DISPUTE:
        return 1 if status in DISPUTE_CLOSED else 0
    return 0


def _counts(kind: str, status: str) -> bool:
    if kind == Kind.PAYMENT:
        return status in (PAID, NO_PAYMENT_REQUIRED)
    if kind == Kind.REFUND:
        return status == "succeeded"
    if kind == Kind.DISPUTE:
        return status == "lost"
    return False


def from_timestamp(value: int | None) -> datetime:
    return datetime.fromtimestamp(value or 0, tz=UTC)


@dataclass(frozen=True)
class Settlement:
    """What the agency's balance saw for a movement, summed over its balance transactions."""

    balance_transaction_id: str
    currency: str
    amount: int
    fee: int
    net: int
    transactions: int
    exchange_rate: Decimal | None

    @classmethod
    def from_transactions(cls, transactions: list[Any]) -> "Settlement | None":
        """None when any of them is not available yet (missing, or an unexpanded id)."""
        if any(not isinstance(t, dict) for t in transactions):
            return None
        if not transactions:
            return cls("", "", 0, 0, 0, 0, None)
        rate = transactions[0].get("exchange_rate")
        return cls(
            balance_transaction_id=transactions[0]["id"],
            currency=(transactions[0].get("currency") or "").lower(),
            amount=sum(int(t["amount"]) for t in transactions),
            fee=sum(int(t["fee"]) for t in transactions),
            net=sum(int(t["net"]) for t in transactions),
            transactions=len(transactions),
            exchange_rate=None if rate is None else Decimal(str(rate)),
        )


def _settlement_apply(movement: MoneyMovement, settlement: Settlement | None) -> bool:
    """Store a settlement that knows at least as many transactions as the stored one."""
    if settlement is None:
        return False
    if movement.settlement_net is not None and settlement.transactions < movement.settlement_transactions:
        return False
    movement.balance_transaction_id = settlement.balance_transaction_id
    movement.settlement_currency = settlement.currency
    movement.settlement_amount = settlement.amount
    movement.settlement_fee = settlement.fee
    movement.settlement_net = settlement.net
    movement.settlement_transactions = settlement.transactions
    movement.exchange_rate = settlement.exchange_rate
    return True


def client_lock(client_id: int) -> Client:
    """The client's row, locked for this transaction (after the client-email lock, as everywhere)."""
    email = Client.objects.values_list("email", flat=True).get(id=client_id)
    lock_name_for_transaction(f"client-email:{email}")
    return Client.objects.select_for_update().get(id=client_id)


def _movement_locked(stripe_id: str) -> MoneyMovement | None:
    return MoneyMovement.objects.select_for_update().filter(stripe_id=stripe_id).first()


def _movement_upsert(
    *,
    stripe_id: str,
    kind: str,
    status: str,
    defaults: dict[str, Any],
    current: MoneyMovement | None | str = "fetch",
) -> tuple[MoneyMovement, bool]:
    """Create the row, or move its status forward and fill what it did not know.

    `current`: the row as the caller just locked it (`_movement_locked`), None if there is none;
    by default it is locked here. Returns (row, news): news when created, its status moved on,
    or it got its client.
    """
    movement = _movement_locked(stripe_id) if isinstance(current, str) else current
    if movement is None:
        movement = MoneyMovement.objects.create(
            stripe_id=stripe_id, kind=kind, status=status, counts=_counts(kind, status), **defaults
        )
        return movement, True
    news = filled = False
    if status != movement.status and _rank(kind, status) >= _rank(kind, movement.status):
        movement.status = status
        movement.counts = _counts(kind, status)
        news = True
    for field, value in defaults.items():
        # Only what the row did not know: ids, the client once its payment is known. Amounts stay
        # as first recorded (the settle task corrects a payment's from its charge).
        if value and not getattr(movement, field):
            setattr(movement, field, value)
            filled = True
            news = news or field in ("client", "client_id")
    if news or filled:
        movement.save()
    return movement, news


# -- payments ---------------------------------------------------------------------------------------


def ledger_payment_record(
    *,
    client: Client | None,
    service: Service | None,
    stripe_id: str,
    amount: int,
    currency: str,
    status: str,
    occurred_at: datetime,
    livemode: bool = False,
    payment: Payment | None = None,
    payment_intent_id: str = "",
    invoice_id: str = "",
    subscription_id: str = "",
    checkout_session_id: str = "",
    customer_id: str = "",
    billing_reason: str = "",
    period_days: int | None = None,
    charge: dict[str, Any] | None = None,
    client_locked: bool = False,
) -> MoneyMovement:
    """Record a payment (a paid session or invoice, or an invoice whose payment failed) once.

    The caller holds the client's email lock when it knows the client; without a client the row
    waits for it (a renewal delivered before its checkout). Recomputes the client's value.
    `charge`: the payment's latest charge with its balance transaction, when the caller got it
    from Stripe with the payment; its ids and settlement are recorded now, and the settle task
    (which would ask Stripe for them) is queued only if the settlement is not available yet.
    `client_locked`: the caller holds the client's email lock and has written its row in this
    transaction (onboarding's `client_upsert`), so the row is locked and `client` current.
    """
    defaults = {
        "client": client,
        "service": service,
        "payment": payment,
        "amount": amount,
        "currency": currency.lower(),
        "occurred_at": occurred_at,
        "livemode": livemode,
        "payment_intent_id": payment_intent_id,
        "invoice_id": invoice_id,
        "subscription_id": subscription_id,
        "checkout_session_id": checkout_session_id,
        "stripe_customer_id": customer_id,
        "billing_reason": billing_reason,
        "period_days": period_days,
    }
    if client is not None and not client_locked:
        client = client_lock(client.id)
    current = _movement_locked(stripe_id)
    prior = (current.client_id, current.counts) if current is not None else None
    if current is None and charge is not None:
        # New, with its charge known: one INSERT with the charge's ids and settlement.
        movement = MoneyMovement(
            stripe_id=stripe_id,
            kind=Kind.PAYMENT,
            status=status,
            counts=_counts(Kind.PAYMENT, status),
            **defaults,
        )
        _payment_charge_apply(movement, charge)
        movement.save(force_insert=True)
        created = True
    else:
        movement, created = _movement_upsert(
            stripe_id=stripe_id, kind=Kind.PAYMENT, status=status, defaults=defaults, current=current
        )
        if charge is not None and _payment_charge_apply(movement, charge):
            movement.save()
    # Newly known to the client: created with it, attached now, or paid now (a failed invoice).
    prior_client, prior_counts = prior if prior is not None else (None, False)
    news = (
        created
        or (prior_client is None and movement.client_id is not None)
        or (movement.counts and not prior_counts)
    )
    if news and movement.counts:
        _payment_timeline(movement)
    if news and movement.settlement_net is None:
        enqueue_transactionally(SETTLE_TASK, movement.id, first=True)
    if created and client is not None and movement.counts and client.offboarded_by_staff:
        # A new payment reactivates a client staff had offboarded.
        Client.objects.filter(id=client.id).update(offboarded_by_staff=False)
        client.offboarded_by_staff = False
    if movement.client_id is not None:
        # With `client_locked` the caller's row is current: the recompute need not read it again.
        written = client if client_locked and client is not None and client.id == movement.client_id else None
        ledger_attach_and_recompute(client_id=movement.client_id, payments=[movement], current=written)
    subscription_mrr_refresh(movement.subscription_id)
    return movement


def _payment_timeline(movement: MoneyMovement) -> None:
    money = format_money(movement.amount, movement.currency)
    if movement.billing_reason == "subscription_cycle":
        summary, detail = f"Renewal payment of {money} recorded", f"Invoice {movement.invoice_id}"
    elif movement.checkout_session_id:
        summary, detail = f"Payment of {money} recorded", f"Checkout Session {movement.checkout_session_id}"
    else:
        summary, detail = f"Invoice payment of {money} recorded", f"Invoice {movement.invoice_id}"
    if movement.client_id:
        activity_record(kind=ActivityKind.PAYMENT, summary=summary, detail=detail, client=movement.client)


# -- refunds and disputes ---------------------------------------------------------------------------


def _payment_for(*, payment_intent_id: str, charge_id: str) -> MoneyMovement | None:
    match = Q()
    if payment_intent_id:
        match |= Q(payment_intent_id=payment_intent_id)
    if charge_id:
        match |= Q(charge_id=charge_id)
    if not match:
        return None
    return MoneyMovement.objects.filter(match, kind=Kind.PAYMENT).first()


def _lock_for_charge(*, payment_intent_id: str, charge_id: str) -> MoneyMovement | None:
    """Lock what a refund or dispute of this charge belongs to; its payment row, if recorded."""
    payment = _payment_for(payment_intent_id=payment_intent_id, charge_id=charge_id)
    if payment is None or payment.client_id is None:
        # Serialise with the payment being recorded or attached (see the module docstring).
        lock_name_for_transaction(f"money-pi:{payment_intent_id or charge_id}")
        payment = _payment_for(payment_intent_id=payment_intent_id, charge_id=charge_id)
    if payment is not None and payment.client_id is not None:
        client_lock(payment.client_id)
    return payment


def ledger_refund_record(*, refund: dict[str, Any], current: bool = False) -> MoneyMovement:
    """Record a refund (any status; only a succeeded one counts) from Stripe's JSON, once.

    `current`: the refund was just read from Stripe (a list, a retrieve), not an event's snapshot;
    with its balance transactions expanded it needs no settle task (no request per object)."""
    with transaction.atomic():
        payment_intent_id = stripe_id_of(refund.get("payment_intent"))
        charge_id = stripe_id_of(refund.get("charge"))
        payment = _lock_for_charge(payment_intent_id=payment_intent_id, charge_id=charge_id)
        transactions = [refund.get("balance_transaction")]
        if refund.get("failure_balance_transaction"):
            transactions.append(refund["failure_balance_transaction"])
        movement, changed = _movement_upsert(
            stripe_id=refund["id"],
            kind=Kind.REFUND,
            status=refund.get("status") or "pending",
            defaults=_child_defaults(refund, payment, payment_intent_id, charge_id),
        )
        return _child_finish(movement, changed, Settlement.from_transactions(transactions), current=current)


def ledger_dispute_record(*, dispute: dict[str, Any], current: bool = False) -> MoneyMovement:
    """Record a dispute (open: the client is at risk; lost: deducted; won: not) from Stripe's JSON.

    `current`: as for `ledger_refund_record` (a dispute's balance transactions are always expanded)."""
    with transaction.atomic():
        payment_intent_id = stripe_id_of(dispute.get("payment_intent"))
        charge_id = stripe_id_of(dispute.get("charge"))
        payment = _lock_for_charge(payment_intent_id=payment_intent_id, charge_id=charge_id)
        movement, changed = _movement_upsert(
            stripe_id=dispute["id"],
            kind=Kind.DISPUTE,
            status=dispute.get("status") or "needs_response",
            defaults=_child_defaults(dispute, payment, payment_intent_id, charge_id),
        )
        return _child_finish(
            movement,
            changed,
            Settlement.from_transactions(list(dispute.get("balance_transactions") or [])),
            current=current,
        )


def _child_defaults(
    obj: dict[str, Any], payment: MoneyMovement | None, payment_intent_id: str, charge_id: str
) -> dict[str, Any]:
    return {
        "client_id": payment.client_id if payment else None,
        "service_id": payment.service_id if payment else None,
        "amount": int(obj.get("amount") or 0),
        "currency": (obj.get("currency") or "").lower(),
        "occurred_at": from_timestamp(obj.get("created")),
        "livemode": bool(obj.get("livemode")),
        "payment_intent_id": payment_intent_id,
        "charge_id": charge_id,
        "invoice_id": payment.invoice_id if payment else "",
        "subscription_id": payment.subscription_id if payment else "",
        "stripe_customer_id": payment.stripe_customer_id if payment else "",
    }


def _child_finish(
    movement: MoneyMovement, changed: bool, settlement: Settlement | None, *, current: bool
) -> MoneyMovement:
    if _settlement_apply(movement, settlement):
        movement.save()
    if changed:
        if not (current and settlement is not None):
            # Stripe's current state and settlement
            enqueue_transactionally(SETTLE_TASK, movement.id, first=True)
        if movement.client_id:
            _child_timeline(movement)
    if movement.client_id:
        client_value_recompute(client_id=movement.client_id)
    return movement


def _child_timeline(movement: MoneyMovement) -> None:
    money = format_money(movement.amount, movement.currency)
    noun = "Refund" if movement.kind == Kind.REFUND else "Dispute"
    activity_record(
        kind=ActivityKind.PAYMENT,
        summary=f"{noun} of {money} {movement.status.replace('_', ' ')}",
        detail=f"{noun} {movement.stripe_id} on {movement.charge_id or movement.payment_intent_id}",
        client=movement.client,
    )


# -- cancellations ----------------------------------------------------------------------------------


def ledger_cancellation_record(*, subscription: dict[str, Any]) -> MoneyMovement:
    """Record a subscription's end (`customer.subscription.deleted`) once; it offboards its service."""
    with transaction.atomic():
        first = MoneyMovement.objects.filter(
            kind=Kind.PAYMENT, subscription_id=subscription["id"], client__isnull=False
        ).first()
        if first is not None and first.client_id is not None:
            client_lock(first.client_id)
        service_ref = (subscription.get("metadata") or {}).get("serviceId") or ""
        service = Service.objects.filter(service_id=service_ref).first() if service_ref else None
        movement, changed = _movement_upsert(
            stripe_id=f"{subscription['id']}:deleted",
            kind=Kind.CANCELLATION,
            status="canceled",
            defaults={
                "client_id": first.client_id if first else None,
                "service_id": service.id if service else (first.service_id if first else None),
                "amount": 0,
                "currency": (subscription.get("currency") or "").lower(),
                "occurred_at": from_timestamp(
                    subscription.get("canceled_at") or subscription.get("ended_at")
                ),
                "livemode": bool(subscription.get("livemode")),
                "subscription_id": subscription["id"],
                "stripe_customer_id": stripe_id_of(subscription.get("customer")),
            },
        )
        if movement.settlement_net is None:  # nothing to settle
            _settlement_apply(movement, Settlement.from_transactions([]))
            movement.save()
        if changed and movement.client_id:
            _cancellation_timeline(movement)
        if movement.client_id:
            client_value_recompute(client_id=movement.client_id)
        subscription_mrr_refresh(movement.subscription_id)
        return movement


def _cancellation_timeline(movement: MoneyMovement) -> None:
    activity_record(
        kind=ActivityKind.PAYMENT,
        summary="Subscription cancelled",
        detail=f"Subscription {movement.subscription_id}",
        client=movement.client,
    )


# -- attaching and recomputing ----------------------------------------------------------------------


def ledger_attach_and_recompute(
    *, client_id: int, payments: list[MoneyMovement], current: Client | None = None
) -> int:
    """Give the client the rows that waited for these payments (caller holds the client's lock).

    `current`: as for `client_value_recompute`."""
    client = Client(id=client_id)  # for the timeline's foreign key; the recompute reads the row
    customer_ids = {p.stripe_customer_id for p in payments if p.stripe_customer_id}
    if customer_ids:
        # Renewals and cancellations of the client's customers delivered before its checkout.
        waiting = list(
            MoneyMovement.objects.filter(
                client__isnull=True,
                kind__in=[Kind.PAYMENT, Kind.CANCELLATION],
                stripe_customer_id__in=customer_ids,
            )
        )
        if waiting:
            MoneyMovement.objects.filter(id__in=[m.id for m in waiting]).update(client_id=client_id)
        for movement in waiting:
            movement.client = client
            if movement.kind == Kind.PAYMENT and movement.counts:
                _payment_timeline(movement)
            elif movement.kind == Kind.CANCELLATION:
                _cancellation_timeline(movement)
        payments = payments + [m for m in waiting if m.kind == Kind.PAYMENT]
    keys = sorted({p.payment_intent_id or p.charge_id for p in payments} - {""})
    for key in keys:
        lock_name_for_transaction(f"money-pi:{key}")
    intents = {p.payment_intent_id for p in payments} - {""}
    charges = {p.charge_id for p in payments} - {""}
    if intents or charges:
        # Refunds and disputes of these payments that arrived first (no client yet), and the
        # client's ones that do not know their service yet: one query for both.
        of_these = Q(payment_intent_id__in=intents) | Q(charge_id__in=charges)
        unplaced = Q(client__isnull=True) | Q(client_id=client_id, service__isnull=True)
        children = list(
            MoneyMovement.objects.filter(of_these, unplaced, kind__in=[Kind.REFUND, Kind.DISPUTE])
        )
        orphans = [child for child in children if child.client_id is None]
        if orphans:
            MoneyMovement.objects.filter(id__in=[m.id for m in orphans]).update(client_id=client_id)
        for child in orphans:
            child.client = client
            _child_timeline(child)
        by_charge = {p.payment_intent_id or p.charge_id: p for p in payments}
        for child in children:
            parent = by_charge.get(child.payment_intent_id) or by_charge.get(child.charge_id)
            if child.service_id is None and parent and parent.service_id:
                MoneyMovement.objects.filter(id=child.id).update(service_id=parent.service_id)
    return client_value_recompute(client_id=client_id, current=current)


def client_value_recompute(*, client_id: int, current: Client | None = None) -> int:
    """Set the client's currency (of its first payment) and value (its net there) from the ledger.

    Call with the client's lock held. Also re-evaluates the client's lifecycle status. The ledger
    is read once (crm/services/client_ledger.py) for both. `current`: the client's row as the
    caller locked and wrote it in this transaction (then it is not read again).
    """
    from .lifecycle import client_lifecycle_evaluate  # lifecycle reads the ledger, not the reverse

    client = current if current is not None else Client.objects.get(id=client_id)
    rows = client_ledger_rows(client_id=client_id)
    currency = first_currency(rows) or client.currency
    value = net_in(rows, currency)
    if (client.invoiced_value, client.currency) != (value, currency):
        Client.objects.filter(id=client_id).update(invoiced_value=value, currency=currency)
    client_lifecycle_evaluate(client=client, rows=rows)
    return value


def ledger_net_expression() -> Coalesce:
    """For Client querysets: the client's net in its own currency from the ledger (one query)."""
    counted = Q(money_movements__counts=True, money_movements__currency=F("currency"))
    signed = Case(
        When(money_movements__kind=Kind.PAYMENT, then=F("money_movements__amount")),
        default=-F("money_movements__amount"),
    )
    return Coalesce(Sum(signed, filter=counted), 0)


# -- settlement and Stripe's current state (a task) -------------------------------------------------


def money_movement_settle(*, movement_id: int) -> str:
    """Read the movement's object from Stripe now, with its balance transactions, and record both.

    Runs in the worker outside any transaction or lock (Stripe requests), then records like a
    delivery would. A balance transaction Stripe does not have yet stays "not available yet".
    """
    movement = MoneyMovement.objects.filter(id=movement_id).first()
    if movement is None:
        return "missing"
    api_key = stripe_api_key(livemode=movement.livemode)
    if movement.kind == Kind.REFUND:
        refund = stripe.Refund.retrieve(
            movement.stripe_id, api_key=api_key, expand=["balance_transaction", "failure_balance_transaction"]
        )
        ledger_refund_record(refund=stripe_object_json(refund), current=True)
        return "refund"
    if movement.kind == Kind.DISPUTE:
        dispute = stripe.Dispute.retrieve(movement.stripe_id, api_key=api_key)
        ledger_dispute_record(dispute=stripe_object_json(dispute), current=True)
        return "dispute"
    if movement.kind != Kind.PAYMENT:
        return "nothing to settle"
    intent_id = movement.payment_intent_id
    if not intent_id and movement.invoice_id:
        listed = stripe.InvoicePayment.list(invoice=movement.invoice_id, status="paid", api_key=api_key)
        payments = [p for p in listed.data if p.payment and p.payment.get("payment_intent")]  # type: ignore[attr-defined]  # stripe's InvoicePayment.payment is typed narrower than the API
        intent_id = stripe_id_of(payments[0].payment.payment_intent) if payments else ""
    charge = None
    if intent_id:
        intent = stripe_rate_limited_call(  # a 429 under a burst is waited out, not a lost settlement
            stripe.PaymentIntent.retrieve,
            intent_id,
            api_key=api_key,
            expand=["latest_charge.balance_transaction"],
        )
        charge = stripe_object_json(intent).get("latest_charge")
    payment_settle(movement_id=movement.id, payment_intent_id=intent_id, charge=charge)
    return "payment"


def _payment_charge_apply(movement: MoneyMovement, charge: dict[str, Any]) -> bool:
    """Take a succeeded charge's id, amount and settlement onto its payment row (unsaved); changed?"""
    if charge.get("status") != "succeeded":
        return False
    changed = False
    if movement.charge_id != charge["id"]:
        movement.charge_id, changed = charge["id"], True
    if movement.counts and (movement.amount, movement.currency) != (charge["amount"], charge["currency"]):
        movement.amount, movement.currency, changed = charge["amount"], charge["currency"], True
    settlement = Settlement.from_transactions([charge.get("balance_transaction")])
    return _settlement_apply(movement, settlement) or changed


def payment_settle(
    *, movement_id: int, payment_intent_id: str, charge: dict[str, Any] | None
) -> MoneyMovement:
    """Record a payment's charge (ids, amount) and settlement; attach what waited for it."""
    with transaction.atomic():
        client_id = MoneyMovement.objects.values_list("client_id", flat=True).get(id=movement_id)
        if client_id:
            client_lock(client_id)
        movement = MoneyMovement.objects.select_for_update().get(id=movement_id)
        changed = False
        if payment_intent_id and not movement.payment_intent_id:
            movement.payment_intent_id, changed = payment_intent_id, True
        if isinstance(charge, dict) and charge.get("status") == "succeeded":
            changed = _payment_charge_apply(movement, charge) or changed
        elif not payment_intent_id and movement.amount == 0 and movement.counts:
            # A no-cost order: no charge, nothing to settle.
            changed = _settlement_apply(movement, Settlement.from_transactions([])) or changed
        if changed:
            movement.save()
        if movement.client_id:
            ledger_attach_and_recompute(client_id=movement.client_id, payments=[movement])
        else:
            for key in {movement.payment_intent_id or movement.charge_id} - {""}:
                lock_name_for_transaction(f"money-pi:{key}")
        subscription_mrr_refresh(movement.subscription_id)
        return movement
