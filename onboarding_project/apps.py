from django.contrib.admin.apps import AdminConfig


class OnboardingAdminConfig(AdminConfig):
    """django.contrib.admin with our site as the default, so every @admin.register lands on it."""

    default_site = "onboarding_project.admin_site.OnboardingAdminSite"

    def ready(self) -> None:
        super().ready()
        from . import observability

        observability.connect()
