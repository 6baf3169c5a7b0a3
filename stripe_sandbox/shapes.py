"""Reference Stripe object shapes (API 2026-05-27.dahlia) that every factory starts from.

`reference_shapes.json` is a copy of Stripe's public OpenAPI fixtures (github.com/stripe/openapi,
MIT licence). Building each object from a deep copy of its template guarantees the served key set
and nesting match the real API; factories then only replace values.
"""

import json
from functools import cache
from pathlib import Path

API_VERSION = "2026-05-27.dahlia"

_SHAPES_FILE = Path(__file__).with_name("reference_shapes.json")


@cache
def _template_json() -> dict[str, str]:
    """Load the reference shapes once, kept as JSON text per type (json.loads beats deepcopy ~10x)."""
    shapes = json.loads(_SHAPES_FILE.read_text())
    return {object_type: json.dumps(shape) for object_type, shape in shapes.items()}


def template(object_type: str) -> dict:
    """Return a fresh deep copy of the reference object for `object_type`."""
    return json.loads(_template_json()[object_type])


def clone(obj):
    """Deep-copy JSON data quickly (snapshots for events and responses)."""
    return json.loads(json.dumps(obj))


def build(object_type: str, **values) -> dict:
    """Return the reference object with `values` replacing top-level keys.

    Unknown keys raise, so a factory can never drift away from Stripe's real key set.
    """
    obj = template(object_type)
    unknown = set(values) - set(obj)
    if unknown:
        raise KeyError(f"{object_type} has no field(s) {sorted(unknown)}")
    obj.update(values)
    return obj
