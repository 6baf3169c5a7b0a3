from django.core.management.base import CommandError

from stripe_sandbox.management.sandbox_command import SandboxCommand


class Command(SandboxCommand):
    help = (
        "Create a sandbox Payment Link for a service (metadata serviceId plus --metadata key=value); buy "
        "through it with `sandbox_checkout --payment-link plink_…`."
    )
    delivers = False
    shown = ("payment_link",)

    def add_arguments(self, parser):
        parser.add_argument("--service", required=True)
        parser.add_argument("--amount", type=int, required=True)
        parser.add_argument("--currency", default="eur")
        parser.add_argument("--interval", choices=["day", "week", "month", "year"], default=None)
        parser.add_argument("--metadata", action="append", default=[], help="key=value, repeatable")
        super().add_arguments(parser)

    def handle(self, *args, **options):
        metadata = {}
        for pair in options["metadata"]:
            key, sep, value = pair.partition("=")
            if not sep:
                raise CommandError(f"--metadata wants key=value, got {pair!r}")
            metadata[key] = value
        body = {
            "service_id": options["service"],
            "amount": options["amount"],
            "currency": options["currency"],
            "interval": options["interval"],
            "metadata": metadata,
        }
        result = self.call(options, "/_sandbox/payment_links", body)
        self.stdout.write(f"url {result['payment_link']['url']}")
