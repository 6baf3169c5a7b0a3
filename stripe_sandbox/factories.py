"""Builders for each Stripe object the sandbox serves, with realistic values.

Every builder starts from the reference shape (see shapes.py) and fills values the way Stripe does
for a one-off Checkout card payment; fields Stripe leaves null for such a payment are null here.
"""

from .ids import IdFactory
from .shapes import API_VERSION, build

EMPTY_ADDRESS = {
    "city": None,
    "country": None,
    "line1": None,
    "line2": None,
    "postal_code": None,
    "state": None,
}


def _address(country: str | None = None) -> dict:
    return {**EMPTY_ADDRESS, "country": country}


def account(ids: IdFactory, created: int) -> dict:
    """The platform account behind the sandbox's API keys (`GET /v1/account`)."""
    account_id = ids.new("account")
    no_requirements = {
        "alternatives": [],
        "current_deadline": None,
        "currently_due": [],
        "disabled_reason": None,
        "errors": [],
        "eventually_due": [],
        "past_due": [],
        "pending_verification": [],
    }
    obj = build(
        "account",
        id=account_id,
        created=created,
        business_type="company",
        charges_enabled=True,
        payouts_enabled=True,
        details_submitted=True,
        country="DE",
        default_currency="eur",
        email="owner@sandbox.example",
        requirements=dict(no_requirements),
        future_requirements=dict(no_requirements),
        tos_acceptance={"date": created, "ip": "127.0.0.1", "user_agent": "stripe-sandbox"},
        external_accounts={
            "data": [],
            "has_more": False,
            "object": "list",
            "url": f"/v1/accounts/{account_id}/external_accounts",
        },
    )
    obj["business_profile"].update(
        name="Stripe Sandbox", support_email="support@sandbox.example", url="https://sandbox.example"
    )
    obj["settings"]["dashboard"]["display_name"] = "Stripe Sandbox"
    obj["settings"]["payments"]["statement_descriptor"] = "STRIPE SANDBOX"
    obj["settings"]["payouts"]["statement_descriptor"] = None
    return obj


