"""Webhook signatures in Stripe's `Stripe-Signature` format."""

import hashlib
import hmac
import time


def compute_signature(payload: str, secret: str, timestamp: int) -> str:
    """Return the hex HMAC-SHA256 Stripe puts in the v1 scheme."""
    signed = f"{timestamp}.{payload}".encode()
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign_payload(payload: str, secret: str, timestamp: int | None = None) -> str:
    """Build a `Stripe-Signature` header value (`t=…,v1=…`) for a raw JSON body."""
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={timestamp},v1={compute_signature(payload, secret, timestamp)}"
