from django.apps import AppConfig


class StripeEventsConfig(AppConfig):
    name = "stripe_events"
    verbose_name = "Stripe webhooks"

    def ready(self) -> None:
        from django.contrib import admin

        from . import stripe_client
        from .admin_mirror import make_stripe_mirror_read_only
        from .djstripe_compat import djstripe_compat_apply
        from .session_sync import checkout_session_mirror_install

        stripe_client.configure()
        checkout_session_mirror_install()  # one Stripe request per session: stripe_events/session_sync.py
        djstripe_compat_apply()  # dj-stripe 2.11 vs dahlia discounts: see stripe_events/djstripe_compat.py
        # The admin app (earlier in INSTALLED_APPS) has autodiscovered dj-stripe's admin by now.
        make_stripe_mirror_read_only(admin.site)
