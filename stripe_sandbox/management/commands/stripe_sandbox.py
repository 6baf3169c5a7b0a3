import signal

from django.core.management.base import BaseCommand

from stripe_sandbox.server import StripeSandbox


class Command(BaseCommand):
    help = "Run the local Stripe sandbox (a fake Stripe API) until Ctrl-C. Point STRIPE_API_HOST at its URL."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=12111)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument(
            "--settlement-currency",
            default="usd",
            help="The account's currency: balance transactions convert to it at the day's FX rate (usd).",
        )

    def handle(self, *args, port, host, settlement_currency, **options):
        sandbox = StripeSandbox(settlement_currency=settlement_currency)

        def announce(url):
            self.stdout.write(
                f"Stripe sandbox listening on {url} (account {sandbox.account['id']}, settles in "
                f"{sandbox.store.settlement_currency.upper()}). Ctrl-C to stop."
            )
            self.stdout.flush()

        # Stop cleanly on Ctrl-C and on SIGTERM (process managers), even if SIGINT was inherited as ignored.
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            sandbox.serve_forever(port=port, host=host, on_ready=announce)
        except KeyboardInterrupt:
            self.stdout.write("Stripe sandbox stopped.")


def _interrupt(signum, frame):
    # Once: a second signal (Ctrl-C to the terminal's process group, then a supervisor's
    # SIGTERM) must not interrupt the shutdown itself with a traceback.
    # A no-op handler rather than SIG_IGN: a signal already pending would otherwise surface as
    # "OSError: Signal 15 ignored due to race condition".
    signal.signal(signal.SIGINT, _ignore)
    signal.signal(signal.SIGTERM, _ignore)
    raise KeyboardInterrupt


def _ignore(signum, frame):
    pass
