"""Every object the sandbox serves has the key set and nesting of the real Stripe object."""

import pytest

# Free-form maps: their keys are user data, not part of the shape.
FREE_FORM_KEYS = {"metadata"}

# The reference fixture's last_payment_error only shows the required `type`; a real card decline
# also carries these keys (https://docs.stripe.com/api/errors).
LAST_PAYMENT_ERROR_EXTRA = {"charge", "code", "decline_code", "doc_url", "message", "payment_method"}


def shape_problems(reference, actual, path="$", allowed_extra=None) -> list[str]:
    """Compare recursively: same keys at every level, compatible types where the reference is non-null."""
    allowed_extra = allowed_extra or {}
    if reference is None or actual is None:
        return []  # Stripe fields are nullable; the reference values are placeholders.
    if isinstance(reference, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected object, got {type(actual).__name__}"]
        problems = [f"{path}.{key}: missing" for key in sorted(reference.keys() - actual.keys())]
        extra = actual.keys() - reference.keys() - allowed_extra.get(path, set())
        problems += [f"{path}.{key}: extra" for key in sorted(extra)]
        for key in sorted(reference.keys() & actual.keys()):
            if key not in FREE_FORM_KEYS:
                problems += shape_problems(reference[key], actual[key], f"{path}.{key}", allowed_extra)
        return problems
    if isinstance(reference, list):
        if not isinstance(actual, list):
            return [f"{path}: expected list, got {type(actual).__name__}"]
        if reference and actual:
            return [
                p
                for i, item in enumerate(actual)
                for p in shape_problems(reference[0], item, f"{path}[{i}]", allowed_extra)
            ]
        return []
    if isinstance(reference, bool) or isinstance(actual, bool):
        ok = isinstance(reference, bool) and isinstance(actual, bool)
    elif isinstance(reference, int | float):
        ok = isinstance(actual, int | float)
    else:
        ok = isinstance(actual, type(reference))
    return [] if ok else [f"{path}: expected {type(reference).__name__}, got {type(actual).__name__}"]


def test_shape_checker_reports_missing_extra_and_type_paths():
    reference = {"a": {"b": 1, "c": "x"}, "d": True}
    actual = {"a": {"b": "1", "z": 2}, "d": 1}
    assert shape_problems(reference, actual) == [
        "$.a.c: missing",
        "$.a.z: extra",
        "$.a.b: expected int, got str",
        "$.d: expected bool, got int",
    ]


@pytest.fixture(params=[None, "succeeded", "failed"], ids=["card", "delayed-succeeded", "delayed-failed"])
def served(request, sandbox, raw):
    """Every served object of one paid checkout, fetched over HTTP as raw JSON."""
    result = sandbox.create_checkout(
        email="ada@example.com",
        name="Ada Lovelace",
        service_id="svc-42",
        amount=4900,
        currency="eur",
        delayed=request.param,
    )
    session = raw("GET", f"/v1/checkout/sessions/{result['session']['id']}").json()
    intent = raw("GET", f"/v1/payment_intents/{session['payment_intent']}").json()
    charge = raw("GET", f"/v1/charges/{intent['latest_charge']}").json()
    item = raw("GET", f"/v1/checkout/sessions/{session['id']}/line_items").json()["data"][0]
    objects = {
        "checkout.session": session,
        "item": item,
        "customer": raw("GET", f"/v1/customers/{session['customer']}").json(),
        "payment_intent": intent,
        "charge": charge,
        "price": raw("GET", f"/v1/prices/{item['price']['id']}").json(),
        "product": raw("GET", f"/v1/products/{item['price']['product']}").json(),
        "account": raw("GET", "/v1/account").json(),
        "payment_method": raw("GET", f"/v1/payment_methods/{charge['payment_method']}").json(),
        "events": [raw("GET", f"/v1/events/{event_id}").json() for event_id in result["events"]],
    }
    if charge["balance_transaction"]:
        objects["balance_transaction"] = raw(
            "GET", f"/v1/balance_transactions/{charge['balance_transaction']}"
        ).json()
    created = raw(
        "POST", "/v1/webhook_endpoints", data={"url": "https://example.com/hook", "enabled_events[]": "*"}
    ).json()
    objects["webhook_endpoint"] = raw("GET", f"/v1/webhook_endpoints/{created['id']}").json()
    return request.param, objects


def test_served_objects_match_reference_shapes(served, reference_shapes):
    delayed, objects = served
    problems = []
    for object_type, obj in objects.items():
        if object_type == "events":
            continue
        assert obj["object"] == object_type
        allowed = (
            {"$.last_payment_error": LAST_PAYMENT_ERROR_EXTRA} if object_type == "payment_intent" else {}
        )
        problems += [
            f"{object_type} {p}" for p in shape_problems(reference_shapes[object_type], obj, "$", allowed)
        ]
    assert problems == []
    if delayed != "failed":
        assert "balance_transaction" in objects


def test_events_match_reference_envelope_and_wrap_a_session(served, reference_shapes):
    _, objects = served
    for event in objects["events"]:
        envelope = {**event, "data": {"object": reference_shapes["event"]["data"]["object"]}}
        assert shape_problems(reference_shapes["event"], envelope) == []
        assert shape_problems(reference_shapes["checkout.session"], event["data"]["object"]) == []
        assert event["api_version"] == "2026-05-27.dahlia"
        assert event["request"] == {"id": None, "idempotency_key": None}


def test_expanded_line_items_are_lists_of_item_shapes(sandbox, raw, reference_shapes):
    session_id = sandbox.create_checkout(email="a@example.com", name="A", service_id="s", amount=100)[
        "session"
    ]["id"]
    session = raw("GET", f"/v1/checkout/sessions/{session_id}", params={"expand[]": "line_items"}).json()
    line_items = session.pop("line_items")
    assert shape_problems(reference_shapes["checkout.session"], session) == []
    assert (
        line_items["object"] == "list"
        and line_items["url"] == f"/v1/checkout/sessions/{session_id}/line_items"
    )
    assert shape_problems(reference_shapes["item"], line_items["data"][0]) == []
