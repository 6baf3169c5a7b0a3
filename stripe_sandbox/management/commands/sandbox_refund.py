from stripe_sandbox.management.sandbox_command import SandboxCommand


class Command(SandboxCommand):
    help = (
        "Refund a sandbox charge (ch_…, or the charge of a pi_…, cs_… or in_…) and deliver charge.refunded, "
        "refund.created, refund.updated; --fail makes the refund fail "
        "(refund.updated failed, refund.failed). "
        "--fail-refund re_… fails an earlier refund."
    )
    shown = ("refund", "charge")

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--charge")
        group.add_argument("--fail-refund", help="re_… to fail now")
        parser.add_argument("--amount", type=int, default=None, help="Minor units (default: what is left).")
        parser.add_argument("--fail", action="store_true")
        parser.add_argument(
            "--reason", choices=["duplicate", "fraudulent", "requested_by_customer"], default=None
        )
        super().add_arguments(parser)

    def handle(self, *args, **options):
        if options["fail_refund"]:
            self.call(options, f"/_sandbox/refunds/{options['fail_refund']}/fail", {})
            return
        body = {"amount": options["amount"], "fail": options["fail"], "reason": options["reason"]}
        self.call(options, f"/_sandbox/charges/{options['charge']}/refund", body)