def customer(ids: IdFactory, *, created: int, livemode: bool, email=None, name=None, metadata=None) -> dict:
    """A customer as Checkout creates it (no sources, no discount, no currency yet)."""
    return build(
        "customer",
        id=ids.new("customer"),
        created=created,
        livemode=livemode,
        email=email,
        name=name,
        metadata=dict(metadata or {}),
        address=None,
        currency=None,
        discount=None,
        invoice_prefix=ids.hex_upper(8),
        invoice_settings={
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        shipping=None,
    )


def product(
    ids: IdFactory, *, created: int, livemode: bool, name: str, metadata=None, description=None
) -> dict:
    """A service product; `default_price` is filled in once its price exists."""
    return build(
        "product",
        id=ids.new("product"),
        created=created,
        updated=created,
        livemode=livemode,
        name=name,
        description=description,
        default_price=None,
        metadata=dict(metadata or {}),
        package_dimensions=None,
        type="service",
    )


def price(
    ids: IdFactory, *, created: int, livemode: bool, product_id: str, currency: str, unit_amount: int
) -> dict:
    """A one-time price."""
    return build(
        "price",
        id=ids.new("price"),
        created=created,
        livemode=livemode,
        product=product_id,
        currency=currency,
        unit_amount=unit_amount,
        unit_amount_decimal=str(unit_amount),
        type="one_time",
        recurring=None,
        custom_unit_amount=None,
        transform_quantity=None,
    )


def line_item(ids: IdFactory, *, price_obj: dict, description: str, quantity: int = 1) -> dict:
    """A Checkout line item (`item`), embedding its full price like Stripe does."""
    total = price_obj["unit_amount"] * quantity
    return build(
        "item",
        id=ids.new("item"),
        adjustable_quantity=None,
        amount_discount=0,
        amount_subtotal=total,
        amount_tax=0,
        amount_total=total,
        currency=price_obj["currency"],
        description=description,
        metadata={},
        price=price_obj,
        quantity=quantity,
    )


def checkout_session(
    ids: IdFactory,
    *,
    created: int,
    livemode: bool,
    currency: str | None,
    amount: int | None,
    mode: str = "payment",
    metadata=None,
    customer_id=None,
    customer_email=None,
    success_url=None,
    cancel_url=None,
    client_reference_id=None,
    locale=None,
) -> dict:
    """An open Checkout Session, as `POST /v1/checkout/sessions` returns it."""
    session_id = ids.new("checkout.session", livemode)
    return build(
        "checkout.session",
        id=session_id,
        created=created,
        expires_at=created + 24 * 3600,
        livemode=livemode,
        adaptive_pricing={"enabled": False},
        after_expiration=None,
        amount_subtotal=amount,
        amount_total=amount,
        automatic_tax={"enabled": False, "liability": None, "provider": None, "status": None},
        cancel_url=cancel_url,
        client_reference_id=client_reference_id,
        collected_information={"business_name": None, "individual_name": None, "shipping_details": None},
        consent=None,
        consent_collection=None,
        currency=currency,
        currency_conversion=None,
        custom_text={
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        customer=customer_id,
        customer_creation=None if customer_id else "always",
        customer_details=None,
        customer_email=customer_email,
        discounts=[],
        invoice_creation={
            "enabled": False,
            "invoice_data": {
                "account_tax_ids": None,
                "custom_fields": None,
                "description": None,
                "footer": None,
                "issuer": None,
                "metadata": {},
                "rendering_options": None,
            },
        },
        locale=locale,
        managed_payments={"enabled": False},
        metadata=dict(metadata or {}),
        mode=mode,
        payment_intent=None,
        payment_method_collection="always",
        payment_method_configuration_details=None,
        payment_status="unpaid",
        permissions=None,
        saved_payment_method_options=None,
        shipping_address_collection=None,
        shipping_cost=None,
        status="open",
        success_url=success_url,
        total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        ui_mode="hosted",
        url=f"https://checkout.stripe.com/c/pay/{session_id}",
        wallet_options=None,
    )


def customer_details(email: str | None, name: str | None, country: str = "DE") -> dict:
    """What Checkout collected from the payer."""
    return {
        "address": _address(country),
        "business_name": None,
        "email": email,
        "individual_name": None,
        "name": name,
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
    }


def payment_method(ids: IdFactory, *, created: int, livemode: bool, email=None, name=None) -> dict:
    """A Visa test card (4242) as Checkout collects it (not attached to the customer)."""
    obj = build(
        "payment_method",
        id=ids.new("payment_method"),
        created=created,
        livemode=livemode,
        customer=None,
        customer_account=None,
        metadata={},
        billing_details={
            "address": _address("DE"),
            "email": email,
            "name": name,
            "phone": None,
            "tax_id": None,
        },
    )
    obj["card"].update(
        country="US",
        fingerprint=ids.fingerprint(),
        generated_from=None,
        regulated_status="unregulated",
        wallet=None,
    )
    return obj


def payment_intent(
    ids: IdFactory,
    *,
    created: int,
    livemode: bool,
    amount: int,
    currency: str,
    customer_id: str | None,
    payment_method_id: str | None,
    status: str,
) -> dict:
    """A Checkout PaymentIntent; callers set `latest_charge` and the final status."""
    intent_id = ids.new("payment_intent")
    return build(
        "payment_intent",
        id=intent_id,
        created=created,
        livemode=livemode,
        amount=amount,
        amount_received=amount if status == "succeeded" else 0,
        automatic_payment_methods=None,
        canceled_at=None,
        capture_method="automatic_async",
        client_secret=f"{intent_id}_secret_{ids.token(25)}",
        currency=currency,
        customer=customer_id,
        last_payment_error=None,
        latest_charge=None,
        managed_payments={"enabled": False},
        next_action=None,
        payment_method=payment_method_id,
        payment_method_configuration_details=None,
        processing=None,
        shipping=None,
        status=status,
        transfer_data=None,
    )


def charge(
    ids: IdFactory,
    *,
    created: int,
    livemode: bool,
    amount: int,
    currency: str,
    customer_id: str | None,
    payment_intent_id: str,
    payment_method_id: str,
    balance_transaction_id: str | None,
    email=None,
    name=None,
    status: str = "succeeded",
) -> dict:
    """A card charge in `status` succeeded, pending (async payment in flight) or failed (declined)."""
    charge_id = ids.new("charge")
    succeeded = status == "succeeded"
    failed = status == "failed"
    obj = build(
        "charge",
        id=charge_id,
        created=created,
        livemode=livemode,
        amount=amount,
        amount_captured=0 if failed else amount,
        balance_transaction=balance_transaction_id,
        billing_details={
            "address": _address("DE"),
            "email": email,
            "name": name,
            "phone": None,
            "tax_id": None,
        },
        calculated_statement_descriptor="STRIPE SANDBOX",
        captured=not failed,
        currency=currency,
        customer=customer_id,
        description=None,
        failure_code="card_declined" if failed else None,
        failure_message="Your card was declined." if failed else None,
        outcome={
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "declined_by_network" if failed else "approved_by_network",
            "reason": "generic_decline" if failed else None,
            "seller_message": "The bank did not return any further details."
            if failed
            else "Payment complete.",
            "type": "issuer_declined" if failed else "authorized",
        },
        paid=succeeded,
        payment_intent=payment_intent_id,
        payment_method=payment_method_id,
        receipt_email=email,
        receipt_url=f"https://pay.stripe.com/receipts/payment/{ids.token(96)}",
        refunds={"data": [], "has_more": False, "object": "list", "url": f"/v1/charges/{charge_id}/refunds"},
        shipping=None,
        source=None,
        status=status,
        transfer_data=None,
    )
    card = obj["payment_method_details"]["card"]
    card.update(
        amount_authorized=None if failed else amount,
        authorization_code=None if failed else ids.token(6, "0123456789"),
        country="US",
        fingerprint=ids.fingerprint(),
        installments=None,
        network_transaction_id=ids.token(15, "0123456789"),
        overcapture={"maximum_amount_capturable": amount, "status": "unavailable"},
        regulated_status="unregulated",
        three_d_secure=None,
        wallet=None,
    )
    return obj


def balance_transaction(
    ids: IdFactory,
    *,
    created: int,
    amount: int,
    currency: str,
    source_id: str,
    fee: int | None = None,
    exchange_rate: float | None = None,
    kind: str = "charge",
    reporting_category: str | None = None,
    description: str | None = None,
    fee_description: str = "Stripe processing fees",
) -> dict:
    """A balance transaction in the settlement `currency` (a charge's fee: 1.5% + 25 minor units)."""
    if fee is None:
        fee = round(amount * 0.015) + 25 if kind == "charge" else 0
    fee_details = (
        [
            {
                "amount": fee,
                "application": None,
                "currency": currency,
                "description": fee_description,
                "type": "stripe_fee",
            }
        ]
        if fee
        else []
    )
    return build(
        "balance_transaction",
        id=ids.new("balance_transaction"),
        created=created,
        available_on=created + 2 * 24 * 3600,
        amount=amount,
        currency=currency,
        description=description,
        exchange_rate=exchange_rate,
        fee=fee,
        fee_details=fee_details,
        net=amount - fee,
        reporting_category=reporting_category or kind,
        source=source_id,
        status="pending",
        type=kind,
    )


def event(ids: IdFactory, *, event_type: str, obj: dict, created: int, pending_webhooks: int = 0) -> dict:
    """An event wrapping a snapshot of `obj`, exactly as webhooks carry it."""
    return build(
        "event",
        id=ids.new("event"),
        api_version=API_VERSION,
        created=created,
        data={"object": obj},
        livemode=obj.get("livemode", False),
        pending_webhooks=pending_webhooks,
        request={"id": None, "idempotency_key": None},
        type=event_type,
    )


def webhook_endpoint(
    ids: IdFactory,
    *,
    created: int,
    livemode: bool,
    url: str,
    enabled_events,
    api_version=None,
    description=None,
    metadata=None,
) -> dict:
    """A webhook endpoint registration (its `secret` is only returned on create)."""
    return build(
        "webhook_endpoint",
        id=ids.new("webhook_endpoint"),
        created=created,
        livemode=livemode,
        url=url,
        enabled_events=list(enabled_events),
        api_version=api_version,
        description=description,
        metadata=dict(metadata or {}),
    )
