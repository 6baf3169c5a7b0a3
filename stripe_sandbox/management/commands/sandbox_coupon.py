from stripe_sandbox.management.sandbox_command import SandboxCommand


class Command(SandboxCommand):
    help = "Create a sandbox coupon (and a promotion code with --code); use its id with --coupon."
    delivers = False
    shown = ("coupon", "promotion_code")

    def add_arguments(self, parser):
        off = parser.add_mutually_exclusive_group(required=True)
        off.add_argument("--percent-off", type=float)
        off.add_argument("--amount-off", type=int)
        parser.add_argument("--currency", default=None, help="Needed with --amount-off.")
        parser.add_argument("--duration", choices=["once", "repeating", "forever"], default="once")
        parser.add_argument("--duration-in-months", type=int, default=None)
        parser.add_argument("--id", default=None)
        parser.add_argument("--code", default=None)
        super().add_arguments(parser)

    def handle(self, *args, **options):
        body = {
            name: options[name]
            for name in (
                "percent_off",
                "amount_off",
                "currency",
                "duration",
                "duration_in_months",
                "id",
                "code",
            )
        }
        self.call(options, "/_sandbox/coupons", body)
