from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = "CRM and onboarding"

    def ready(self) -> None:
        from . import money_receivers, receivers  # noqa: F401 - importing connects the receivers
