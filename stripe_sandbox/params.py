"""Decode Stripe's form/query encoding (`a[b]=1`, `expand[0]=x`, `expand[]=x`) into nested values."""

import re
from urllib.parse import parse_qsl

from .errors import invalid_parameter

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")


def parse_encoded(text: str) -> dict:
    """Parse a query string or x-www-form-urlencoded body into nested dicts and lists."""
    root: dict = {}
    for raw_key, value in parse_qsl(text, keep_blank_values=True):
        match = _KEY.match(raw_key)
        if not match:
            raise invalid_parameter(raw_key, f"Invalid parameter name: {raw_key}")
        parts = [match.group(1), *_PART.findall(match.group(2))]
        _assign(root, parts, value)
    return _listify(root)


def _assign(node: dict, parts: list[str], value: str) -> None:
    """Store value under the bracket path; `[]` appends, so give it a fresh index."""
    for position, part in enumerate(parts):
        last = position == len(parts) - 1
        if part == "":
            part = str(len(node))
        if last:
            node[part] = value
        else:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child


def _listify(node):
    """Turn dicts whose keys are all integers (from `x[0]`, `x[]`) into lists, recursively."""
    if not isinstance(node, dict):
        return node
    converted = {key: _listify(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def as_list(value) -> list:
    """Read a parameter that may be sent once (`expand=x`) or as an array."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def as_int(name: str, value) -> int:
    """Read an integer parameter the way Stripe validates it."""
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid_parameter(name, f"Invalid integer: {value}", code="parameter_invalid_integer") from None


def as_bool(name: str, value) -> bool:
    """Read a boolean parameter sent as `true`/`false`."""
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise invalid_parameter(name, f"Invalid boolean: {value}")
