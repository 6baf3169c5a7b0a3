"""stripe-python objects as the JSON Stripe sent, for code that stores them (dj-stripe's JSON columns).

stripe-python 15 turns some JSON strings into Python types on the way in: a `decimal_string` field,
such as a Checkout Session's `currency_conversion.fx_rate` (Adaptive Pricing), becomes a Decimal.
`StripeObject.to_dict()` keeps those Decimals, and `Event.process(data)` with a plain dict stores it
as is, so the INSERT fails ("Object of type Decimal is not JSON serializable"): dj-stripe only
converts StripeObjects itself (djstripe/models/base.py:384-385, `json.loads(str(data))`).

`to_dict(for_json=True)` is stripe-python's documented way back: it recurses like `to_dict()` and
writes each such value as `str(Decimal)`, which is the string Stripe sent ("1.0856", trailing
zeros included), so the stored event holds the wire value. (A listed object's `_last_response` is
the whole page, private, and the same for every item; `json.loads(str(obj))`, which dj-stripe uses,
gives the same result through a pretty-printed round trip.)
"""

from typing import Any

import stripe


def stripe_object_json(obj: stripe.StripeObject) -> dict[str, Any]:
    """The object as plain JSON-safe data: dicts, lists, str, int, float, bool, None."""
    return obj.to_dict(for_json=True)


def stripe_id_of(value: object) -> str:
    """The id of an expandable Stripe field: an id string, an expanded object, or nothing ("")."""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value) if value else ""
