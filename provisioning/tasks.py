"""django-q2 tasks: thin doors into services. Each takes ids, never model instances."""

from .services import workspace_provision_for_onboarding


def workspace_provision(onboarding_id: int) -> str:
    """Provision (or reuse) the workspace for one onboarding."""
    return workspace_provision_for_onboarding(onboarding_id=onboarding_id)
