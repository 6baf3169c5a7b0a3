from stripe_sandbox.management.sandbox_command import SandboxCommand


class Command(SandboxCommand):
    help = "Cancel a sandbox subscription now and deliver customer.subscription.deleted."
    shown = ("subscription",)

    def add_arguments(self, parser):
        parser.add_argument("--subscription", required=True)
        parser.add_argument("--reason", default="cancellation_requested")
        super().add_arguments(parser)

    def handle(self, *args, **options):
        self.call(
            options,
            f"/_sandbox/subscriptions/{options['subscription']}/cancel",
            {"reason": options["reason"]},
        )
