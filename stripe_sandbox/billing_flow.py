"""What Stripe Billing does: subscription checkouts, renewals (like a test clock), cancellations, invoices.

Every function changes the stored objects to their final state and returns the events Stripe would
send, in order, each holding the snapshot of its moment (an `invoice.created` shows a draft).
"""

import calendar
from datetime import UTC, datetime

from . import billing_factories, discounts, factories
from .checkout_flow import record_event, session_customer
from .money_factories import discount as new_discount
from .payments import charge_card, ensure_payment_method
from .store import ObjectStore

INTERVALS = ("day", "week", "month", "year")
RETRY_DELAY = 3 * 24 * 3600


def add_interval(timestamp: int, interval: str, count: int = 1) -> int:
    """`timestamp` moved `count` billing intervals on (months keep the day, clamped to month end)."""
    if interval == "day":
        return timestamp + count * 86400
    if interval == "week":
        return timestamp + count * 7 * 86400
    moment = datetime.fromtimestamp(timestamp, UTC)
    months = count * (12 if interval == "year" else 1)
    if interval not in ("month", "year"):
        raise ValueError(f"interval must be one of {INTERVALS}")
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())


class Recorder:
    """Collects the events of one operation."""

    def __init__(self, store: ObjectStore, ids, created: int, pending_webhooks: int):
        self.store, self.ids, self.created, self.pending = store, ids, created, pending_webhooks
        self.events: list[dict] = []

    def __call__(self, event_type: str, obj: dict) -> None:
        self.events.append(record_event(self.store, self.ids, event_type, obj, self.created, self.pending))


# -- invoices -------------------------------------------------------------------------------------


def _draft_invoice(
    store: ObjectStore,
    ids,
    *,
    customer: dict,
    price: dict,
    description: str,
    created: int,
    billing_reason: str,
    period: tuple[int, int],
    subscription: dict | None = None,
    coupon: dict | None = None,
    discount_ids: list[str] | None = None,
    promotion: dict | None = None,
    metadata=None,
    collection_method: str = "charge_automatically",
    line_amount: int | None = None,
) -> dict:
    """A stored draft invoice with one line, its discount and totals."""
    invoice = billing_factories.invoice(
        ids,
        created=created,
        livemode=customer["livemode"],
        customer=customer,
        currency=price["currency"],
        billing_reason=billing_reason,
        period=period,
        subscription=subscription,
        metadata=metadata,
        collection_method=collection_method,
    )
    item = subscription["items"]["data"][0] if subscription else None
    invoice_item = None
    if subscription is None:
        invoice_item = billing_factories.invoice_item(
            ids,
            created=created,
            livemode=customer["livemode"],
            customer_id=customer["id"],
            price=price,
            description=description,
        )
        invoice_item["invoice"] = invoice["id"]
        store.add(invoice_item)
    subtotal = price["unit_amount"] if line_amount is None else line_amount
    discount_amounts = []
    if coupon is not None:
        if not discount_ids:
            discount = _invoice_discount(store, ids, coupon, promotion, customer, invoice, created)
            discount_ids = [discount["id"]]
        off = discounts.amount_off(coupon, subtotal, price["currency"])
        discount_amounts = [{"amount": off, "discount": discount_ids[0]}]
    line = billing_factories.invoice_line(
        ids,
        invoice_id=invoice["id"],
        livemode=customer["livemode"],
        price=price,
        description=description,
        period=period,
        subscription_id=subscription["id"] if subscription else None,
        subscription_item_id=item["id"] if item else None,
        invoice_item_id=invoice_item["id"] if invoice_item else None,
        discount_amounts=discount_amounts,
    )
    line.update(amount=subtotal, subtotal=subtotal)
    discount_total = sum(entry["amount"] for entry in discount_amounts)
    total = subtotal - discount_total
    invoice["lines"]["data"] = [line]
    invoice.update(
        discounts=[entry["discount"] for entry in discount_amounts],
        subtotal=subtotal,
        subtotal_excluding_tax=subtotal,
        total_discount_amounts=discount_amounts,
        total=total,
        total_excluding_tax=total,
        amount_due=total,
        amount_remaining=total,
        ending_balance=None,
    )
    return store.add(invoice)


def _invoice_discount(store, ids, coupon, promotion, customer, invoice, created) -> dict:
    """A discount applied directly to a stand-alone invoice."""
    discounts.redeem(store, coupon, promotion)
    return store.add(
        new_discount(
            ids,
            start=created,
            coupon_obj=coupon,
            promotion_code_id=promotion["id"] if promotion else None,
            customer_id=customer["id"],
            invoice_id=invoice["id"],
        )
    )


def _finalize(ids, invoice: dict, created: int, record: Recorder) -> None:
    """Draft -> open, with its hosted page and PDF."""
    record("invoice.created", invoice)
    token = ids.token(24)
    invoice.update(
        status="open",
        effective_at=created,
        hosted_invoice_url=f"https://invoice.stripe.com/i/acct_sandbox/test_{token}",
        invoice_pdf=f"https://pay.stripe.com/invoice/acct_sandbox/test_{token}/pdf",
        ending_balance=0,
        starting_balance=0,
    )
    invoice["status_transitions"]["finalized_at"] = created
    record("invoice.finalized", invoice)


