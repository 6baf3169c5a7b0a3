from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from stripe_sandbox.checkout_client import SandboxCheckoutError, failed_deliveries, sandbox_checkout_request
from stripe_sandbox.management.sandbox_command import webhook_target

DEFAULT_SANDBOX_URL = "http://127.0.0.1:12111"
CHECKOUT_FLAGS = (
    "mode",
    "interval",
    "trial_days",
    "coupon",
    "promotion_code",
    "percent_off",
    "amount_off",
    "duration",
    "duration_in_months",
    "payment_link",
    "presentment_currency",
    "customer",
)


class Command(BaseCommand):
    help = (
        "Ask a running Stripe sandbox to create a paid Checkout Session and deliver its signed "
        "webhook events (default target: the newest djstripe WebhookEndpoint)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--email", required=True)
        parser.add_argument("--name", default=None)
        parser.add_argument(
            "--service", required=True, help="Service id, stored as session metadata serviceId."
        )
        parser.add_argument("--amount", type=int, required=True, help="Amount in minor units (cents).")
        parser.add_argument("--currency", default="eur")
        parser.add_argument("--delayed", choices=["succeeded", "failed"], default=None)
        parser.add_argument("--livemode", action="store_true")
        parser.add_argument("--sandbox-url", default=None)
        parser.add_argument("--webhook-url", default=None)
        parser.add_argument("--webhook-secret", default=None)
        parser.add_argument(
            "--mode",
            choices=["payment", "subscription"],
            default=None,
            help="subscription: creates the subscription and its first paid invoice.",
        )
        parser.add_argument("--interval", choices=["day", "week", "month", "year"], default=None)
        parser.add_argument("--trial-days", type=int, default=None, help="Free trial (subscription mode).")
        parser.add_argument("--coupon", default=None, help="Coupon id to apply.")
        parser.add_argument("--promotion-code", default=None, help="Promotion code id or code.")
        parser.add_argument("--percent-off", type=float, default=None, help="Apply a new percent coupon.")
        parser.add_argument("--amount-off", type=int, default=None, help="Apply a new amount coupon.")
        parser.add_argument("--duration", choices=["once", "repeating", "forever"], default=None)
        parser.add_argument("--duration-in-months", type=int, default=None)
        parser.add_argument("--payment-link", default=None, help="plink_… to buy through.")
        parser.add_argument(
            "--presentment-currency",
            default=None,
            help="Adaptive Pricing: the customer pays in this currency.",
        )
        parser.add_argument("--customer", default=None, help="An existing cus_… (a returning client).")

    def handle(self, *args, **options):
        sandbox_url = (
            options["sandbox_url"] or getattr(settings, "STRIPE_API_HOST", None) or DEFAULT_SANDBOX_URL
        )
        webhook_url, webhook_secret = webhook_target(options["webhook_url"], options["webhook_secret"])
        try:
            result = sandbox_checkout_request(
                sandbox_url=sandbox_url,
                email=options["email"],
                name=options["name"],
                service_id=options["service"],
                amount=options["amount"],
                currency=options["currency"],
                delayed=options["delayed"],
                livemode=options["livemode"],
                webhook_url=webhook_url,
                webhook_secret=webhook_secret,
                **{name: options[name] for name in CHECKOUT_FLAGS},
            )
        except SandboxCheckoutError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"session {result['session']['id']}")
        for name in ("subscription", "invoice"):
            if result["session"].get(name):
                self.stdout.write(f"{name} {result['session'][name]}")
        self.stdout.write(f"events {' '.join(result['events'])}")
        for delivery in result["deliveries"]:
            status = (
                delivery["status"]
                if delivery["status"] is not None
                else f"unreachable ({delivery.get('error')})"
            )
            self.stdout.write(f"event {delivery['event']} -> {webhook_url}: HTTP {status}")
        failed = failed_deliveries(result)
        if failed:
            raise CommandError(
                f"{len(failed)} webhook deliveries failed; first response: {failed[0]['body'][:500]}"
            )
