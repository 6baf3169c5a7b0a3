"""The timeline: every service records what it did, so staff can read a client's whole story."""

from django.contrib.auth.models import User

from ..models import Activity, Client, Onboarding

Kind = Activity.Kind


def activity_record(
    *,
    kind: str,
    summary: str,
    onboarding: Onboarding | None = None,
    client: Client | None = None,
    detail: str = "",
    actor: User | None = None,
) -> Activity:
    """Append one timeline line; the client defaults to the onboarding's."""
    client_id = client.id if client else (onboarding.client_id if onboarding else None)
    return Activity.objects.create(
        kind=kind,
        summary=summary[:300],
        detail=detail,
        onboarding=onboarding,
        client_id=client_id,
        actor=actor,
    )
