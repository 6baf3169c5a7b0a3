from django.core.management.base import CommandError

from stripe_sandbox.management.sandbox_command import SandboxCommand


class Command(SandboxCommand):
    help = (
        "Put a discount on a sandbox customer (the coupon under `discount.source`, as in the pinned API "
        "version) and deliver customer.discount.created and customer.updated."
    )
    shown = ("customer", "discount")

    def add_arguments(self, parser):
        parser.add_argument("--customer", required=True, help="cus_… (a client's Stripe customer).")
        parser.add_argument("--coupon", default=None, help="Coupon id (see sandbox_coupon).")
        parser.add_argument("--promotion-code", default=None, help="Promotion code id or code.")
        super().add_arguments(parser)

    def handle(self, *args, **options):
        if not (options["coupon"] or options["promotion_code"]):
            raise CommandError("give --coupon or --promotion-code")
        self.call(
            options,
            f"/_sandbox/customers/{options['customer']}/discount",
            {"coupon": options["coupon"], "promotion_code": options["promotion_code"]},
        )
