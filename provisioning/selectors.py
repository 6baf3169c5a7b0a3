"""Reads for the client portal. Every query is scoped to the signed-in user's client."""

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Q, QuerySet

from crm.models import Client, Payment, Service

from .models import Workspace


def client_for_user(*, user: AbstractBaseUser) -> Client | None:
    """The client a portal user belongs to, or None (staff, or a user not linked to a client)."""
    return Client.objects.filter(user=user).first()


def workspaces_for_user(*, user: AbstractBaseUser) -> QuerySet[Workspace]:
    """The user's client's workspaces; empty for a user with no client."""
    return Workspace.objects.filter(client__user=user).select_related("service").order_by("service__name")


def services_for_client(*, client: Client) -> QuerySet[Service]:
    """What the client ordered: the services of its onboardings and payments."""
    return Service.objects.filter(Q(onboarding__client=client) | Q(payment__client=client)).distinct()


def payments_for_client(*, client: Client) -> QuerySet[Payment]:
    """The client's recorded payments, newest first."""
    return Payment.objects.filter(client=client).select_related("service").order_by("-paid_at")
