"""Builders for refunds, disputes, coupons, promotion codes, discounts and payment links (dahlia shapes).

A discount names its coupon under `source` (`{"type": "coupon", "coupon": "<id>"}`), as the pinned
API version does; a promotion code names it under `promotion`.
"""

from .ids import IdFactory
from .shapes import build, template


def refund(
    ids: IdFactory,
    *,
    created: int,
    charge: dict,
    amount: int,
    status: str,
    reason: str | None = None,
    metadata=None,
) -> dict:
    """A card refund of `charge`; `balance_transaction` is set by the caller."""
    return build(
        "refund",
        id=ids.new("refund"),
        amount=amount,
        balance_transaction=None,
        charge=charge["id"],
        created=created,
        currency=charge["currency"],
        customer=charge["customer"],
        customer_account=None,
        destination_details={"card": {"type": "refund"}, "type": "card"},
        metadata=dict(metadata or {}),
        payment_intent=charge["payment_intent"],
        payment_method=charge["payment_method"],
        reason=reason,
        receipt_number=None,
        source_transfer_reversal=None,
        status=status,
        transfer_reversal=None,
    )


def dispute(ids: IdFactory, *, created: int, charge: dict, amount: int, reason: str = "fraudulent") -> dict:
    """A card chargeback that needs a response (funds are withdrawn by the caller)."""
    evidence = {key: None for key in template("dispute")["evidence"]}
    evidence["enhanced_evidence"] = {}
    return build(
        "dispute",
        id=ids.new("dispute"),
        amount=amount,
        balance_transactions=[],
        charge=charge["id"],
        created=created,
        currency=charge["currency"],
        enhanced_eligibility_types=[],
        evidence=evidence,
        evidence_details={
            "due_by": created + 7 * 24 * 3600,
            "enhanced_eligibility": {},
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
        },
        is_charge_refundable=False,
        livemode=charge["livemode"],
        metadata={},
        payment_intent=charge["payment_intent"],
        payment_method_details={
            "card": {"brand": "visa", "case_type": "chargeback", "network_reason_code": "10.4"},
            "type": "card",
        },
        reason=reason,
        status="needs_response",
    )


def coupon(
    ids: IdFactory,
    *,
    created: int,
    livemode: bool,
    percent_off: float | None = None,
    amount_off: int | None = None,
    currency: str | None = None,
    duration: str = "once",
    duration_in_months: int | None = None,
    name: str | None = None,
    coupon_id: str | None = None,
    metadata=None,
) -> dict:
    if (percent_off is None) == (amount_off is None):
        raise ValueError("give exactly one of percent_off and amount_off")
    if amount_off is not None and not currency:
        raise ValueError("amount_off needs a currency")
    if duration not in ("once", "repeating", "forever"):
        raise ValueError("duration must be once, repeating or forever")
    if (duration == "repeating") != (duration_in_months is not None):
        raise ValueError("duration_in_months goes with (and only with) duration=repeating")
    if name is None:
        name = f"{percent_off:g}% off" if percent_off is not None else f"{amount_off} {currency} off"
    return build(
        "coupon",
        id=coupon_id or ids.coupon_code(),
        amount_off=amount_off,
        created=created,
        currency=currency.lower() if amount_off is not None else None,
        duration=duration,
        duration_in_months=duration_in_months,
        livemode=livemode,
        max_redemptions=None,
        metadata=dict(metadata or {}),
        name=name,
        percent_off=percent_off,
        redeem_by=None,
        times_redeemed=0,
        valid=True,
    )


def promotion_code(ids: IdFactory, *, created: int, coupon_obj: dict, code: str) -> dict:
    return build(
        "promotion_code",
        id=ids.new("promotion_code"),
        active=True,
        code=code,
        created=created,
        customer=None,
        customer_account=None,
        expires_at=None,
        livemode=coupon_obj["livemode"],
        max_redemptions=None,
        metadata={},
        promotion={"coupon": coupon_obj["id"], "type": "coupon"},
        restrictions={
            "first_time_transaction": False,
            "minimum_amount": None,
            "minimum_amount_currency": None,
        },
        times_redeemed=0,
    )


def discount(
    ids: IdFactory,
    *,
    start: int,
    coupon_obj: dict,
    promotion_code_id: str | None = None,
    customer_id: str | None = None,
    subscription_id: str | None = None,
    invoice_id: str | None = None,
    checkout_session_id: str | None = None,
) -> dict:
    end = None
    if coupon_obj["duration"] == "repeating":
        end = start + coupon_obj["duration_in_months"] * 30 * 24 * 3600
    return build(
        "discount",
        id=ids.new("discount"),
        checkout_session=checkout_session_id,
        customer=customer_id,
        customer_account=None,
        end=end,
        invoice=invoice_id,
        invoice_item=None,
        promotion_code=promotion_code_id,
        source={"coupon": coupon_obj["id"], "type": "coupon"},
        start=start,
        subscription=subscription_id,
        subscription_item=None,
    )


def payment_link(ids: IdFactory, *, livemode: bool, price: dict, metadata=None, url_token: str = "") -> dict:
    """A payment link selling one price; sessions it creates carry its metadata."""
    recurring = price["type"] == "recurring"
    return build(
        "payment_link",
        id=ids.new("payment_link"),
        active=True,
        after_completion={"hosted_confirmation": {"custom_message": None}, "type": "hosted_confirmation"},
        allow_promotion_codes=False,
        application=None,
        application_fee_amount=None,
        application_fee_percent=None,
        automatic_tax={"enabled": False, "liability": None},
        billing_address_collection="auto",
        consent_collection=None,
        currency=price["currency"],
        custom_fields=[],
        custom_text={
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        customer_creation="always",
        inactive_message=None,
        invoice_creation=None,
        livemode=livemode,
        managed_payments={"enabled": False},
        metadata=dict(metadata or {}),
        on_behalf_of=None,
        payment_intent_data=None,
        payment_method_collection="always",
        payment_method_options=None,
        payment_method_types=None,
        phone_number_collection={"enabled": False},
        restrictions=None,
        shipping_address_collection=None,
        shipping_options=[],
        submit_type="auto",
        subscription_data={
            "description": None,
            "invoice_settings": {"issuer": {"type": "self"}},
            "metadata": dict(metadata or {}),
            "trial_period_days": None,
            "trial_settings": None,
        }
        if recurring
        else None,
        tax_id_collection={"enabled": False, "required": "never"},
        transfer_data=None,
        url=f"https://buy.stripe.com/test_{url_token}",
    )
