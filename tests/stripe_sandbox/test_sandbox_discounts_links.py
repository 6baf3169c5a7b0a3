"""Discounts (dahlia shape: the coupon under `source`), no-cost orders, Payment Links, Adaptive Pricing."""

from decimal import Decimal

import pytest
import stripe

from tests.stripe_sandbox.helpers import API_KEY, event_types

START = 1_767_225_600


def checkout(sandbox, **options):
    fields = {
        "email": "ada@example.com",
        "name": "Ada",
        "service_id": "svc",
        "amount": 10000,
        "currency": "eur",
    }
    return sandbox.create_checkout(**{**fields, **options})


def test_payment_mode_coupon_discounts_the_session_and_its_charge(sandbox):
    coupon = sandbox.create_coupon(percent_off=25, code="SPRING25")
    session_id = checkout(sandbox, promotion_code="SPRING25")["session"]["id"]
    session = stripe.checkout.Session.retrieve(
        session_id, expand=["total_details.breakdown", "line_items.data.discounts"], api_key=API_KEY
    )
    assert session.amount_subtotal == 10000 and session.amount_total == 7500
    assert session.total_details.amount_discount == 2500
    assert session.discounts[0].to_dict() == {
        "coupon": coupon["coupon"]["id"],
        "promotion_code": coupon["promotion_code"]["id"],
    }
    [applied] = session.total_details.breakdown.discounts
    assert applied.amount == 2500 and applied.discount.source.to_dict() == {
        "coupon": coupon["coupon"]["id"],
        "type": "coupon",
    }
    assert (
        applied.discount.checkout_session == session_id
        and applied.discount.promotion_code == coupon["promotion_code"]["id"]
    )
    assert session.line_items.data[0].discounts[0].amount == 2500
    charge = sandbox.find_charge(session_id)
    assert charge["amount"] == 7500
    assert stripe.Coupon.retrieve(coupon["coupon"]["id"], api_key=API_KEY).times_redeemed == 1
    promo = stripe.PromotionCode.list(code="SPRING25", api_key=API_KEY).data[0]
    assert promo.promotion.coupon == coupon["coupon"]["id"] and promo.times_redeemed == 1


def test_hundred_percent_coupon_is_a_no_cost_order(sandbox):
    result = checkout(sandbox, percent_off=100)
    session = result["session"]
    assert session["payment_status"] == "no_payment_required" and session["status"] == "complete"
    assert session["amount_total"] == 0 and session["payment_intent"] is None
    assert event_types(sandbox, result["events"]) == ["checkout.session.completed"]
    assert stripe.Charge.list(api_key=API_KEY).data == []


def test_subscription_coupon_sits_on_subscription_and_invoices_for_its_duration(sandbox):
    coupon = sandbox.create_coupon(
        amount_off=1000, currency="eur", duration="repeating", duration_in_months=2
    )
    session = checkout(sandbox, mode="subscription", coupon=coupon["coupon"]["id"], created=START)["session"]
    subscription = stripe.Subscription.retrieve(
        session["subscription"], expand=["discounts"], api_key=API_KEY
    )
    [discount] = subscription.discounts
    assert discount.subscription == subscription.id and discount.checkout_session is None
    assert discount.source.coupon == coupon["coupon"]["id"] and discount.end is not None
    totals = [session["amount_total"]]
    for _ in range(3):
        totals.append(sandbox.renew_subscription(session["subscription"])["invoice"]["total"])
    assert totals == [9000, 9000, 10000, 10000]  # two months discounted
    invoice = stripe.Invoice.retrieve(
        session["invoice"], expand=["discounts", "lines.data.discounts"], api_key=API_KEY
    )
    assert invoice.discounts[0].id == discount.id and invoice.total_discount_amounts[0].amount == 1000
    assert invoice.lines.data[0].discounts[0].source.coupon == coupon["coupon"]["id"]


