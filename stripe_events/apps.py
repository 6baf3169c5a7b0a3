from django.apps import AppConfig


class StripeEventsConfig(AppConfig):
    name = "stripe_events"
    verbose_name = "Stripe webhooks"

    def ready(self) -> None:
        from django.contrib import admin

        from . import stripe_client
        from .admin_mirror import make_stripe_mirror_read_only
        from .djstripe_compat import djstripe_compat_apply

        stripe_client.configure()
        djstripe_compat_apply()  # dj-stripe 2.11 vs dahlia discounts: see stripe_events/djstripe_compat.py
        # The admin app (earlier in INSTALLED_APPS) has autodiscovered dj-stripe's admin by now.
        make_stripe_mirror_read_only(admin.site)
