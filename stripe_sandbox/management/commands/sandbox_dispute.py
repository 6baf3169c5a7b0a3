from stripe_sandbox.management.sandbox_command import SandboxCommand


class Command(SandboxCommand):
    help = (
        "Open a dispute on a sandbox charge (ch_…, pi_…, cs_… or in_…): charge.dispute.created and "
        "charge.dispute.funds_withdrawn; with --outcome won|lost also close it (won: funds_reinstated). "
        "--close du_… --outcome … closes an open dispute."
    )
    shown = ("dispute", "charge")

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--charge")
        group.add_argument("--close", help="du_… to close (needs --outcome)")
        parser.add_argument("--outcome", choices=["won", "lost"], default=None)
        parser.add_argument("--amount", type=int, default=None)
        parser.add_argument("--reason", default="fraudulent")
        super().add_arguments(parser)

    def handle(self, *args, **options):
        if options["close"]:
            if not options["outcome"]:
                self.stderr.write("--close needs --outcome")
                raise SystemExit(2)
            self.call(
                options, f"/_sandbox/disputes/{options['close']}/close", {"outcome": options["outcome"]}
            )
            return
        body = {"outcome": options["outcome"], "amount": options["amount"], "reason": options["reason"]}
        self.call(options, f"/_sandbox/charges/{options['charge']}/dispute", body)
