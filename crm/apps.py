from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = "CRM and onboarding"

    def ready(self) -> None:
        from . import stripe_client

        stripe_client.configure()
