"""The portal's "forgot password": a fresh set-password link for a client, rate-limited, and saying
nothing about whether an address has an account.

The limit is counted on our own table rather than with django-ratelimit, which needs a shared cache
with atomic increments (Redis or Memcached) that this app does not otherwise require; the rows are
also the staff's record of who asked.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone

from .links import portal_url, set_password_url
from .models import PortalPasswordResetRequest

WINDOW = timedelta(hours=1)


def portal_reset_user(*, email: str) -> User | None:
    """The active client login for the address; never a staff account (staff use the admin)."""
    return (
        get_user_model()
        .objects.filter(
            username=email, is_active=True, is_staff=False, is_superuser=False, client__isnull=False
        )
        .first()
    )


def portal_reset_allowed(*, email: str, ip_address: str | None) -> bool:
    """Under the hourly limits for this address and this IP (requests already recorded)."""
    since = timezone.now() - WINDOW
    recent = PortalPasswordResetRequest.objects.filter(created__gte=since)
    if recent.filter(email=email).count() >= settings.PORTAL_RESET_LIMIT_PER_EMAIL:
        return False
    return not (
        ip_address and recent.filter(ip_address=ip_address).count() >= settings.PORTAL_RESET_LIMIT_PER_IP
    )


def portal_password_reset_request(*, email: str, ip_address: str | None) -> PortalPasswordResetRequest:
    """Record the request and, for a client's login under the limits, email a set-password link."""
    email = email.strip().lower()
    allowed = portal_reset_allowed(email=email, ip_address=ip_address)
    user = portal_reset_user(email=email) if allowed else None
    if user is not None:
        portal_reset_email_send(user=user)
    return PortalPasswordResetRequest.objects.create(
        email=email, ip_address=ip_address, sent=user is not None
    )


def portal_reset_email_send(*, user: User) -> None:
    context = {
        "set_password_url": set_password_url(user),
        "portal_url": portal_url("home"),
        "link_valid_days": max(1, settings.PASSWORD_RESET_TIMEOUT // 86400),
    }
    text = render_to_string("emails/portal_password_reset.txt", context)
    message = EmailMultiAlternatives(
        "Set a new password for your client portal",
        text,
        settings.DEFAULT_FROM_EMAIL,
        [user.email or user.username],
    )
    message.tags = ["portal-password-reset"]  # type: ignore[attr-defined]  # Anymail's (anymail ships no types)
    message.send()
