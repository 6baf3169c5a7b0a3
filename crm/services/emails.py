"""The welcome email: a portal user with no usable password and a one-time link to set one."""

import logging
import smtplib

from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F
from django.template.loader import render_to_string, select_template
from django.utils import timezone

from core.queue import enqueue_transactionally
from core.retry import retry_schedule
from provisioning.links import portal_url, set_password_url

from ..models import Client, Onboarding
from .activity import Kind, activity_record
from .onboarding import EMAIL_TASK, onboarding_finish_if_done

logger = logging.getLogger(__name__)

Step = Onboarding.StepStatus
MAX_ATTEMPTS = 6


def client_portal_user_ensure(*, client: Client):
    """The client's portal login (username = email), created with no usable password."""
    if client.user_id:
        return client.user
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(
        username=client.email, defaults={"email": client.email, "is_staff": False}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    elif user.is_staff or user.is_superuser:
        # Never hand a staff account's password reset to whoever paid with that address.
        raise PermissionError(f"{client.email} belongs to a staff account; not linking it to a client.")
    Client.objects.filter(id=client.id).update(user=user)
    client.user = user
    return user


def welcome_email_build(onboarding: Onboarding, *, user) -> EmailMultiAlternatives:
    """Text and HTML welcome email; templates can be overridden per service."""
    service = onboarding.service
    context = {
        "client": onboarding.client,
        "service": service,
        "set_password_url": set_password_url(user),
        "portal_url": portal_url("home"),
        "link_valid_days": max(1, settings.PASSWORD_RESET_TIMEOUT // 86400),
    }
    names = [f"emails/welcome/{service.service_id}", "emails/welcome"]
    text = select_template([f"{n}.txt" for n in names]).render(context)
    html = select_template([f"{n}.html" for n in names]).render(context)
    subject = service.welcome_email_subject or render_to_string("emails/welcome_subject.txt", context).strip()
    message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, [onboarding.client.email])
    message.attach_alternative(html, "text/html")
    # Anymail passes these to the ESP, so its tracking webhooks can be tied back to the onboarding.
    # One tag only: several ESPs (Postmark among them) accept a single tag per message.
    message.tags = ["welcome"]
    message.metadata = {
        "onboarding_id": str(onboarding.id),
        "checkout_session_id": onboarding.checkout_session_id,
        "service_id": service.service_id,
    }
    return message


def welcome_email_send(*, onboarding_id: int) -> str:
    """Send the onboarding's welcome email at most once; returns the step's status."""
    claimed = Onboarding.objects.filter(
        id=onboarding_id, email_status__in=[Step.PENDING, Step.RETRYING]
    ).update(email_status=Step.RUNNING, email_attempts=F("email_attempts") + 1, updated=timezone.now())
    onboarding = Onboarding.objects.select_related("client__user", "service").get(id=onboarding_id)
    if not claimed:
        return onboarding.email_status

    try:
        message = welcome_email_build(onboarding, user=client_portal_user_ensure(client=onboarding.client))
        message.send()
    except AnymailRecipientsRefused as exc:
        return welcome_email_record_refused(onboarding, error=exc)
    except (AnymailAPIError, smtplib.SMTPException, OSError) as exc:
        status = welcome_email_record_failure(onboarding, error=exc)
    else:
        status = welcome_email_record_sent(onboarding, message=message)
    onboarding_finish_if_done(onboarding_id=onboarding_id)
    return status


def welcome_email_record_sent(onboarding: Onboarding, *, message: EmailMultiAlternatives) -> str:
    """Record the send and the ESP's message id (Anymail backends set anymail_status)."""
    anymail_status = getattr(message, "anymail_status", None)
    Onboarding.objects.filter(id=onboarding.id).update(
        email_status=Step.DONE,
        email_sent_at=timezone.now(),
        email_message_id=(anymail_status.message_id if anymail_status else None) or "",
        email_last_error="",
        updated=timezone.now(),
    )
    logger.info("Welcome email for onboarding %s sent to %s", onboarding.id, onboarding.client.email)
    activity_record(
        kind=Kind.EMAIL,
        summary=f"Welcome email sent to {onboarding.client.email}",
        detail=f"Subject: {message.subject}",
        onboarding=onboarding,
    )
    return Step.DONE


def welcome_email_record_refused(onboarding: Onboarding, *, error: Exception) -> str:
    """The ESP refused the recipient for good: hold the onboarding for staff to fix the address."""
    logger.warning("Welcome email for onboarding %s refused: %s", onboarding.id, error)
    Onboarding.objects.filter(id=onboarding.id).update(
        email_status=Step.REFUSED,
        email_last_error=f"{type(error).__name__}: {error}",
        status=Onboarding.Status.HELD,
        held_reason=Onboarding.HeldReason.EMAIL_REFUSED,
        held_detail=f"The email provider refused {onboarding.client.email}.",
        updated=timezone.now(),
    )
    activity_record(
        kind=Kind.EMAIL,
        summary=f"Welcome email refused for {onboarding.client.email}; held for review",
        detail=str(error),
        onboarding=onboarding,
    )
    return Step.REFUSED


def welcome_email_record_failure(onboarding: Onboarding, *, error: Exception) -> str:
    """A transient ESP or network error: retry with backoff, or give up after MAX_ATTEMPTS."""
    attempts = onboarding.email_attempts  # already counts this attempt (read after the claim)
    logger.warning("Welcome email for onboarding %s failed (attempt %s): %s", onboarding.id, attempts, error)
    status = Step.FAILED if attempts >= MAX_ATTEMPTS else Step.RETRYING
    # Status and schedule together, so the email never waits for a retry that does not exist.
    with transaction.atomic():
        Onboarding.objects.filter(id=onboarding.id).update(
            email_status=status, email_last_error=f"{type(error).__name__}: {error}", updated=timezone.now()
        )
        if status == Step.RETRYING:
            retry_schedule(func=EMAIL_TASK, arg=onboarding.id, attempts=attempts)
    outcome = "giving up" if status == Step.FAILED else "will retry"
    activity_record(
        kind=Kind.EMAIL,
        summary=f"Welcome email attempt {attempts} failed; {outcome}",
        detail=f"{type(error).__name__}: {error}",
        onboarding=onboarding,
    )
    return status


def welcome_email_requeue(*, onboarding_id: int, from_statuses) -> bool:
    """Set the email step back to pending and queue it, if it is in one of `from_statuses` and the
    onboarding has a client; False otherwise. The task claims the step, so it is sent once."""
    queued = Onboarding.objects.filter(
        id=onboarding_id, client__isnull=False, email_status__in=from_statuses
    ).update(email_status=Step.PENDING, updated=timezone.now())
    if queued:
        enqueue_transactionally(EMAIL_TASK, onboarding_id)
    return bool(queued)
