"""The sandbox's Stripe API through stripe-python: retrieve/expand, lists, filters and errors."""

import time

import pytest
import stripe

from tests.stripe_sandbox.helpers import API_KEY, LIVE_KEY


def paid_checkout(sandbox, **overrides):
    fields = {
        "email": "ada@example.com",
        "name": "Ada",
        "service_id": "svc-1",
        "amount": 4900,
        "currency": "eur",
    }
    return sandbox.create_checkout(**{**fields, **overrides})


def test_retrieve_session_with_expand_replaces_ids_with_objects(sandbox):
    session_id = paid_checkout(sandbox)["session"]["id"]
    session = stripe.checkout.Session.retrieve(
        session_id, expand=["customer", "payment_intent.latest_charge", "line_items"], api_key=API_KEY
    )
    assert session.id.startswith("cs_test_")
    assert session.status == "complete" and session.payment_status == "paid"
    assert session.metadata["serviceId"] == "svc-1"
    assert session.customer.object == "customer" and session.customer.email == "ada@example.com"
    assert session.customer_details.email == "ada@example.com" and session.customer_details.name == "Ada"
    assert session.payment_intent.status == "succeeded"
    assert session.payment_intent.latest_charge.object == "charge"
    assert session.payment_intent.latest_charge.paid is True
    assert session.line_items.data[0].price.unit_amount == 4900
    assert session.amount_total == session.amount_subtotal == 4900


def test_djstripe_session_expand_fields_are_served(sandbox):
    # dj-stripe's Session.api_retrieve asks for exactly these (djstripe/models/checkout.py expand_fields).
    session_id = paid_checkout(sandbox)["session"]["id"]
    session = stripe.checkout.Session.retrieve(
        session_id,
        expand=["line_items", "total_details.breakdown", "line_items.data.discounts"],
        api_key=API_KEY,
    )
    assert session.total_details.breakdown.to_dict() == {"discounts": [], "taxes": []}
    assert session.line_items.data[0].discounts == []
    assert isinstance(session.customer, str) and isinstance(session.payment_intent, str)


def test_line_items_endpoint(sandbox):
    session_id = paid_checkout(sandbox)["session"]["id"]
    items = stripe.checkout.Session.list_line_items(session_id, api_key=API_KEY)
    assert [item.object for item in items.data] == ["item"]
    assert items.data[0].amount_total == 4900 and items.data[0].description == "Service svc-1"


def test_objects_dj_stripe_fetches_while_syncing(sandbox):
    session = paid_checkout(sandbox)["session"]
    intent = stripe.PaymentIntent.retrieve(
        session["payment_intent"], expand=["latest_charge", "customer", "payment_method"], api_key=API_KEY
    )
    assert intent.customer.id == session["customer"] and intent.payment_method.card.last4 == "4242"
    charge = stripe.Charge.retrieve(intent.latest_charge.id, expand=["balance_transaction"], api_key=API_KEY)
    assert (
        charge.balance_transaction.object == "balance_transaction"
        and charge.balance_transaction.source == charge.id
    )
    assert stripe.PaymentMethod.retrieve(intent.payment_method.id, api_key=API_KEY).type == "card"
    txn = stripe.BalanceTransaction.retrieve(charge.balance_transaction.id, api_key=API_KEY)
    assert txn.net == txn.amount - txn.fee
    customer = stripe.Customer.retrieve(
        session["customer"], expand=["default_source", "sources"], api_key=API_KEY
    )
    assert customer.default_source is None and customer.sources.data == []
    account = stripe.Account.retrieve(api_key=API_KEY)
    assert (
        account.id.startswith("acct_")
        and stripe.Account.retrieve(account.id, api_key=API_KEY).id == account.id
    )
    event = stripe.Event.retrieve(paid_checkout(sandbox)["events"][0], api_key=API_KEY)
    assert event.type == "checkout.session.completed" and event.data.object.object == "checkout.session"
    assert [c.id for c in stripe.Charge.list(payment_intent=intent.id, api_key=API_KEY).data] == [charge.id]
    assert stripe.PaymentIntent.list(customer=session["customer"], api_key=API_KEY).data[0].id == intent.id


