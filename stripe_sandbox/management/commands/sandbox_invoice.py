from stripe_sandbox.management.sandbox_command import SandboxCommand


class Command(SandboxCommand):
    help = (
        "Create a paid stand-alone sandbox invoice (billing_reason manual, metadata.serviceId) "
        "for a customer "
        "(--customer cus_…, or --email: reused if known, else created) and deliver invoice.created, "
        "invoice.finalized, invoice.paid, invoice.payment_succeeded (--fail: invoice.payment_failed)."
    )
    shown = ("invoice", "customer")

    def add_arguments(self, parser):
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--customer")
        who.add_argument("--email")
        parser.add_argument("--name", default=None)
        parser.add_argument("--amount", type=int, required=True, help="Minor units.")
        parser.add_argument("--currency", default="eur")
        parser.add_argument("--service", required=True, help="Service id (metadata serviceId).")
        parser.add_argument("--coupon", default=None)
        parser.add_argument("--promotion-code", default=None)
        parser.add_argument("--fail", action="store_true")
        parser.add_argument("--livemode", action="store_true")
        super().add_arguments(parser)

    def handle(self, *args, **options):
        body = {
            "customer": options["customer"],
            "email": options["email"],
            "name": options["name"],
            "amount": options["amount"],
            "currency": options["currency"],
            "service_id": options["service"],
            "coupon": options["coupon"],
            "promotion_code": options["promotion_code"],
            "fail": options["fail"],
            "livemode": options["livemode"],
        }
        self.call(options, "/_sandbox/invoices", body)
