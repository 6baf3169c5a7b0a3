"""Reads for the client portal. Every query is scoped to the signed-in user's client.

The portal reads crm's Client, Service and Payment through Workspace's foreign keys and their
reverse relations rather than importing crm, so the dependency stays one way (crm -> provisioning).
"""

from typing import Any

from django.contrib.auth.models import User
from django.db.models import Q, QuerySet

from .models import Workspace

# Typed Any: mypy sees only `type[Model]` (crm's models are not imported, by design).
Client: Any = Workspace.client.field.related_model  # crm.Client
Service: Any = Workspace.service.field.related_model  # crm.Service


def client_for_user(*, user: User) -> Any:
    """The client a portal user belongs to, or None (staff, or a user not linked to a client)."""
    return Client.objects.filter(user=user).first()


def workspaces_for_user(*, user: User) -> QuerySet[Workspace]:
    """The user's client's workspaces; empty for a user with no client."""
    return Workspace.objects.filter(client__user=user).select_related("service").order_by("service__name")


def services_for_client(*, client: Any) -> QuerySet[Any]:
    """What the client ordered: the services of its onboardings and payments."""
    return Service.objects.filter(Q(onboarding__client=client) | Q(payment__client=client)).distinct()


def payments_for_client(*, client: Any) -> QuerySet[Any]:
    """The client's recorded payments, newest first."""
    return client.payments.select_related("service").order_by("-paid_at")