def test_products_and_prices_are_reused_per_service(sandbox):
    first = paid_checkout(sandbox)["session"]
    second = paid_checkout(sandbox, email="bob@example.com")["session"]
    line_first = stripe.checkout.Session.list_line_items(first["id"], api_key=API_KEY).data[0]
    line_second = stripe.checkout.Session.list_line_items(second["id"], api_key=API_KEY).data[0]
    assert line_first.price.id == line_second.price.id
    price = stripe.Price.retrieve(line_first.price.id, expand=["product"], api_key=API_KEY)
    assert price.product.metadata["serviceId"] == "svc-1" and price.product.default_price == price.id
    assert [p.id for p in stripe.Product.list(api_key=API_KEY).data] == [price.product.id]
    assert first["customer"] != second["customer"]  # Checkout creates a customer per guest payment


def test_create_customer_session_and_complete_it(sandbox, raw):
    customer = stripe.Customer.create(
        email="eve@example.com", name="Eve", metadata={"crm": "7"}, api_key=API_KEY
    )
    assert (
        customer.id.startswith("cus_") and stripe.Customer.list(email="eve@example.com", api_key=API_KEY).data
    )
    updated = stripe.Customer.modify(customer.id, metadata={"djstripe_subscriber": "3"}, api_key=API_KEY)
    assert updated.metadata.to_dict() == {"crm": "7", "djstripe_subscriber": "3"}
    session = stripe.checkout.Session.create(
        mode="payment",
        customer=customer.id,
        success_url="https://example.com/ok",
        metadata={"serviceId": "svc-9"},
        line_items=[
            {
                "price_data": {"currency": "eur", "unit_amount": 1500, "product_data": {"name": "Setup"}},
                "quantity": 2,
            }
        ],
        api_key=API_KEY,
    )
    assert session.status == "open" and session.url and session.amount_total == 3000
    assert session.payment_intent is None
    completed = raw(
        "POST", f"/_sandbox/checkouts/{session.id}/complete", key=None, json={"name": "Eve"}
    ).json()
    assert (
        completed["session"]["payment_status"] == "paid" and completed["session"]["customer"] == customer.id
    )
    assert stripe.checkout.Session.retrieve(session.id, api_key=API_KEY).status == "complete"


def test_create_session_validates_like_stripe(sandbox):
    with pytest.raises(stripe.InvalidRequestError) as missing:
        stripe.checkout.Session.create(success_url="https://x", api_key=API_KEY)
    assert missing.value.param == "mode" and missing.value.code == "parameter_missing"
    with pytest.raises(stripe.InvalidRequestError) as bad_price:
        stripe.checkout.Session.create(mode="payment", line_items=[{"price": "price_nope"}], api_key=API_KEY)
    assert bad_price.value.http_status == 404 and bad_price.value.param == "line_items[0][price]"


def seed_sessions(sandbox, count, start=1_700_000_000, **fields):
    sandbox.seed(count=count, created_from=start, created_step=60, **fields)
    return start


def test_list_pagination_newest_first_with_has_more(sandbox):
    start = seed_sessions(sandbox, 25)
    page = stripe.checkout.Session.list(limit=10, api_key=API_KEY)
    assert len(page.data) == 10 and page.has_more is True and page.url == "/v1/checkout/sessions"
    assert [s.created for s in page.data] == [start + 60 * i for i in range(24, 14, -1)]
    second = stripe.checkout.Session.list(limit=10, starting_after=page.data[-1].id, api_key=API_KEY)
    assert second.data[0].created == start + 60 * 14
    back = stripe.checkout.Session.list(limit=10, ending_before=second.data[0].id, api_key=API_KEY)
    assert [s.id for s in back.data] == [s.id for s in page.data] and back.has_more is False
    every = [s.id for s in stripe.checkout.Session.list(limit=7, api_key=API_KEY).auto_paging_iter()]
    assert len(every) == len(set(every)) == 25
    assert stripe.checkout.Session.list(api_key=API_KEY).data.__len__() == 10  # default limit


