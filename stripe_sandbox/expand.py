"""`expand[]` support: replace ids with objects and add includable fields, without touching the store.

Paths follow Stripe's rules: `customer`, `payment_intent.latest_charge`, `data.customer` on lists,
`line_items.data.discounts`, `total_details.breakdown`. Only dicts on the expanded path are copied.
"""

from . import discounts
from .errors import not_expandable

BY_PREFIX = "<by id prefix>"

# (object type, field) -> object type the id in that field refers to.
EXPANDABLE_IDS = {
    ("checkout.session", "customer"): "customer",
    ("checkout.session", "payment_intent"): "payment_intent",
    ("checkout.session", "invoice"): "invoice",
    ("checkout.session", "payment_link"): "payment_link",
    ("checkout.session", "setup_intent"): "setup_intent",
    ("checkout.session", "subscription"): "subscription",
    ("payment_intent", "customer"): "customer",
    ("payment_intent", "latest_charge"): "charge",
    ("payment_intent", "payment_method"): "payment_method",
    ("payment_intent", "on_behalf_of"): "account",
    ("payment_intent", "review"): "review",
    ("charge", "balance_transaction"): "balance_transaction",
    ("charge", "customer"): "customer",
    ("charge", "payment_intent"): "payment_intent",
    ("charge", "failure_balance_transaction"): "balance_transaction",
    ("charge", "on_behalf_of"): "account",
    ("charge", "review"): "review",
    ("charge", "source_transfer"): "transfer",
    ("charge", "application_fee"): "application_fee",
    ("customer", "default_source"): "source",
    ("customer", "test_clock"): "test_helpers.test_clock",
    ("payment_method", "customer"): "customer",
    ("price", "product"): "product",
    ("product", "default_price"): "price",
    ("balance_transaction", "source"): BY_PREFIX,
    ("subscription", "customer"): "customer",
    ("subscription", "latest_invoice"): "invoice",
    ("subscription", "default_payment_method"): "payment_method",
    ("subscription", "discounts"): "discount",
    ("subscription_item", "discounts"): "discount",
    ("invoice", "customer"): "customer",
    ("invoice", "subscription"): "subscription",
    ("invoice", "default_payment_method"): "payment_method",
    ("invoice", "discounts"): "discount",
    ("invoice.parent.subscription_details", "subscription"): "subscription",
    ("line_item", "discounts"): "discount",
    ("invoice_payment", "invoice"): "invoice",
    ("invoice_payment.payment", "payment_intent"): "payment_intent",
    ("invoiceitem", "discounts"): "discount",
    ("refund", "charge"): "charge",
    ("refund", "payment_intent"): "payment_intent",
    ("refund", "balance_transaction"): "balance_transaction",
    ("refund", "failure_balance_transaction"): "balance_transaction",
    ("dispute", "charge"): "charge",
    ("dispute", "payment_intent"): "payment_intent",
    ("discount", "customer"): "customer",
    ("discount", "promotion_code"): "promotion_code",
    ("discount.source", "coupon"): "coupon",
    ("customer.discount.source", "coupon"): "coupon",
    ("promotion_code", "customer"): "customer",
    ("promotion_code.promotion", "coupon"): "coupon",
}

# Which object an id refers to, for fields that can hold several kinds (a balance transaction's source).
PREFIX_TYPES = {"ch_": "charge", "re_": "refund", "du_": "dispute", "dp_": "dispute", "py_": "charge"}


def _list_object(url: str, data=None) -> dict:
    return {"object": "list", "data": data or [], "has_more": False, "url": url}


def _session_line_items(store, session: dict) -> dict:
    items = store.line_items.get(session["id"], [])
    return _list_object(f"/v1/checkout/sessions/{session['id']}/line_items", list(items))


def _price_currency_options(store, price: dict) -> dict:
    return {
        price["currency"]: {
            "custom_unit_amount": None,
            "tax_behavior": price["tax_behavior"],
            "unit_amount": price["unit_amount"],
            "unit_amount_decimal": price["unit_amount_decimal"],
        }
    }


def _breakdown(store, parent: dict) -> dict:
    """A session's `total_details.breakdown`: its discounts with their amounts."""
    return {"discounts": discounts.breakdown(store, parent["id"]), "taxes": []}


