"""Call a running Stripe sandbox's `/_sandbox/…` control API over HTTP (used by the sandbox_* commands)."""

import requests


class SandboxControlError(Exception):
    """The sandbox was unreachable or refused the request."""


def sandbox_call(sandbox_url: str, path: str, body: dict | None = None, method: str = "POST") -> dict:
    """Send one control request and return its JSON answer."""
    url = f"{sandbox_url.rstrip('/')}{path}"
    try:
        response = requests.request(method, url, json=body or {}, timeout=300)
    except requests.RequestException as error:
        raise SandboxControlError(f"Stripe sandbox not reachable at {sandbox_url}: {error}") from error
    if response.status_code != 200:
        raise SandboxControlError(
            f"Stripe sandbox refused {method} {path} ({response.status_code}): {response.text}"
        )
    return response.json()


def failed_deliveries(result: dict) -> list[dict]:
    """Deliveries the app did not answer with a 2xx (or did not answer at all)."""
    return [d for d in result.get("deliveries", []) if d["status"] is None or not 200 <= d["status"] < 300]