def test_list_created_filters(sandbox):
    start = seed_sessions(sandbox, 10)

    def created(**bounds):
        return sorted(
            s.created - start
            for s in stripe.checkout.Session.list(created=bounds, limit=100, api_key=API_KEY).data
        )

    assert created(gte=start + 120, lte=start + 300) == [120, 180, 240, 300]
    assert created(gt=start + 120, lt=start + 300) == [180, 240]
    exact = stripe.checkout.Session.list(created=start + 60, api_key=API_KEY).data
    assert [s.created for s in exact] == [start + 60]


def test_list_filters_status_customer_payment_intent(sandbox):
    sandbox.seed(
        sessions=[
            {"email": "o@example.com", "status": "open", "created": 1_700_000_000},
            {"email": "x@example.com", "status": "expired", "created": 1_700_000_060},
            {"email": "c@example.com", "status": "complete", "created": 1_700_000_120},
        ]
    )
    statuses = {
        status: [s.status for s in stripe.checkout.Session.list(status=status, api_key=API_KEY).data]
        for status in ("open", "expired", "complete")
    }
    assert statuses == {"open": ["open"], "expired": ["expired"], "complete": ["complete"]}
    complete = stripe.checkout.Session.list(status="complete", api_key=API_KEY).data[0]
    by_customer = stripe.checkout.Session.list(customer=complete.customer, api_key=API_KEY).data
    by_intent = stripe.checkout.Session.list(payment_intent=complete.payment_intent, api_key=API_KEY).data
    assert [s.id for s in by_customer] == [s.id for s in by_intent] == [complete.id]


def test_list_expands_data_fields(sandbox):
    paid_checkout(sandbox)
    session = stripe.checkout.Session.list(
        expand=["data.customer", "data.payment_intent", "data.line_items"], api_key=API_KEY
    ).data[0]
    assert session.customer.object == "customer" and session.payment_intent.object == "payment_intent"
    assert session.line_items.data[0].object == "item"


@pytest.mark.parametrize("limit", [0, 101])
def test_limit_out_of_range_is_400(sandbox, limit):
    with pytest.raises(stripe.InvalidRequestError) as error:
        stripe.checkout.Session.list(limit=limit, api_key=API_KEY)
    assert error.value.http_status == 400 and error.value.param == "limit"


def test_unknown_parameter_is_400_with_stripe_error_shape(sandbox, raw):
    with pytest.raises(stripe.InvalidRequestError) as error:
        stripe.checkout.Session.list(payment_status="paid", api_key=API_KEY)
    assert error.value.http_status == 400 and error.value.code == "parameter_unknown"
    assert error.value.param == "payment_status"
    body = raw("GET", "/v1/checkout/sessions?bogus=1").json()["error"]
    assert body["message"] == "Received unknown parameter: bogus" and body["type"] == "invalid_request_error"
    assert body["request_log_url"].startswith("https://dashboard.stripe.com/")


def test_unknown_id_is_404_resource_missing(sandbox):
    with pytest.raises(stripe.InvalidRequestError) as error:
        stripe.checkout.Session.retrieve("cs_test_nope", api_key=API_KEY)
    assert error.value.http_status == 404 and error.value.code == "resource_missing"
    assert (
        error.value.user_message == "No such checkout.session: 'cs_test_nope'" and error.value.param == "id"
    )


def test_unexpandable_path_is_400(sandbox):
    session_id = paid_checkout(sandbox)["session"]["id"]
    with pytest.raises(stripe.InvalidRequestError, match=r"cannot be expanded \(mode\)"):
        stripe.checkout.Session.retrieve(session_id, expand=["mode"], api_key=API_KEY)