def _attempt(
    store: ObjectStore, ids, invoice: dict, customer: dict, method: dict, created: int, succeed: bool
) -> None:
    """Charge the invoice's amount due (reusing its payment intent on a retry)."""
    invoice["attempted"] = True
    invoice["attempt_count"] += 1
    if invoice["amount_due"] == 0:
        _mark_paid(invoice, created)
        return
    payment = next((p for p in store.all("invoice_payment") if p["invoice"] == invoice["id"]), None)
    intent = store.get("payment_intent", payment["payment"]["payment_intent"]) if payment else None
    intent, _ = charge_card(
        store,
        ids,
        customer=customer,
        method=method,
        amount=invoice["amount_due"],
        currency=invoice["currency"],
        created=created,
        succeed=succeed,
        description="Subscription creation" if invoice["billing_reason"] == "subscription_create" else None,
        intent=intent,
    )
    if payment is None:
        payment = store.add(
            billing_factories.invoice_payment(
                ids, invoice=invoice, payment_intent_id=intent["id"], created=created
            )
        )
    if succeed:
        payment.update(status="paid", amount_paid=invoice["amount_due"])
        payment["status_transitions"]["paid_at"] = created
        _mark_paid(invoice, created)
    else:
        invoice["next_payment_attempt"] = created + RETRY_DELAY


def _mark_paid(invoice: dict, created: int) -> None:
    invoice.update(
        status="paid",
        amount_paid=invoice["amount_due"],
        amount_remaining=0,
        auto_advance=False,
        next_payment_attempt=None,
    )
    invoice["status_transitions"]["paid_at"] = created


def _issue(store, ids, invoice, customer, method, created, succeed, record: Recorder) -> None:
    _finalize(ids, invoice, created, record)
    _attempt(store, ids, invoice, customer, method, created, succeed)
    if invoice["status"] == "paid":
        record("invoice.paid", invoice)
        record("invoice.payment_succeeded", invoice)
    else:
        record("invoice.payment_failed", invoice)


def standalone_invoice(
    store: ObjectStore,
    ids,
    *,
    customer: dict,
    price: dict,
    description: str,
    created: int,
    service_id: str,
    coupon: dict | None = None,
    promotion: dict | None = None,
    fail: bool = False,
    pending_webhooks: int = 0,
) -> tuple[dict, list[dict]]:
    """A one-off invoice (`billing_reason: manual`) sent to the customer and paid by card on its page."""
    record = Recorder(store, ids, created, pending_webhooks)
    invoice = _draft_invoice(
        store,
        ids,
        customer=customer,
        price=price,
        description=description,
        created=created,
        billing_reason="manual",
        period=(created, created),
        coupon=coupon,
        promotion=promotion,
        metadata={"serviceId": service_id},
        collection_method="send_invoice",
    )
    method = ensure_payment_method(store, ids, customer, created=created)
    _issue(store, ids, invoice, customer, method, created, not fail, record)
    return invoice, record.events


def pay_invoice(
    store: ObjectStore, ids, invoice: dict, *, created: int, fail: bool = False, pending_webhooks: int = 0
) -> list[dict]:
    """Retry an open invoice (a failed renewal); a paid renewal makes a past-due subscription active."""
    if invoice["status"] != "open":
        raise ValueError(f"invoice {invoice['id']} is {invoice['status']}, not open")
    record = Recorder(store, ids, created, pending_webhooks)
    customer = store.get("customer", invoice["customer"])
    method = ensure_payment_method(store, ids, customer, created=created)
    _attempt(store, ids, invoice, customer, method, created, not fail)
    if invoice["status"] != "paid":
        record("invoice.payment_failed", invoice)
        return record.events
    record("invoice.paid", invoice)
    record("invoice.payment_succeeded", invoice)
    subscription = store.get("subscription", invoice["subscription"]) if invoice["subscription"] else None
    if subscription is not None and subscription["status"] == "past_due":
        subscription["status"] = "active"
        record("customer.subscription.updated", subscription)
    return record.events


# -- subscriptions --------------------------------------------------------------------------------


