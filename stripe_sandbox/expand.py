"""`expand[]` support: replace ids with objects and add includable fields, without touching the store.

Paths follow Stripe's rules: `customer`, `payment_intent.latest_charge`, `data.customer` on lists,
`line_items.data.discounts`, `total_details.breakdown`. Only dicts on the expanded path are copied.
"""

from .errors import not_expandable

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
    ("balance_transaction", "source"): "charge",
}


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


# (context, field) -> builder(store, parent) for fields Stripe only includes when expanded.
# A context is an object type, or "<type>.<field>" inside a nested plain hash.
INCLUDABLE = {
    ("checkout.session", "line_items"): _session_line_items,
    ("checkout.session.total_details", "breakdown"): lambda store, parent: {"discounts": [], "taxes": []},
    ("item", "discounts"): lambda store, parent: [],
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


def _expand(store, value, parts: list[str], context: str, full_path: str):
    if value is None:
        return None
    if not isinstance(value, dict):
        raise not_expandable(full_path)
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

    child, child_context = _resolve_field(store, value, field, context, full_path, is_last=not rest)
    if child is _UNCHANGED:
        return value
    if rest:
        child = _expand(store, child, rest, child_context, full_path)
    return {**value, field: child}


_UNCHANGED = object()


def _resolve_field(store, parent: dict, field: str, context: str, full_path: str, is_last: bool):
    """Return (expanded value, its context) for one path segment."""
    key = (context, field)
    if key in INCLUDABLE:
        builder = INCLUDABLE[key]
        if builder is None:
            return _UNCHANGED, None
        current = parent.get(field)
        child = current if current is not None else builder(store, parent)
        return child, _context_of(child, f"{context}.{field}")
    if key in EXPANDABLE_IDS:
        current = parent.get(field)
        if isinstance(current, str):
            target = store.get(EXPANDABLE_IDS[key], current)
            current = target if target is not None else current
        return current, _context_of(current, EXPANDABLE_IDS[key])
    current = parent.get(field)
    if isinstance(current, dict) and not is_last:
        # A plain nested hash (e.g. total_details) can only be traversed, not expanded itself.
        return current, f"{context}.{field}"
    raise not_expandable(full_path)


def _context_of(value, fallback: str) -> str:
    if isinstance(value, dict) and value.get("object") and value.get("object") != "list":
        return value["object"]
    return fallback