def test_customer_discount_has_the_dahlia_shape(sandbox, raw):
    customer = checkout(sandbox)["session"]["customer"]
    coupon = sandbox.create_coupon(percent_off=10, duration="forever")["coupon"]
    result = sandbox.apply_customer_discount(customer, coupon=coupon["id"])
    assert event_types(sandbox, result["events"]) == ["customer.discount.created", "customer.updated"]
    body = raw("GET", f"/v1/customers/{customer}").json()
    assert body["discount"]["source"] == {"coupon": coupon["id"], "type": "coupon"}
    assert "coupon" not in body["discount"]  # the pre-dahlia top-level coupon is gone
    expanded = stripe.Customer.retrieve(customer, expand=["discount.source.coupon"], api_key=API_KEY)
    assert expanded.discount.source.coupon.percent_off == 10


def test_trial_and_discount_validation(sandbox):
    with pytest.raises(ValueError, match="trial_days needs"):
        checkout(sandbox, trial_days=7)
    with pytest.raises(ValueError, match="not both"):
        checkout(sandbox, coupon="X", percent_off=5)
    with pytest.raises(KeyError):
        checkout(sandbox, coupon="NOPE")
    with pytest.raises(ValueError, match="not eur"):
        checkout(sandbox, coupon=sandbox.create_coupon(amount_off=5, currency="usd")["coupon"]["id"])


def test_payment_link_metadata_reaches_the_session(sandbox):
    link = sandbox.create_payment_link(
        service_id="brand-kit", amount=2500, currency="usd", metadata={"campaign": "fall"}
    )["payment_link"]
    assert link["url"].startswith("https://buy.stripe.com/") and link["metadata"] == {
        "serviceId": "brand-kit",
        "campaign": "fall",
    }
    session = checkout(sandbox, payment_link=link["id"], service_id="ignored")["session"]
    assert session["payment_link"] == link["id"] and session["metadata"] == link["metadata"]
    assert session["amount_total"] == 2500 and session["currency"] == "usd"
    assert [s.id for s in stripe.checkout.Session.list(payment_link=link["id"], api_key=API_KEY).data] == [
        session["id"]
    ]
    fetched = stripe.PaymentLink.retrieve(link["id"], api_key=API_KEY)
    assert fetched.active is True and [p.id for p in stripe.PaymentLink.list(api_key=API_KEY).data] == [
        link["id"]
    ]
    expanded = stripe.checkout.Session.retrieve(session["id"], expand=["payment_link"], api_key=API_KEY)
    assert expanded.payment_link.metadata["campaign"] == "fall"


def test_recurring_payment_link_makes_subscription_sessions(sandbox):
    link = sandbox.create_payment_link(service_id="care", amount=900, interval="month")["payment_link"]
    session = checkout(sandbox, payment_link=link["id"])["session"]
    assert session["mode"] == "subscription" and session["subscription"].startswith("sub_")
    assert (
        stripe.Subscription.retrieve(session["subscription"], api_key=API_KEY).metadata["serviceId"] == "care"
    )


def test_adaptive_pricing_session_carries_currency_conversion(sandbox, raw):
    session_id = checkout(sandbox, currency="usd", amount=10000, presentment_currency="eur", created=START)[
        "session"
    ]["id"]
    body = raw("GET", f"/v1/checkout/sessions/{session_id}").json()
    conversion = body["currency_conversion"]
    assert isinstance(conversion["fx_rate"], str)  # a decimal string in Stripe's JSON
    assert conversion["source_currency"] == "usd" and conversion["amount_total"] == 10000
    rate = Decimal(conversion["fx_rate"])
    assert body["currency"] == "eur" and body["amount_total"] == int(
        (10000 * rate).to_integral_value("ROUND_HALF_UP")
    )
    assert body["adaptive_pricing"] == {"enabled": True}
    charge = sandbox.find_charge(session_id)
    assert (charge["amount"], charge["currency"]) == (body["amount_total"], "eur")
    # stripe-python turns the string into a Decimal (what dj-stripe then cannot store as JSON).
    session = stripe.checkout.Session.retrieve(session_id, api_key=API_KEY)
    assert session.to_dict()["currency_conversion"]["fx_rate"] == rate and isinstance(
        session.currency_conversion.fx_rate, Decimal
    )
    line = stripe.checkout.Session.list_line_items(session_id, api_key=API_KEY).data[0]
    assert line.currency == "eur" and line.amount_total == body["amount_total"]
