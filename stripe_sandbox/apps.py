from django.apps import AppConfig


class StripeSandboxConfig(AppConfig):
    """Django app wrapper: only provides the management commands (no models)."""

    name = "stripe_sandbox"
    verbose_name = "Stripe sandbox"
