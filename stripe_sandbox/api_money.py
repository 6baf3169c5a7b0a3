"""`/v1` endpoints for the money that follows a checkout: subscriptions, invoices, refunds, disputes,
balance transactions, coupons, promotion codes and payment links (retrieve, list, and the few writes
the app makes: `POST /v1/refunds`, `DELETE /v1/subscriptions/{id}`)."""

import time

from . import billing_flow, refund_flow
from .errors import StripeApiError, invalid_parameter, missing_parameter
from .expand import expand
from .params import as_int

LIST_PARAMS = frozenset({"limit", "starting_after", "ending_before", "expand", "created"})
SUBSCRIPTION_STATUSES = frozenset(
    {
        "active",
        "all",
        "canceled",
        "ended",
        "incomplete",
        "incomplete_expired",
        "past_due",
        "paused",
        "trialing",
        "unpaid",
    }
)


def money_routes(api) -> list:
    """Routes for StripeApi._routes(); `api` is the StripeApi."""
    from .api import _equals, _route  # api.py imports this module

    def listing(template, object_type, *filters, predicate=None):
        def handler(request):
            equal = _equals(request.params, *filters)
            custom = predicate(request.params) if predicate else None

            def keep(obj):
                return (equal is None or equal(obj)) and (custom is None or custom(obj))

            return api._page(object_type, request, keep)

        extra = {"status", "price"} if object_type == "subscription" else set()
        params = LIST_PARAMS | set(filters) | extra
        if object_type == "promotion_code":
            params |= {"coupon"}
        if object_type == "invoice_payment":
            params |= {"payment"}
        return _route("GET", template, handler, params)

    def create_refund(request):
        return _create_refund(api, request)

    def cancel_subscription(request, id):
        subscription = api.store.require("subscription", id, request.livemode)
        if subscription["status"] == "canceled":
            raise StripeApiError(404, f"No such subscription: '{id}'", code="resource_missing", param="id")
        billing_flow.cancel(api.store, api.ids, subscription, created=int(time.time()))
        return expand(api.store, subscription, request.expand_paths)

    return [
        listing("/v1/subscriptions", "subscription", "customer", predicate=_subscription_filter),
        _route("GET", "/v1/subscriptions/{id}", api.retrieve("subscription")),
        _route(
            "DELETE",
            "/v1/subscriptions/{id}",
            cancel_subscription,
            ("invoice_now", "prorate", "cancellation_details"),
        ),
        listing("/v1/invoices", "invoice", "customer", "subscription", "status", "collection_method"),
        _route("GET", "/v1/invoices/{id}", api.retrieve("invoice")),
        _route(
            "GET",
            "/v1/invoices/{id}/lines",
            lambda request, id: _invoice_lines(api, request, id),
            LIST_PARAMS,
        ),
        listing("/v1/invoice_payments", "invoice_payment", "invoice", "status", predicate=_payment_filter),
        _route("GET", "/v1/invoice_payments/{id}", api.retrieve("invoice_payment")),
        listing("/v1/refunds", "refund", "charge", "payment_intent"),
        _route("GET", "/v1/refunds/{id}", api.retrieve("refund")),
        _route(
            "POST",
            "/v1/refunds",
            create_refund,
            ("charge", "payment_intent", "amount", "reason", "metadata", "instructions_email"),
        ),
        listing("/v1/disputes", "dispute", "charge", "payment_intent"),
        _route("GET", "/v1/disputes/{id}", api.retrieve("dispute")),
        listing("/v1/balance_transactions", "balance_transaction", "source", "type", "currency", "payout"),
        listing("/v1/coupons", "coupon"),
        _route("GET", "/v1/coupons/{id}", api.retrieve("coupon")),
        listing(
            "/v1/promotion_codes", "promotion_code", "code", "customer", "active", predicate=_promotion_filter
        ),
        _route("GET", "/v1/promotion_codes/{id}", api.retrieve("promotion_code")),
        listing("/v1/payment_links", "payment_link", "active"),
        _route("GET", "/v1/payment_links/{id}", api.retrieve("payment_link")),
    ]


def _subscription_filter(params):
    """Stripe lists subscriptions that are not canceled unless `status` says otherwise."""
    status = params.get("status")
    if status is not None and status not in SUBSCRIPTION_STATUSES:
        raise invalid_parameter(
            "status", f"Invalid status: must be one of {', '.join(sorted(SUBSCRIPTION_STATUSES))}"
        )
    price = params.get("price")

    def keep(subscription):
        if price and subscription["items"]["data"][0]["price"]["id"] != price:
            return False
        if status in (None, "ended"):
            return (subscription["status"] != "canceled") == (status is None)
        return status == "all" or subscription["status"] == status

    return keep


def _promotion_filter(params):
    coupon = params.get("coupon")
    return (lambda promo: promo["promotion"]["coupon"] == coupon) if coupon else None


def _payment_filter(params):
    payment = params.get("payment")
    if not payment:
        return None
    if not isinstance(payment, dict) or "payment_intent" not in payment:
        raise missing_parameter("payment[payment_intent]")
    return lambda record: record["payment"].get("payment_intent") == payment["payment_intent"]


def _invoice_lines(api, request, id):
    """`GET /v1/invoices/{id}/lines`."""
    invoice = api.store.require("invoice", id, request.livemode)
    lines = invoice["lines"]["data"]
    listing = {"object": "list", "data": lines, "has_more": False, "url": f"/v1/invoices/{id}/lines"}
    return expand(api.store, listing, request.expand_paths)


def _create_refund(api, request):
    """`POST /v1/refunds` with `charge` or `payment_intent` (succeeds at once, like a test card)."""
    params = request.params
    if params.get("charge"):
        charge = api.store.require("charge", params["charge"], request.livemode, param="charge")
    elif params.get("payment_intent"):
        intent = api.store.require(
            "payment_intent", params["payment_intent"], request.livemode, param="payment_intent"
        )
        if not intent["latest_charge"]:
            raise invalid_parameter(
                "payment_intent", "This PaymentIntent does not have a successful charge to refund."
            )
        charge = api.store.get("charge", intent["latest_charge"])
    else:
        raise missing_parameter("charge")
    amount = as_int("amount", params["amount"]) if "amount" in params else None
    metadata = params.get("metadata") or {}
    try:
        refund, _ = refund_flow.create_refund(
            api.store,
            api.ids,
            charge,
            amount=amount,
            created=int(time.time()),
            reason=params.get("reason"),
            metadata={str(k): str(v) for k, v in metadata.items()},
        )
    except refund_flow.RefundError as error:
        raise StripeApiError(400, str(error), code=error.code, param="amount") from None
    return expand(api.store, refund, request.expand_paths)
