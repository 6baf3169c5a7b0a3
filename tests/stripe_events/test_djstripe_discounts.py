"""Discounts in the pinned API version's shape (2026-05-27.dahlia) sync, onboard and are valued right.

Since dahlia a discount's coupon sits under `discount.source`; dj-stripe 2.11's Customer sync read
`discount.coupon` and raised (stripe_events/djstripe_compat.py). The shapes come from Stripe's OpenAPI
fixtures for that version, the sandbox's one copy (stripe_sandbox/reference_shapes.json, read through
stripe_sandbox.shapes.template); a test fills in the ids that tie them together.
"""

import copy

import pytest
import stripe
from djstripe.models import Customer, Discount, Event, Invoice, Session, Subscription

from crm.models import Client, MoneyMovement, Onboarding, Payment
from stripe_events.models import StripeWebhookJob
from stripe_sandbox.shapes import template
from tests.factories import ServiceFactory
from tests.support.money import DAY, T0, assert_matches_sandbox, deliver_shuffled, undelivered

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("anymail_outbox")]

CUSTOMER_ID = template("customer")["id"]  # the customer the reference subscription and invoice name
COUPON_ID = template("coupon")["id"]
PROMOTION_CODE_ID = template("promotion_code")["id"]


def dahlia_discount(*, coupon=COUPON_ID, **fields) -> dict:
    """A discount as Stripe returns it in dahlia: the coupon (an id unless expanded) under `source`."""
    discount = template("discount")
    discount["source"] = {"coupon": coupon, "type": "coupon"}
    discount.update({"customer": CUSTOMER_ID, "promotion_code": PROMOTION_CODE_ID, **fields})
    return discount


def customer_with(discount: dict | None, **fields) -> dict:
    customer = template("customer")
    customer.update(id=CUSTOMER_ID, discount=discount, **fields)
    return customer


# -- dj-stripe's syncs on the dahlia shape --------------------------------------------------------


@pytest.mark.parametrize(
    "coupon", [COUPON_ID, template("coupon")], ids=["coupon id (default)", "coupon expanded"]
)
def test_customer_with_a_dahlia_discount_syncs(sandbox, coupon):
    sandbox.reset_request_counts()
    data = customer_with(dahlia_discount(coupon=coupon))

    customer = Customer.sync_from_stripe_data(data)

    assert Customer.objects.get(id=CUSTOMER_ID) == customer
    # The whole discount is kept as Stripe sent it; nothing was fetched to mirror its coupon.
    assert customer.discount == data["discount"]
    assert customer.discount["source"]["coupon"] == coupon
    assert not [request for request in sandbox.request_counts() if "coupon" in request]


def test_customer_with_a_dahlia_discount_syncs_again_on_update(sandbox):
    Customer.sync_from_stripe_data(customer_with(None))
    data = customer_with(dahlia_discount(), name="Ada Discounted")

    customer = Customer.sync_from_stripe_data(data)

    assert customer.stripe_data["name"] == "Ada Discounted"
    assert customer.discount["source"] == {"coupon": COUPON_ID, "type": "coupon"}


def test_subscription_and_invoice_with_dahlia_discounts_sync(sandbox):
    """Guard (passes without the patch): these syncs never read `discount.coupon`."""
    Customer.sync_from_stripe_data(customer_with(None))
    subscription = template("subscription")
    subscription["items"]["data"] = []  # its price placeholders name no real price
    subscription["discounts"] = [dahlia_discount(subscription=subscription["id"])]
    invoice = template("invoice")
    invoice["lines"]["data"] = []
    invoice["discounts"] = [dahlia_discount(id="di_invoice", invoice=invoice["id"])]

    # As dj-stripe receives them from stripe-python: StripeObjects.
    Subscription.sync_from_stripe_data(stripe.Subscription.construct_from(subscription, "sk_test"))
    Invoice.sync_from_stripe_data(stripe.Invoice.construct_from(invoice, "sk_test"))

    assert Subscription.objects.get().stripe_data["discounts"] == subscription["discounts"]
    # Invoice sync mirrors each expanded discount, dahlia shape and all.
    mirrored = Discount.objects.get(id="di_invoice")
    assert mirrored.stripe_data["source"] == {"coupon": COUPON_ID, "type": "coupon"}


def test_checkout_session_whose_customer_has_a_dahlia_discount_syncs(sandbox, service):
    """The session's sync retrieves its customer from Stripe and syncs it: the failing path."""
    session = stripe_session_with_discount(sandbox)

    Session.sync_from_stripe_data(session)

    synced = Session.objects.get(id=session["id"])
    assert synced.customer.discount["source"]["coupon"] == COUPON_ID
    assert synced.stripe_data["discounts"] == [{"coupon": COUPON_ID, "promotion_code": PROMOTION_CODE_ID}]


def test_customer_updated_event_with_a_dahlia_discount_is_processed(sandbox, service):
    checkout = sandbox.create_checkout(
        email="promo@example.com", name="Promo", service_id="website-care", amount=100, deliver=False
    )
    customer = sandbox.store.get("customer", checkout["session"]["customer"])
    customer["discount"] = dahlia_discount(customer=customer["id"])
    event = shape_event("customer.updated", customer)

    processed = Event.process(event)

    assert processed.type == "customer.updated"
    assert Customer.objects.get(id=customer["id"]).discount == customer["discount"]


