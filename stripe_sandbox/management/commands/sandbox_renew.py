from stripe_sandbox.management.sandbox_command import SandboxCommand


class Command(SandboxCommand):
    help = (
        "Advance a sandbox subscription one billing period (like a test clock): a new subscription_cycle "
        "invoice, paid (or declined with --fail: invoice.payment_failed, subscription past_due), and its "
        "signed webhooks. --retry-invoice pays an open (failed) invoice instead."
    )
    shown = ("invoice", "subscription")

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--subscription", help="sub_… to renew")
        group.add_argument("--retry-invoice", help="in_… (open after a failed renewal) to pay now")
        parser.add_argument("--fail", action="store_true", help="The card is declined.")
        super().add_arguments(parser)

    def handle(self, *args, **options):
        if options["retry_invoice"]:
            path = f"/_sandbox/invoices/{options['retry_invoice']}/pay"
        else:
            path = f"/_sandbox/subscriptions/{options['subscription']}/renew"
        self.call(options, path, {"fail": options["fail"]})
