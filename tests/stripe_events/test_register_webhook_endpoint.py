"""`register_webhook_endpoint`: the operator command that creates or updates the one webhook endpoint."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from djstripe.models import WebhookEndpoint

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
