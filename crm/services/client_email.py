"""Changing a client's email: the CRM record and the client's portal login move together."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction

from core.locks import lock_name_for_transaction

from ..models import Client
from .activity import Kind, activity_record
from .onboarding import normalise_email


def client_email_conflict(*, client: Client, email: str) -> str:
    """Why `email` cannot become this client's address ("" when it can)."""
    email = normalise_email(email)
    if Client.objects.filter(email=email).exclude(id=client.id).exists():
        return f"{email} is already another client's email."
    logins = get_user_model().objects.filter(username=email)
    if client.user_id is not None:
        logins = logins.exclude(id=client.user_id)
    login = logins.first()
    if login is not None:
        return f"{email} is already the login of {'a staff account' if login.is_staff else 'another user'}."
    return ""


@transaction.atomic
def client_email_change(*, client: Client, email: str, actor: User | None) -> Client:
    """Give the client a new email, and their portal login the same username and email.

    Django's set-password tokens hash the user's email, so every link sent before the change (to a
    mistyped address, say) stops working; staff resend the welcome email for a fresh one.
    """
    email = normalise_email(email)
    if email == client.email:
        return client
    for name in sorted({client.email, email}):
        lock_name_for_transaction(f"client-email:{name}")
    if problem := client_email_conflict(client=client, email=email):
        raise ValidationError(problem)
    old = client.email
    Client.objects.filter(id=client.id).update(email=email)
    client.email = email
    if client.user_id:
        get_user_model().objects.filter(id=client.user_id).update(username=email, email=email)
    activity_record(
        kind=Kind.STAFF,
        summary="Email changed; portal login follows, earlier set-password links no longer work",
        detail=f"{old} -> {email}",
        client=client,
        actor=actor,
    )
    return client
