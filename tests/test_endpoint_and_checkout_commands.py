"""The operator commands of the webhook path: register_webhook_endpoint and sandbox_checkout."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from djstripe.models import WebhookEndpoint, WebhookEventTrigger

from stripe_events.models import StripeWebhookJob

SECRET = "whsec_commands_test_secret"


def register(**options) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("register_webhook_endpoint", stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_register_creates_then_updates_one_endpoint_and_prints_its_url_last():
    out, err = register(secret=SECRET, base_url="http://127.0.0.1:8000")
    endpoint = WebhookEndpoint.objects.get()
    assert out.strip().splitlines()[-1] == f"http://127.0.0.1:8000/stripe/webhook/{endpoint.djstripe_uuid}/"
    assert endpoint.url == out.strip().splitlines()[-1] and endpoint.secret == SECRET
    assert err.startswith("Created")

    out, err = register(secret=SECRET, base_url="https://onboarding.example.com/")
    again = WebhookEndpoint.objects.get()
    assert again.djstripe_uuid == endpoint.djstripe_uuid  # the URL Stripe knows keeps its path
    assert (
        out.strip().splitlines()[-1]
        == f"https://onboarding.example.com/stripe/webhook/{endpoint.djstripe_uuid}/"
    )
    assert err.startswith("Updated")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("secret", "base_url", "message"),
    [
        ("sk_test_not_a_signing_secret", "http://127.0.0.1:8000", "whsec_"),
        (SECRET, "not-a-url", "--base-url"),
        (SECRET, "ftp://files.example.com", "--base-url"),
        (SECRET, "http://app.example.com/?next=x", "--base-url"),
    ],
)
def test_register_refuses_a_bad_secret_or_base_url(secret, base_url, message):
    with pytest.raises(CommandError, match=message):
        register(secret=secret, base_url=base_url)
    assert not WebhookEndpoint.objects.exists()


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
    webhook_url = register(secret=SECRET, base_url=live_server.url)[0].strip()

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
    webhook_url = register(secret=SECRET, base_url=live_server.url)[0].strip()

    with pytest.raises(CommandError, match="webhook deliveries failed"):
        checkout(sandbox, webhook_url, secret="whsec_not_the_endpoints_secret")

    assert not StripeWebhookJob.objects.exists()
    assert WebhookEventTrigger.objects.get().valid is False