def test_auth_required_and_headers(sandbox, raw):
    missing = raw("GET", "/v1/customers", key=None)
    assert missing.status_code == 401 and missing.json()["error"]["type"] == "invalid_request_error"
    assert "did not provide an API key" in missing.json()["error"]["message"]
    assert raw("GET", "/v1/customers", key="not-a-key").status_code == 401
    with pytest.raises(stripe.AuthenticationError):
        stripe.Customer.list(api_key="sk_bogus")
    ok = raw("GET", "/v1/customers", headers={"Stripe-Version": "2026-05-27.dahlia"})
    assert ok.headers["Request-Id"].startswith("req_") and ok.headers["Stripe-Version"] == "2026-05-27.dahlia"
    unknown = raw("GET", "/v1/nothing_here")
    assert unknown.status_code == 404 and "Unrecognized request URL" in unknown.json()["error"]["message"]


def test_livemode_objects_are_separate_from_test_mode(sandbox):
    live = paid_checkout(sandbox, livemode=True)["session"]
    assert live["id"].startswith("cs_live_") and live["livemode"] is True
    assert stripe.checkout.Session.retrieve(live["id"], api_key=LIVE_KEY).livemode is True
    with pytest.raises(stripe.InvalidRequestError, match="a similar object exists in live mode"):
        stripe.checkout.Session.retrieve(live["id"], api_key=API_KEY)
    assert stripe.checkout.Session.list(api_key=API_KEY).data == []


def test_events_list_filters(sandbox):
    paid_checkout(sandbox, delayed="succeeded")
    paid_checkout(sandbox, delayed="failed")

    def types(**params):
        return [e.type for e in stripe.Event.list(api_key=API_KEY, **params).data]

    assert types() == [
        "checkout.session.async_payment_failed",
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.completed",
    ]
    assert types(type="checkout.session.completed") == ["checkout.session.completed"] * 2
    assert types(type="checkout.session.async_payment_*") == types()[0:3:2]
    assert types(types=["checkout.session.async_payment_failed"]) == ["checkout.session.async_payment_failed"]
    newest = stripe.Event.list(limit=1, api_key=API_KEY)
    assert newest.has_more and types(limit=3, starting_after=newest.data[0].id) == types()[1:]
    assert types(created={"gte": int(time.time()) + 3600}) == []


def test_ten_thousand_seeded_sessions_page_quickly(sandbox, raw):
    # The backfill benchmark seeds 10,000 sessions; paging them must not re-sort or rescan per request.
    start = seed_sessions(sandbox, 10_000)
    began = time.perf_counter()
    seen, cursor = [], None
    while True:
        params = {"limit": 100, **({"starting_after": cursor} if cursor else {})}
        page = raw("GET", "/v1/checkout/sessions", params=params).json()
        seen += [session["id"] for session in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["data"][-1]["id"]
    window = raw(
        "GET", "/v1/checkout/sessions", params={"created[gte]": start + 60 * 5000, "limit": 3}
    ).json()
    elapsed = time.perf_counter() - began
    assert len(seen) == len(set(seen)) == 10_000
    assert [s["created"] for s in window["data"]] == [start + 60 * 9999, start + 60 * 9998, start + 60 * 9997]
    assert elapsed < 15, elapsed


def test_completing_with_a_webhook_url_but_no_secret_is_refused_before_anything_changes(sandbox, raw):
    session = stripe.checkout.Session.create(
        mode="payment",
        success_url="https://example.com/ok",
        line_items=[{"price_data": {"currency": "eur", "unit_amount": 1500, "product_data": {"name": "X"}}}],
        api_key=API_KEY,
    )
    path = f"/_sandbox/checkouts/{session.id}/complete"

    refused = raw("POST", path, key=None, json={"webhook_url": "http://127.0.0.1:9/hook"})

    assert refused.status_code == 400 and "webhook_secret" in refused.text
    assert stripe.checkout.Session.retrieve(session.id, api_key=API_KEY).status == "open"
    assert raw("POST", path, key=None, json={}).status_code == 200  # still completable