def complete_subscription_session(
    store: ObjectStore,
    ids,
    session: dict,
    *,
    email: str | None,
    name: str | None,
    created: int,
    pending_webhooks: int = 0,
) -> list[dict]:
    """Pay a `mode=subscription` session: subscription, first invoice (paid), then the session."""
    record = Recorder(store, ids, created, pending_webhooks)
    [line] = store.line_items[session["id"]]
    price = store.get("price", line["price"]["id"])
    options = store.session_options.get(session["id"], {})
    customer = session_customer(store, ids, session, email=email, name=name, created=created)
    method = ensure_payment_method(store, ids, customer, created=created)
    interval = price["recurring"]["interval"]
    trial_days = options.get("trial_days")
    trial_end = created + trial_days * 86400 if trial_days else None
    period = (created, trial_end or add_interval(created, interval, price["recurring"]["interval_count"]))
    subscription = billing_factories.subscription(
        ids,
        created=created,
        livemode=customer["livemode"],
        customer_id=customer["id"],
        price=price,
        period=period,
        payment_method_id=method["id"],
        metadata=options.get("subscription_metadata", session["metadata"]),
        trial_end=trial_end,
    )
    coupon, promotion = None, None
    if session["discounts"]:
        applied = session["discounts"][0]
        coupon, promotion = discounts.resolve(store, applied["coupon"], applied["promotion_code"])
    discount_ids = []
    if coupon is not None:
        discounts.redeem(store, coupon, promotion)
        applied = store.add(
            new_discount(
                ids,
                start=created,
                coupon_obj=coupon,
                promotion_code_id=promotion["id"] if promotion else None,
                customer_id=customer["id"],
                subscription_id=subscription["id"],
            )
        )
        discount_ids = [applied["id"]]
        subscription["discounts"] = discount_ids
    store.add(subscription)
    record("customer.subscription.created", subscription)
    product = store.get("product", price["product"])
    invoice = _draft_invoice(
        store,
        ids,
        customer=customer,
        price=price,
        description=f"{'Trial period for ' if trial_end else '1 × '}{product['name']}",
        created=created,
        billing_reason="subscription_create",
        period=period,
        subscription=subscription,
        coupon=coupon,
        discount_ids=discount_ids,
        line_amount=0 if trial_end else None,
    )
    subscription["latest_invoice"] = invoice["id"]
    _issue(store, ids, invoice, customer, method, created, True, record)
    if subscription["status"] == "incomplete":
        subscription["status"] = "active"
        record("customer.subscription.updated", subscription)
    session.update(
        status="complete",
        url=None,
        customer=customer["id"],
        customer_details=factories.customer_details(email, name),
        subscription=subscription["id"],
        invoice=invoice["id"],
        payment_status="paid" if invoice["amount_paid"] > 0 else "no_payment_required",
    )
    record("checkout.session.completed", session)
    return record.events


def _invoice_count(store: ObjectStore, subscription_id: str) -> int:
    return sum(1 for invoice in store.all("invoice") if invoice["subscription"] == subscription_id)


def renew(
    store: ObjectStore,
    ids,
    subscription: dict,
    *,
    created: int | None = None,
    fail: bool = False,
    pending_webhooks: int = 0,
) -> tuple[dict, list[dict]]:
    """Advance the subscription one period (as a test clock would) and bill it: a `subscription_cycle`
    invoice, paid or (fail=True) declined, which leaves the subscription past_due."""
    if subscription["status"] in ("canceled", "incomplete_expired"):
        raise ValueError(f"subscription {subscription['id']} is {subscription['status']}")
    item = subscription["items"]["data"][0]
    price = item["price"]
    start = item["current_period_end"]
    created = start if created is None else int(created)
    end = add_interval(start, price["recurring"]["interval"], price["recurring"]["interval_count"])
    record = Recorder(store, ids, created, pending_webhooks)
    item.update(current_period_start=start, current_period_end=end)
    if subscription["status"] == "trialing":
        subscription["status"] = "active"
    record("customer.subscription.updated", subscription)
    customer = store.get("customer", subscription["customer"])
    coupon = None
    if subscription["discounts"]:
        applied = store.get("discount", subscription["discounts"][0])
        candidate = store.get("coupon", applied["source"]["coupon"])
        if discounts.applies_to_cycle(candidate, _invoice_count(store, subscription["id"])):
            coupon = candidate
    product = store.get("product", price["product"])
    invoice = _draft_invoice(
        store,
        ids,
        customer=customer,
        price=price,
        description=f"1 × {product['name']}",
        created=created,
        billing_reason="subscription_cycle",
        period=(start, end),
        subscription=subscription,
        coupon=coupon,
        discount_ids=list(subscription["discounts"]) if coupon else None,
    )
    subscription["latest_invoice"] = invoice["id"]
    method = store.get("payment_method", subscription["default_payment_method"]) or ensure_payment_method(
        store, ids, customer, created=created
    )
    _issue(store, ids, invoice, customer, method, created, not fail, record)
    if fail and subscription["status"] != "past_due":
        subscription["status"] = "past_due"
        record("customer.subscription.updated", subscription)
    elif not fail and subscription["status"] == "past_due":
        subscription["status"] = "active"
        record("customer.subscription.updated", subscription)
    return invoice, record.events


def cancel(
    store: ObjectStore,
    ids,
    subscription: dict,
    *,
    created: int,
    reason: str = "cancellation_requested",
    pending_webhooks: int = 0,
) -> list[dict]:
    """Cancel at once: `customer.subscription.deleted` with the subscription canceled."""
    if subscription["status"] == "canceled":
        raise ValueError(f"subscription {subscription['id']} is already canceled")
    record = Recorder(store, ids, created, pending_webhooks)
    subscription.update(status="canceled", canceled_at=created, ended_at=created)
    subscription["cancellation_details"]["reason"] = reason
    record("customer.subscription.deleted", subscription)
    return record.events
