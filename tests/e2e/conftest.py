"""End-to-end fixtures: a real browser (Debian's Chromium, Playwright's sync API) and live deliveries.

No browser is downloaded: Playwright launches /usr/bin/chromium (apt-get install chromium). Without
it the browser tests fail loudly, so CI cannot pass them by not running them; a laptop without
Chromium can opt out with ALLOW_NO_BROWSER=1, which skips them instead.
"""

import json
import os
from pathlib import Path

import pytest
import requests

from stripe_events.webhook_endpoints import webhook_endpoint_register
from stripe_sandbox.signing import sign_payload
from tests.support.pipeline import CHECKOUT_DEFAULTS, WEBHOOK_SECRET

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# Playwright's own waits (clicks, navigations, expect) give up after this many milliseconds.
TIMEOUT_MS = 10_000


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install -y chromium"
        if os.environ.get("ALLOW_NO_BROWSER") == "1":
            pytest.skip(f"{message} (skipped: ALLOW_NO_BROWSER=1)")
        pytest.fail(f"{message}, or set ALLOW_NO_BROWSER=1 to skip the browser tests.", pytrace=False)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop marked as running in this thread until it stops,
    # so Django would refuse every ORM call (SynchronousOnlyOperation) from the tests, and from
    # any test that runs after these in the session. Nothing here is async: lift the guard for
    # as long as the browser lives, and put it back after.
    guard = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            yield browser
            browser.close()
    finally:
        if guard is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = guard


@pytest.fixture
def page(browser):
    """A fresh browser context (no cookies) and page per test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


class LivePipeline:
    """Pays in the Stripe sandbox and delivers the signed events over HTTP to the live server."""

    def __init__(self, sandbox, live_server):
        self.sandbox = sandbox
        self.endpoint, _ = webhook_endpoint_register(secret=WEBHOOK_SECRET, base_url=live_server.url)

    def pay(self, **fields) -> dict:
        """A paid checkout, its events delivered (not yet worked): the Checkout Session."""
        result = self.sandbox.create_checkout(**{**CHECKOUT_DEFAULTS, **fields}, deliver=False)
        for event_id in result["events"]:
            body = json.dumps(self.sandbox.store.get("event", event_id))
            headers = {
                "Stripe-Signature": sign_payload(body, WEBHOOK_SECRET),
                "Content-Type": "application/json",
            }
            response = requests.post(self.endpoint.url, data=body, headers=headers, timeout=30)
            assert response.status_code == 200, response.text
        return result["session"]


@pytest.fixture
def live_pipeline(sandbox, live_server):
    return LivePipeline(sandbox, live_server)