# -- end to end: signed webhook, worker, onboarding ------------------------------------------------

LIST_PRICE, DISCOUNT = 50000, 12750  # 25.5% off


def test_client_with_a_promotion_code_and_a_customer_discount_onboards_at_the_price_paid(pipeline, service):
    """A returning payer whose customer has a discount (applied in the Dashboard) pays with a
    promotion code; the reference fixture's dahlia shapes are written into the sandbox's store
    before delivery, where Stripe would have them (the sandbox's own discounts: the next test)."""
    paid = LIST_PRICE - DISCOUNT
    checkout = pipeline.checkout(email="promo@example.com", name="Promo Payer", amount=paid)
    session_id = checkout["session"]["id"]
    discount_store(pipeline.sandbox, session_id)

    for event in checkout["events"]:
        event["data"]["object"] = copy.deepcopy(pipeline.sandbox.store.get("checkout.session", session_id))
        assert pipeline.deliver(event).status_code == 200
    pipeline.work()

    assert list(StripeWebhookJob.objects.values_list("status", "last_error")) == [("succeeded", "")]
    client = Client.objects.get()
    assert (client.email, client.invoiced_value, client.currency) == ("promo@example.com", paid, "usd")
    assert Payment.objects.get().amount == paid
    onboarding = Onboarding.objects.get()
    assert (onboarding.status, onboarding.amount) == (Onboarding.Status.ONBOARDED, paid)
    assert Customer.objects.get(id=client.stripe_customer_id).discount["source"]["coupon"] == COUPON_ID


# -- helpers ----------------------------------------------------------------------------------------


def discount_store(sandbox, session_id: str) -> dict:
    """Give a sandbox session a promotion code and its customer a discount, in dahlia's shapes."""
    session = sandbox.store.get("checkout.session", session_id)
    paid = session["amount_total"]
    session.update(
        amount_subtotal=paid + DISCOUNT,
        allow_promotion_codes=True,
        discounts=[{"coupon": COUPON_ID, "promotion_code": PROMOTION_CODE_ID}],
        total_details={**session["total_details"], "amount_discount": DISCOUNT},
    )
    for item in sandbox.store.line_items.get(session_id, []):
        item.update(amount_subtotal=paid + DISCOUNT, amount_discount=DISCOUNT)
    customer = sandbox.store.get("customer", session["customer"])
    customer["discount"] = dahlia_discount(customer=customer["id"], promotion_code=None)
    return session


def stripe_session_with_discount(sandbox) -> stripe.checkout.Session:
    checkout = sandbox.create_checkout(
        email="promo@example.com", name="Promo", service_id="website-care", amount=100, deliver=False
    )
    discount_store(sandbox, checkout["session"]["id"])
    # Retrieved as dj-stripe's event handler retrieves it (with its expand_fields).
    return Session(id=checkout["session"]["id"]).api_retrieve()


def shape_event(event_type: str, obj: dict) -> dict:
    return {
        "id": "evt_dahlia_discount",
        "object": "event",
        "api_version": "2026-05-27.dahlia",
        "created": obj["created"],
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": copy.deepcopy(obj)},
    }


def test_customer_discount_and_promotion_code_from_the_sandbox_onboard_and_value_a_returning_client(
    pipeline, service
):
    """The sandbox's own dahlia shapes end to end: a client pays, staff give their Stripe customer a
    discount (`customer.discount.created`, `customer.updated`), they subscribe again with a
    promotion code and renew; every event twice, shuffled. Each sync of that customer (its events,
    the session's) meets the discount under `source`."""
    sandbox = pipeline.sandbox
    ServiceFactory(service_id="retainer", name="Monthly retainer")
    first = pipeline.checkout(email="promo@example.com", amount=10000, currency="usd", created=T0)
    deliver_shuffled(pipeline, [event["id"] for event in first["events"]], seed=1)
    customer_id = first["session"]["customer"]

    coupon = sandbox.create_coupon(percent_off=20, duration="forever", code="LOYAL20", created=T0)
    events = undelivered(
        sandbox.apply_customer_discount(customer_id, coupon=coupon["coupon"]["id"], deliver=False)
    )
    again = sandbox.create_checkout(
        email="promo@example.com", name="Promo Payer", service_id="retainer", amount=50000, currency="usd",
        mode="subscription", customer=customer_id, promotion_code="LOYAL20", created=T0 + DAY, deliver=False,
    )  # fmt: skip
    assert again["session"]["amount_total"] == 40000
    events += undelivered(again)
    events += undelivered(sandbox.renew_subscription(again["session"]["subscription"], deliver=False))

    deliver_shuffled(pipeline, events, seed=2)  # asserts every webhook job succeeded

    client = Client.objects.get()
    assert (client.invoiced_value, client.currency) == (10000 + 40000 + 40000, "usd")
    assert Onboarding.objects.filter(status=Onboarding.Status.ONBOARDED).count() == 2
    assert MoneyMovement.objects.filter(kind="payment", counts=True).count() == 3
    discount = Customer.objects.get(id=customer_id).discount
    assert discount["source"] == {"coupon": coupon["coupon"]["id"], "type": "coupon"}
    assert_matches_sandbox(sandbox)