def _invoice_payments(store, invoice: dict) -> dict:
    payments = [p for p in store.all("invoice_payment") if p["invoice"] == invoice["id"]]
    return {
        "object": "list",
        "data": payments,
        "has_more": False,
        "url": f"/v1/invoices/{invoice['id']}/payments",
    }


# Includable fields of a nested hash whose builder needs the object owning that hash.
OWNER_BUILDERS = frozenset({("checkout.session.total_details", "breakdown")})

# (context, field) -> builder(store, parent) for fields Stripe only includes when expanded.
# A context is an object type, or "<type>.<field>" inside a nested plain hash.
INCLUDABLE = {
    ("checkout.session", "line_items"): _session_line_items,
    # Built from the session itself, not total_details (OWNER_BUILDERS).
    ("checkout.session.total_details", "breakdown"): _breakdown,
    ("item", "discounts"): lambda store, item: discounts.breakdown(store, item["id"]),
    ("invoice", "payments"): _invoice_payments,
    ("item", "taxes"): lambda store, parent: [],
    ("customer", "sources"): lambda store, c: _list_object(f"/v1/customers/{c['id']}/sources"),
    ("customer", "subscriptions"): lambda store, c: _list_object(f"/v1/customers/{c['id']}/subscriptions"),
    ("customer", "tax_ids"): lambda store, c: _list_object(f"/v1/customers/{c['id']}/tax_ids"),
    ("price", "currency_options"): _price_currency_options,
    # `tiers` only exists on tiered prices; on per-unit prices expanding it adds nothing.
    ("price", "tiers"): None,
}


def expand(store, obj: dict, paths: list[str]) -> dict:
    """Return `obj` with every expand path applied (the original is left untouched)."""
    for path in paths:
        obj = _expand(store, obj, path.split("."), obj.get("object"), path)
    return obj


def _expand(store, value, parts: list[str], context: str, full_path: str, owner: dict | None = None):
    if value is None:
        return None
    if not isinstance(value, dict):
        raise not_expandable(full_path)
    if value.get("id") and value.get("object") not in (None, "list"):
        owner = value  # the object a nested plain hash belongs to
    field, rest = parts[0], parts[1:]
    if value.get("object") == "list" and field == "data":
        items = (
            [_expand(store, item, rest, item.get("object"), full_path) for item in value["data"]]
            if rest
            else None
        )
        if items is None:
            raise not_expandable(full_path)
        return {**value, "data": items}

    target = owner if (context, field) in OWNER_BUILDERS else value
    child, child_context = _resolve_field(store, value, field, context, full_path, not rest, target)
    if child is _UNCHANGED:
        return value
    if rest:
        child = _expand(store, child, rest, child_context, full_path, owner)
    return {**value, field: child}


_UNCHANGED = object()


def _resolve_field(store, parent: dict, field: str, context: str, full_path: str, is_last: bool, source=None):
    """Return (expanded value, its context) for one path segment (`source` feeds an includable builder)."""
    key = (context, field)
    if key in INCLUDABLE:
        builder = INCLUDABLE[key]
        if builder is None:
            return _UNCHANGED, None
        current = parent.get(field)
        child = current if current is not None else builder(store, parent if source is None else source)
        return child, _context_of(child, f"{context}.{field}")
    if key in EXPANDABLE_IDS:
        current = parent.get(field)
        if isinstance(current, list):
            # A list of ids (`discounts`): every id becomes its object.
            return [_lookup(store, EXPANDABLE_IDS[key], item) for item in current], f"{context}.{field}"
        current = _lookup(store, EXPANDABLE_IDS[key], current)
        return current, _context_of(current, EXPANDABLE_IDS[key])
    current = parent.get(field)
    if isinstance(current, dict) and not is_last:
        # A plain nested hash (e.g. total_details) can only be traversed, not expanded itself.
        return current, f"{context}.{field}"
    raise not_expandable(full_path)


def _lookup(store, object_type: str, value):
    if not isinstance(value, str):
        return value
    if object_type == BY_PREFIX:
        object_type = next((t for prefix, t in PREFIX_TYPES.items() if value.startswith(prefix)), None)
        if object_type is None:
            return value
    target = store.get(object_type, value)
    return target if target is not None else value


def _context_of(value, fallback: str) -> str:
    if isinstance(value, dict) and value.get("object") and value.get("object") != "list":
        return value["object"]
    return fallback
