"""Deliver events to a webhook URL the way Stripe does (signed JSON POSTs, one per event, in order)."""

import json

import requests

from .signing import sign_payload

USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
BODY_PREVIEW_CHARS = 2000


def event_payload(event: dict) -> str:
    """Serialise an event like Stripe does (pretty-printed JSON); the signature covers these bytes."""
    return json.dumps(event, indent=2)


def deliver_event(event: dict, url: str, secret: str, timeout: float = 30.0) -> dict:
    """POST one signed event; return `{"event", "status", "body"}` (status None if unreachable)."""
    payload = event_payload(event)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        "Stripe-Signature": sign_payload(payload, secret),
        "Cache-Control": "no-cache",
        "Accept": "*/*; q=0.5, application/xml",
    }
    try:
        response = requests.post(url, data=payload.encode("utf-8"), headers=headers, timeout=timeout)
    except requests.RequestException as error:
        return {"event": event["id"], "status": None, "body": "", "error": str(error)}
    return {"event": event["id"], "status": response.status_code, "body": response.text[:BODY_PREVIEW_CHARS]}


def delivered(result: dict) -> bool:
    """Whether Stripe would count the delivery as successful (any 2xx)."""
    return result.get("status") is not None and 200 <= result["status"] < 300
