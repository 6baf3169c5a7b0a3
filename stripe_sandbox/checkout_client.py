"""Ask a running Stripe sandbox for a paid Checkout Session and its signed webhook deliveries.

Used by `manage.py sandbox_checkout` and `manage.py demo`; talks to the sandbox over HTTP only.
"""

import requests


class SandboxCheckoutError(Exception):
    """The sandbox was unreachable or refused the checkout."""


def sandbox_checkout_request(
    *,
    sandbox_url: str,
    email: str,
    name: str | None,
    service_id: str,
    amount: int,
    currency: str,
    webhook_url: str,
    webhook_secret: str,
    delayed: str | None = None,
    livemode: bool = False,
    **options,
) -> dict:
    """Create the checkout and deliver its events; the sandbox's answer.

    `options` are StripeSandbox.create_checkout's (mode, interval, coupon, percent_off, payment_link, …);
    those given as None are left out.

    {"session": {...}, "events": [event ids], "deliveries": [{"event", "status", "body", "error"}]}
    """
    body = {
        "email": email,
        "name": name,
        "service_id": service_id,
        "amount": amount,
        "currency": currency,
        "delayed": delayed,
        "livemode": livemode,
        "webhook_url": webhook_url,
        "webhook_secret": webhook_secret,
        "deliver": True,
        **{key: value for key, value in options.items() if value is not None},
    }
    try:
        response = requests.post(f"{sandbox_url.rstrip('/')}/_sandbox/checkouts", json=body, timeout=300)
    except requests.RequestException as error:
        raise SandboxCheckoutError(f"Stripe sandbox not reachable at {sandbox_url}: {error}") from error
    if response.status_code != 200:
        raise SandboxCheckoutError(
            f"Stripe sandbox refused the checkout ({response.status_code}): {response.text}"
        )
    return response.json()


def failed_deliveries(result: dict) -> list[dict]:
    """Deliveries the app did not answer with a 2xx (or did not answer at all)."""
    return [d for d in result["deliveries"] if d["status"] is None or not 200 <= d["status"] < 300]
