import json

from django.core.management.base import BaseCommand, CommandError

from stripe_sandbox.control_client import SandboxControlError, sandbox_call
from stripe_sandbox.management.sandbox_command import sandbox_url


class Command(BaseCommand):
    help = (
        "Print the sandbox's own ledger as JSON: per customer email and currency paid / refunded "
        "(succeeded) / disputed (lost) / net, the first currency's net, and settlement-currency totals."
    )

    def add_arguments(self, parser):
        parser.add_argument("--sandbox-url", default=None)
        parser.add_argument("--livemode", action="store_true")

    def handle(self, *args, **options):
        try:
            report = sandbox_call(
                sandbox_url(options["sandbox_url"]),
                "/_sandbox/ledger",
                {"livemode": options["livemode"]},
                "GET",
            )
        except SandboxControlError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(json.dumps(report, indent=2))
