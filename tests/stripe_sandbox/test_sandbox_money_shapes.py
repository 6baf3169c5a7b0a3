"""The billing, refund, dispute, discount and payment link objects have the reference key sets."""

import pytest

from tests.stripe_sandbox.test_sandbox_shapes import shape_problems

# Fields real Stripe adds that the reference fixture (a placeholder example) leaves out.
ALLOWED_EXTRA = {
    "line_item": {"$.pricing": {"price_details"}},
    "invoice": {"$.lines.data[0].pricing": {"price_details"}},
    "invoiceitem": {"$.pricing": {"price_details"}},
    "refund": {"$": {"failure_reason", "failure_balance_transaction"}},
}


@pytest.fixture
def served(sandbox, raw):
    """Every new kind of object, fetched over HTTP as raw JSON."""
    coupon = sandbox.create_coupon(percent_off=20, code="TWENTY", duration="forever")
    session = sandbox.create_checkout(
        email="ada@example.com",
        name="Ada",
        service_id="svc",
        amount=4900,
        currency="eur",
        mode="subscription",
        coupon=coupon["coupon"]["id"],
    )["session"]
    renewal = sandbox.renew_subscription(session["subscription"])
    charge = sandbox.find_charge(renewal["invoice"]["id"])
    failed_refund = sandbox.refund(charge["id"], 100, fail=True)["refund"]
    dispute = sandbox.dispute(charge["id"], outcome="won")["dispute"]
    standalone = sandbox.create_invoice(email="bob@example.com", amount=1000, service_id="x")["invoice"]
    link = sandbox.create_payment_link(service_id="svc", amount=100)["payment_link"]
    sandbox.apply_customer_discount(session["customer"], coupon=coupon["coupon"]["id"])
    subscription = raw("GET", f"/v1/subscriptions/{session['subscription']}").json()
    invoice = raw("GET", f"/v1/invoices/{renewal['invoice']['id']}", params={"expand[]": "discounts"}).json()
    discount = invoice.pop("discounts")[0]
    invoice["discounts"] = [discount["id"]]
    return {
        "subscription": [subscription],
        "subscription_item": subscription["items"]["data"],
        "invoice": [invoice, raw("GET", f"/v1/invoices/{standalone['id']}").json()],
        "line_item": raw("GET", f"/v1/invoices/{standalone['id']}/lines").json()["data"]
        + invoice["lines"]["data"],
        "invoiceitem": [sandbox.store.get("invoiceitem", sandbox.store.all("invoiceitem")[0]["id"])],
        "refund": [raw("GET", f"/v1/refunds/{failed_refund['id']}").json()],
        "dispute": [raw("GET", f"/v1/disputes/{dispute['id']}").json()],
        "balance_transaction": raw("GET", "/v1/balance_transactions", params={"limit": 100}).json()["data"],
        "coupon": [raw("GET", f"/v1/coupons/{coupon['coupon']['id']}").json()],
        "promotion_code": [raw("GET", f"/v1/promotion_codes/{coupon['promotion_code']['id']}").json()],
        "discount": [discount, raw("GET", f"/v1/customers/{session['customer']}").json()["discount"]],
        "payment_link": [raw("GET", f"/v1/payment_links/{link['id']}").json()],
        "customer": [raw("GET", f"/v1/customers/{session['customer']}").json()],
        "charge": [raw("GET", f"/v1/charges/{charge['id']}").json()],
        "events": raw("GET", "/v1/events", params={"limit": 100}).json()["data"],
    }


def test_money_objects_match_reference_shapes(served, reference_shapes):
    problems = []
    for object_type, objects in served.items():
        if object_type == "events":
            continue
        assert objects, object_type
        for obj in objects:
            assert obj["object"] == object_type
            allowed = ALLOWED_EXTRA.get(object_type, {})
            problems += [
                f"{object_type} {p}" for p in shape_problems(reference_shapes[object_type], obj, "$", allowed)
            ]
    assert problems == [], "\n".join(problems)


def test_every_kind_of_balance_transaction_is_served(served):
    kinds = {(t["type"], t["reporting_category"]) for t in served["balance_transaction"]}
    assert kinds == {
        ("charge", "charge"),
        ("refund", "refund"),
        ("refund_failure", "refund_failure"),
        ("adjustment", "dispute"),
        ("adjustment", "dispute_reversal"),
    }
    assert {t["currency"] for t in served["balance_transaction"]} == {"usd"}
    assert all(t["net"] == t["amount"] - t["fee"] for t in served["balance_transaction"])


def test_money_events_wrap_objects_of_reference_shape(served, reference_shapes):
    events = served["events"]
    types = {event["type"] for event in events}
    assert {
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.created",
        "refund.failed",
        "charge.refunded",
        "charge.dispute.funds_reinstated",
        "charge.dispute.closed",
        "customer.discount.created",
    } <= types
    for event in events:
        envelope = {**event, "data": {"object": reference_shapes["event"]["data"]["object"]}}
        assert shape_problems(reference_shapes["event"], envelope) == []
        obj = event["data"]["object"]
        allowed = ALLOWED_EXTRA.get(obj["object"], {})
        assert shape_problems(reference_shapes[obj["object"]], obj, "$", allowed) == [], event["type"]
