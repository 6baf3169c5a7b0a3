"""Builders for Stripe Billing objects: subscriptions, their items, invoices, invoice lines and payments.

Shapes follow API 2026-05-27.dahlia (reference_shapes.json): billing periods live on the subscription
item, an invoice names its subscription under `parent.subscription_details`, and an invoice reaches
its payment intent through `payments` (invoice_payment objects), not through `charge`/`payment_intent`.
"""

from .ids import IdFactory
from .shapes import build

NO_PRORATION = {"credited_items": None}


def plan(price: dict) -> dict:
    """The legacy `plan` hash Stripe still embeds in subscription items for recurring prices."""
    recurring = price["recurring"] or {}
    return {
        "active": True,
        "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": "per_unit",
        "created": price["created"],
        "currency": price["currency"],
        "id": price["id"],
        "interval": recurring.get("interval", "month"),
        "interval_count": recurring.get("interval_count", 1),
        "livemode": price["livemode"],
        "metadata": {},
        "meter": None,
        "nickname": None,
        "object": "plan",
        "product": price["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": None,
        "usage_type": "licensed",
    }


def subscription_item(
    ids: IdFactory, *, created: int, subscription_id: str, price: dict, period: tuple[int, int], quantity=1
) -> dict:
    return build(
        "subscription_item",
        id=ids.new("subscription_item"),
        billing_thresholds=None,
        created=created,
        current_period_start=period[0],
        current_period_end=period[1],
        discounts=[],
        metadata={},
        plan=plan(price),
        price=price,
        quantity=quantity,
        subscription=subscription_id,
        tax_rates=[],
    )


def subscription(
    ids: IdFactory,
    *,
    created: int,
    livemode: bool,
    customer_id: str,
    price: dict,
    period: tuple[int, int],
    payment_method_id: str | None,
    metadata=None,
    trial_end: int | None = None,
) -> dict:
    """An incomplete subscription with one item; the caller activates it once its invoice is paid."""
    subscription_id = ids.new("subscription")
    item = subscription_item(
        ids, created=created, subscription_id=subscription_id, price=price, period=period
    )
    return build(
        "subscription",
        id=subscription_id,
        created=created,
        livemode=livemode,
        application=None,
        application_fee_percent=None,
        automatic_tax={"disabled_reason": None, "enabled": False, "liability": None},
        billing_cycle_anchor=period[1] if trial_end else created,
        billing_cycle_anchor_config=None,
        billing_mode={"flexible": None, "type": "classic"},
        billing_schedules=[],
        billing_thresholds=None,
        cancel_at=None,
        cancel_at_period_end=False,
        canceled_at=None,
        cancellation_details={"comment": None, "feedback": None, "reason": None},
        collection_method="charge_automatically",
        currency=price["currency"],
        customer=customer_id,
        customer_account=None,
        days_until_due=None,
        default_payment_method=payment_method_id,
        default_source=None,
        default_tax_rates=[],
        description=None,
        discounts=[],
        ended_at=None,
        invoice_settings={
            "account_tax_ids": None,
            "custom_fields": None,
            "description": None,
            "footer": None,
            "issuer": {"type": "self"},
        },
        items={
            "data": [item],
            "has_more": False,
            "object": "list",
            "url": f"/v1/subscription_items?subscription={subscription_id}",
        },
        latest_invoice=None,
        managed_payments={"enabled": False},
        metadata=dict(metadata or {}),
        next_pending_invoice_item_invoice=None,
        on_behalf_of=None,
        pause_collection=None,
        payment_settings={
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        pending_invoice_item_interval=None,
        pending_setup_intent=None,
        pending_update=None,
        schedule=None,
        start_date=created,
        status="trialing" if trial_end else "incomplete",
        test_clock=None,
        transfer_data=None,
        trial_end=trial_end,
        trial_settings={"end_behavior": {"missing_payment_method": "create_invoice"}},
        trial_start=created if trial_end else None,
    )


def invoice_line(
    ids: IdFactory,
    *,
    invoice_id: str,
    livemode: bool,
    price: dict,
    description: str,
    period: tuple[int, int],
    quantity: int = 1,
    subscription_id: str | None = None,
    subscription_item_id: str | None = None,
    invoice_item_id: str | None = None,
    discount_amounts: list | None = None,
) -> dict:
    """One invoice line: from a subscription item, or from a one-off invoice item."""
    amount = price["unit_amount"] * quantity
    if subscription_item_id:
        parent = {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": False,
                "proration_details": NO_PRORATION,
                "subscription": subscription_id,
                "subscription_item": subscription_item_id,
            },
            "type": "subscription_item_details",
        }
    else:
        parent = {
            "invoice_item_details": {
                "invoice_item": invoice_item_id,
                "proration": False,
                "proration_details": NO_PRORATION,
                "subscription": None,
            },
            "subscription_item_details": None,
            "type": "invoice_item_details",
        }
    discount_amounts = discount_amounts or []
    return build(
        "line_item",
        id=ids.new("invoice_line"),
        amount=amount,
        currency=price["currency"],
        description=description,
        discount_amounts=discount_amounts,
        discountable=True,
        discounts=[entry["discount"] for entry in discount_amounts],
        invoice=invoice_id,
        livemode=livemode,
        metadata={},
        parent=parent,
        period={"start": period[0], "end": period[1]},
        pretax_credit_amounts=[],
        # Stripe adds `price_details` (price and product) to `pricing`; the reference fixture omits it.
        pricing={
            "price_details": {"price": price["id"], "product": price["product"]},
            "type": "price_details",
            "unit_amount_decimal": price["unit_amount_decimal"],
        },
        quantity=quantity,
        quantity_decimal=str(quantity),
        subscription=subscription_id,
        subtotal=amount,
        taxes=[],
    )


def invoice(
    ids: IdFactory,
    *,
    created: int,
    livemode: bool,
    customer: dict,
    currency: str,
    billing_reason: str,
    period: tuple[int, int],
    subscription: dict | None = None,
    metadata=None,
    collection_method: str = "charge_automatically",
) -> dict:
    """A draft invoice without lines; billing_flow adds lines, totals and moves it through its states."""
    invoice_id = ids.new("invoice")
    sequence = customer.get("next_invoice_sequence") or 1
    customer["next_invoice_sequence"] = sequence + 1
    parent = None
    if subscription is not None:
        parent = {
            "quote_details": None,
            "subscription_details": {
                "metadata": dict(subscription["metadata"]),
                "subscription": subscription["id"],
            },
            "type": "subscription_details",
        }
    return build(
        "invoice",
        id=invoice_id,
        created=created,
        livemode=livemode,
        account_country="DE",
        account_name="Stripe Sandbox",
        account_tax_ids=None,
        amount_due=0,
        amount_overpaid=0,
        amount_paid=0,
        amount_remaining=0,
        amount_shipping=0,
        application=None,
        attempt_count=0,
        attempted=False,
        auto_advance=True,
        automatic_tax={
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        automatically_finalizes_at=None,
        billing_reason=billing_reason,
        collection_method=collection_method,
        currency=currency,
        custom_fields=None,
        customer=customer["id"],
        customer_account=None,
        customer_address=None,
        customer_email=customer.get("email"),
        customer_name=customer.get("name"),
        customer_phone=None,
        customer_shipping=None,
        customer_tax_exempt="none",
        customer_tax_ids=[],
        default_payment_method=None,
        default_source=None,
        default_tax_rates=[],
        description=None,
        discounts=[],
        due_date=created + 30 * 24 * 3600 if collection_method == "send_invoice" else None,
        effective_at=None,
        ending_balance=None,
        footer=None,
        from_invoice=None,
        hosted_invoice_url=None,
        invoice_pdf=None,
        issuer={"type": "self"},
        last_finalization_error=None,
        latest_revision=None,
        lines={"data": [], "has_more": False, "object": "list", "url": f"/v1/invoices/{invoice_id}/lines"},
        metadata=dict(metadata or {}),
        next_payment_attempt=None,
        number=f"{customer['invoice_prefix']}-{sequence:04d}",
        on_behalf_of=None,
        parent=parent,
        payment_settings={
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        period_start=period[0],
        period_end=period[1],
        post_payment_credit_notes_amount=0,
        pre_payment_credit_notes_amount=0,
        receipt_number=None,
        rendering=None,
        shipping_cost=None,
        shipping_details=None,
        starting_balance=0,
        statement_descriptor=None,
        status="draft",
        status_transitions={
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        subscription=None if subscription is None else subscription["id"],
        subtotal=0,
        subtotal_excluding_tax=0,
        test_clock=None,
        total=0,
        total_discount_amounts=[],
        total_excluding_tax=0,
        total_pretax_credit_amounts=[],
        total_taxes=[],
        webhooks_delivered_at=None,
    )


def invoice_payment(ids: IdFactory, *, invoice: dict, payment_intent_id: str, created: int) -> dict:
    """How an invoice names the payment intent that paid it (`GET /v1/invoice_payments`).

    Not in the reference fixtures; keys from https://docs.stripe.com/api/invoice-payment/object.
    """
    return {
        "id": ids.new("invoice_payment"),
        "object": "invoice_payment",
        "amount_paid": None,
        "amount_requested": invoice["amount_due"],
        "created": created,
        "currency": invoice["currency"],
        "invoice": invoice["id"],
        "is_default": True,
        "livemode": invoice["livemode"],
        "payment": {"payment_intent": payment_intent_id, "type": "payment_intent"},
        "status": "open",
        "status_transitions": {"canceled_at": None, "paid_at": None},
    }


def invoice_item(
    ids: IdFactory, *, created: int, livemode: bool, customer_id: str, price: dict, description: str
) -> dict:
    """A one-off invoice item (what a stand-alone invoice's line comes from)."""
    return build(
        "invoiceitem",
        id=ids.new("invoiceitem"),
        amount=price["unit_amount"],
        currency=price["currency"],
        customer=customer_id,
        customer_account=None,
        date=created,
        description=description,
        discountable=True,
        discounts=[],
        invoice=None,
        livemode=livemode,
        metadata={},
        net_amount=price["unit_amount"],
        parent=None,
        period={"start": created, "end": created},
        pricing={
            "price_details": {"price": price["id"], "product": price["product"]},
            "type": "price_details",
            "unit_amount_decimal": price["unit_amount_decimal"],
        },
        proration=False,
        quantity=1,
        quantity_decimal="1",
        tax_rates=[],
        test_clock=None,
    )
