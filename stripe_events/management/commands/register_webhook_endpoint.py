"""Create or update the local dj-stripe WebhookEndpoint for a signing secret, without calling Stripe."""

from argparse import ArgumentParser
from typing import Any
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError

from stripe_events.webhook_endpoints import webhook_endpoint_register


class Command(BaseCommand):
    help = (
        "Create or update the local webhook endpoint for a Stripe signing secret (whsec_…) and "
        "print its full URL on the last line. Makes no Stripe API call."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--secret", required=True, help="The endpoint's signing secret, whsec_…")
        parser.add_argument(
            "--base-url", required=True, help="Where Stripe reaches this app, e.g. https://app.example.com"
        )
        parser.add_argument("--livemode", action="store_true", help="A live-mode endpoint (default: test)")

    def handle(self, *args: Any, secret: str, base_url: str, livemode: bool, **options: Any) -> None:
        if not secret.startswith("whsec_"):
            raise CommandError("--secret must be a Stripe signing secret starting with whsec_")
        if not base_url_is_valid(base_url):
            raise CommandError(
                "--base-url must be where Stripe reaches this app: http(s)://host[:port][/prefix], "
                "without query or fragment"
            )
        endpoint, created = webhook_endpoint_register(secret=secret, base_url=base_url, livemode=livemode)
        self.stderr.write(f"{'Created' if created else 'Updated'} webhook endpoint {endpoint.id}")
        self.stdout.write(endpoint.url)


def base_url_is_valid(base_url: str) -> bool:
    """http(s) with a host; any host name (Django's URLValidator refuses e.g. `http://web:8000`)."""
    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return False
    has_host = parts.scheme in ("http", "https") and bool(parts.hostname)
    return has_host and not parts.query and not parts.fragment
