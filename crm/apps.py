from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = "CRM and onboarding"

    def ready(self) -> None:
        from django.contrib import admin

        from . import money_receivers, receivers, stripe_client  # noqa: F401 - importing connects the receivers
        from .admin_stripe import make_stripe_mirror_read_only
        from .djstripe_compat import djstripe_compat_apply

        stripe_client.configure()
        djstripe_compat_apply()  # dj-stripe 2.11 vs dahlia discounts: see crm/djstripe_compat.py
        # The admin app (earlier in INSTALLED_APPS) has autodiscovered dj-stripe's admin by now.
        make_stripe_mirror_read_only(admin.site)
