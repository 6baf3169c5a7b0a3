"""Stripe's webhook signature scheme, for our own HTTP integrations (the provisioning API and its
callbacks): header `t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">` with a shared secret, so the
other side can reuse a Stripe verifier. stripe-python's verifier is tied to Stripe's header name and
error types, so this small pair is written here."""

import hashlib
import hmac
import time

TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """The signature is missing, malformed, wrong, or outside the replay window."""


def signature_header(body: bytes, *, secret: str, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def signature_verify(body: bytes, header: str, *, secret: str, tolerance: int = TOLERANCE_SECONDS) -> None:
    """Raise SignatureError unless `header` signs `body` with `secret` within the replay window."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
        t = int(parts["t"])
    except (KeyError, ValueError) as exc:
        raise SignatureError("malformed signature header") from exc
    if abs(time.time() - t) > tolerance:
        raise SignatureError("timestamp outside the replay window")
    expected = signature_header(body, secret=secret, timestamp=t).split("v1=", 1)[1]
    candidates = [
        v for k, v in (item.split("=", 1) for item in header.split(",") if "=" in item) if k == "v1"
    ]
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureError("signature does not match")
