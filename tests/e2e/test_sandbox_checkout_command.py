"""`sandbox_checkout`: a paid checkout in the sandbox, its signed events delivered over HTTP to the app."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from djstripe.models import WebhookEventTrigger

from stripe_events.models import StripeWebhookJob
from stripe_events.webhook_endpoints import webhook_endpoint_register

SECRET = "whsec_commands_test_secret"


def register(*, base_url: str) -> str:
    endpoint, _ = webhook_endpoint_register(secret=SECRET, base_url=base_url)
    return endpoint.url


def checkout(sandbox, endpoint_url: str, secret: str = SECRET, **options) -> str:
    out = StringIO()
    call_command(
        "sandbox_checkout",
        email="grace@example.com",
        name="Grace Hopper",
        service="website-care",
        amount=49900,
        currency="usd",
        sandbox_url=sandbox.url,
        webhook_url=endpoint_url,
        webhook_secret=secret,
        stdout=out,
        **options,
    )
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("outcome", ["succeeded", "failed"])
def test_sandbox_checkout_delayed_delivers_both_signed_events_to_the_app(live_server, sandbox, outcome):
    webhook_url = register(base_url=live_server.url)

    out = checkout(sandbox, webhook_url, delayed=outcome)

    delivered = [line for line in out.splitlines() if line.startswith("event ")]
    assert len(delivered) == 2 and all(line.endswith("HTTP 200") for line in delivered)
    types = list(StripeWebhookJob.objects.order_by("created").values_list("event_type", flat=True))
    assert types == ["checkout.session.completed", f"checkout.session.async_payment_{outcome}"]
    assert WebhookEventTrigger.objects.filter(valid=True).count() == 2
    session = sandbox.store.get("checkout.session", out.split("session ", 1)[1].split()[0])
    assert session["payment_status"] == ("paid" if outcome == "succeeded" else "unpaid")


@pytest.mark.django_db(transaction=True)
def test_sandbox_checkout_fails_loudly_when_the_app_rejects_the_delivery(live_server, sandbox):
    webhook_url = register(base_url=live_server.url)

    with pytest.raises(CommandError, match="webhook deliveries failed"):
        checkout(sandbox, webhook_url, secret="whsec_not_the_endpoints_secret")

    assert not StripeWebhookJob.objects.exists()
    assert WebhookEventTrigger.objects.get().valid is False
