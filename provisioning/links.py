"""Absolute links into the client portal, for emails."""

from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.auth.tokens import default_token_generator
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode


def portal_url(name: str, *args, **kwargs) -> str:
    """The absolute URL (SITE_URL) of a client-portal page, for emails and workspace links."""
    return f"{settings.SITE_URL}{reverse(f'portal:{name}', args=args, kwargs=kwargs)}"


def set_password_url(user: User) -> str:
    """One-use link for the user to set a portal password; expires after PASSWORD_RESET_TIMEOUT."""
    return portal_url(
        "set_password",
        uidb64=urlsafe_base64_encode(force_bytes(user.pk)),
        token=default_token_generator.make_token(user),
    )
