"""Shared parts of the `sandbox_*` commands: where the sandbox and the webhook endpoint are, and output."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from stripe_sandbox.control_client import SandboxControlError, failed_deliveries, sandbox_call

DEFAULT_SANDBOX_URL = "http://127.0.0.1:12111"


def webhook_target(url, secret):
    """Use the given URL/secret, else the most recently created djstripe WebhookEndpoint."""
    if url and secret:
        return url, secret
    from djstripe.models import WebhookEndpoint

    endpoint = WebhookEndpoint.objects.order_by("-djstripe_created").first()
    if endpoint is None:
        raise CommandError(
            "No djstripe WebhookEndpoint in the database: create one, "
            "or pass --webhook-url and --webhook-secret."
        )
    if not (secret or endpoint.secret):
        raise CommandError(f"WebhookEndpoint {endpoint.id} has no secret; pass --webhook-secret.")
    return url or endpoint.url, secret or endpoint.secret


def sandbox_url(option) -> str:
    return option or getattr(settings, "STRIPE_API_HOST", None) or DEFAULT_SANDBOX_URL


class SandboxCommand(BaseCommand):
    """A command that asks the sandbox for one operation and delivers its signed webhooks to the app."""

    delivers = True
    # Objects of the answer whose ids are printed first, as `<name> <id>` lines.
    shown = ()

    def add_arguments(self, parser):
        parser.add_argument("--sandbox-url", default=None)
        if self.delivers:
            parser.add_argument("--webhook-url", default=None)
            parser.add_argument("--webhook-secret", default=None)
            parser.add_argument(
                "--no-deliver", action="store_true", help="Record the events without delivering them."
            )
        parser.add_argument("--created", type=int, default=None, help="Unix time of the operation.")

    def call(self, options, path: str, body: dict) -> dict:
        body = {key: value for key, value in body.items() if value is not None}
        if options.get("created") is not None:
            body["created"] = options["created"]
        webhook_url = None
        if self.delivers and not options["no_deliver"]:
            webhook_url, secret = webhook_target(options["webhook_url"], options["webhook_secret"])
            body.update(webhook_url=webhook_url, webhook_secret=secret)
        try:
            result = sandbox_call(sandbox_url(options["sandbox_url"]), path, body)
        except SandboxControlError as error:
            raise CommandError(str(error)) from error
        self.report(result, webhook_url)
        return result

    def report(self, result: dict, webhook_url: str | None) -> None:
        for name in self.shown:
            if result.get(name):
                self.stdout.write(f"{name} {result[name]['id']}")
        if "events" in result:
            self.stdout.write(f"events {' '.join(result['events'])}")
        for delivery in result.get("deliveries", []):
            status = (
                delivery["status"]
                if delivery["status"] is not None
                else f"unreachable ({delivery.get('error')})"
            )
            self.stdout.write(f"event {delivery['event']} -> {webhook_url}: HTTP {status}")
        failed = failed_deliveries(result)
        if failed:
            raise CommandError(
                f"{len(failed)} webhook deliveries failed; first response: {failed[0]['body'][:500]}"
            )
