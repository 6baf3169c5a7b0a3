"""The welcome email: a portal user with no usable password and a one-time link to set one."""

import logging
import smtplib
from collections.abc import Iterable
from email.utils import parseaddr

from anymail.exceptions import AnymailAPIError, AnymailInvalidAddress, AnymailRecipientsRefused
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.template.loader import render_to_string, select_template
from django.utils import timezone

from core.locks import lock_name_for_transaction
from core.queue import enqueue_transactionally
from core.retry import abandoned_before, max_attempts, retry_schedule
from provisioning.links import portal_url, set_password_url

from ..models import Client, Onboarding, StaffAlert
from .activity import Kind, activity_record
from .email_tracking import email_events_apply_pending
from .onboarding import EMAIL_TASK, onboarding_alert, onboarding_finish_if_done

logger = logging.getLogger(__name__)

Step = Onboarding.StepStatus
Held = Onboarding.HeldReason


def onboarding_client(onboarding: Onboarding) -> Client:
    """The onboarding's client: the email step exists only once onboarding_start has set it."""
    assert onboarding.client is not None
    return onboarding.client


class PortalLoginConflict(Exception):
    """The client's email already names a login that is not theirs (staff, or another client)."""


def client_portal_user_ensure(*, client: Client) -> User:
    """The client's portal login (username = email), created with no usable password."""
    if client.user is not None:
        return client.user
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(
        username=client.email,
        # Created with no usable password (what set_unusable_password() stores), in the one INSERT.
        defaults={"email": client.email, "is_staff": False, "password": make_password(None)},
    )
    if not created and (user.is_staff or user.is_superuser):
        # Never hand a staff account's password reset to whoever paid with that address.
        raise PortalLoginConflict(f"{client.email} belongs to a staff account; not linking it to a client.")
    if not created and Client.objects.filter(user=user).exclude(id=client.id).exists():
        raise PortalLoginConflict(f"{client.email} is the portal login of another client.")
    Client.objects.filter(id=client.id).update(user=user)
    client.user = user
    return user


def welcome_email_build(onboarding: Onboarding, *, user: User) -> EmailMultiAlternatives:
    """Text and HTML welcome email; templates can be overridden per service."""
    service, client = onboarding.service, onboarding_client(onboarding)
    assert service is not None  # set with the client by onboarding_start
    context = {
        "client": client,
        "service": service,
        "set_password_url": set_password_url(user),
        "portal_url": portal_url("home"),
        "link_valid_days": max(1, settings.PASSWORD_RESET_TIMEOUT // 86400),
    }
    names = [f"emails/welcome/{service.service_id}", "emails/welcome"]
    text = select_template([f"{n}.txt" for n in names]).render(context)
    html = select_template([f"{n}.html" for n in names]).render(context)
    # A subject is plain text (the template turns autoescaping off), on one line.
    subject = service.welcome_email_subject or render_to_string("emails/welcome_subject.txt", context)
    subject = " ".join(subject.split())
    message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, [client.email])
    message.attach_alternative(html, "text/html")
    # Anymail passes these to the ESP, so its tracking webhooks can be tied back to the onboarding.
    # One tag only: several ESPs (Postmark among them) accept a single tag per message.
    message.extra_headers = {"Message-ID": welcome_email_message_id(onboarding)}
    message.tags = ["welcome"]  # type: ignore[attr-defined]  # Anymail's (anymail ships no types)
    message.metadata = {  # type: ignore[attr-defined]
        "onboarding_id": str(onboarding.id),
        "checkout_session_id": onboarding.checkout_session_id,
        "service_id": service.service_id,
    }
    return message


def welcome_email_message_id(onboarding: Onboarding) -> str:
    """The same Message-ID for every attempt of one send, so that mail clients collapse the rare
    duplicate of a send taken over from a worker that died after handing it to the ESP. A resend
    staff ask for is a new message, with a new id."""
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "localhost"
    return f"<welcome.{onboarding.id}.{onboarding.email_resends}@{domain}>"


def welcome_email_send(*, onboarding_id: int) -> str:
    """Send the onboarding's welcome email once; returns the step's status.

    Claims a pending or retrying step, or takes over one whose worker died mid-send (running since
    before the queue's timeout). Every outcome is recorded: sent, refused (held for staff), a
    transient failure (retried with backoff) or any other error (retried, then failed for staff).
    """
    now = timezone.now()
    claimable = Q(email_status__in=[Step.PENDING, Step.RETRYING]) | Q(
        email_status=Step.RUNNING, email_claimed_at__lt=abandoned_before(now)
    )
    claimed = Onboarding.objects.filter(claimable, id=onboarding_id).update(
        email_status=Step.RUNNING, email_attempts=F("email_attempts") + 1, email_claimed_at=now, updated=now
    )
    onboarding = Onboarding.objects.select_related("client__user", "service").get(id=onboarding_id)
    if not claimed:
        return onboarding.email_status

    try:
        message = welcome_email_build(
            onboarding, user=client_portal_user_ensure(client=onboarding_client(onboarding))
        )
        message.send()
    except (AnymailRecipientsRefused, AnymailInvalidAddress) as exc:
        return welcome_email_record_refused(onboarding, error=exc)
    except PortalLoginConflict as exc:
        return welcome_email_record_refused(onboarding, error=exc, reason=Held.EMAIL_LOGIN_CONFLICT)
    except (AnymailAPIError, smtplib.SMTPException, OSError) as exc:
        status = welcome_email_record_failure(onboarding, error=exc)
    except Exception as exc:  # noqa: BLE001 - a bug or a bad row: recorded for staff, never left running
        logger.exception("Welcome email for onboarding %s raised", onboarding.id)
        status = welcome_email_record_failure(onboarding, error=exc)
    else:
        status = welcome_email_record_sent(onboarding, message=message)
    onboarding_finish_if_done(onboarding_id=onboarding_id)
    return status


def _this_claim(onboarding: Onboarding) -> QuerySet[Onboarding]:
    """The onboarding's row while it is still claimed by this attempt: a takeover or a staff resend
    since then owns the step, and this attempt's outcome must not overwrite theirs."""
    return Onboarding.objects.filter(
        id=onboarding.id, email_status=Step.RUNNING, email_attempts=onboarding.email_attempts
    )


def welcome_email_record_sent(onboarding: Onboarding, *, message: EmailMultiAlternatives) -> str:
    """Record the send and the ESP's message id (Anymail backends set anymail_status)."""
    anymail_status = getattr(message, "anymail_status", None)
    message_id = (anymail_status.message_id if anymail_status else None) or ""
    with transaction.atomic():
        # Serialised with tracking events for this message id, so none slips between the two.
        if message_id:
            lock_name_for_transaction(f"email-message:{message_id}")
        recorded = _this_claim(onboarding).update(
            email_status=Step.DONE,
            email_sent_at=timezone.now(),
            email_message_id=message_id,
            email_last_error="",
            email_delivery=Onboarding.EmailDelivery.SENT,
            email_delivery_at=timezone.now(),
            email_delivery_detail="",
            updated=timezone.now(),
        )
        logger.info("Welcome email for onboarding %s sent", onboarding.id)
        activity_record(
            kind=Kind.EMAIL,
            summary=f"Welcome email sent to {onboarding_client(onboarding).email}",
            detail=f"Subject: {message.subject}",
            onboarding=onboarding,
        )
        if recorded:
            onboarding.email_status, onboarding.email_message_id = Step.DONE, message_id
            # Tracking events that beat the send here (fast ESPs do) are applied now.
            email_events_apply_pending(onboarding=onboarding)
    return Step.DONE


HELD_DETAIL = {
    Held.EMAIL_REFUSED: "The email provider refused {email}, or it is not a valid address.",
    Held.EMAIL_LOGIN_CONFLICT: "{email} is already the login of a staff account or another client.",
}


def welcome_email_record_refused(
    onboarding: Onboarding, *, error: Exception, reason: str = Held.EMAIL_REFUSED
) -> str:
    """The address cannot be used as it is: hold the onboarding for staff to fix it, then approve."""
    # The error's text names the address: it is kept on the onboarding for staff, not in the logs.
    logger.warning(
        "Welcome email for onboarding %s not sent (%s): %s", onboarding.id, reason, type(error).__name__
    )
    _this_claim(onboarding).update(
        email_status=Step.REFUSED,
        email_last_error=f"{type(error).__name__}: {error}",
        status=Onboarding.Status.HELD,
        held_reason=reason,
        held_detail=HELD_DETAIL[Held(reason)].format(email=onboarding_client(onboarding).email),
        updated=timezone.now(),
    )
    activity_record(
        kind=Kind.EMAIL,
        summary=f"Welcome email not sent to {onboarding_client(onboarding).email}; held for review",
        detail=str(error),
        onboarding=onboarding,
    )
    onboarding_alert(onboarding, kind=StaffAlert.Kind.HELD, what=f"held: {Held(reason).label}")
    return Step.REFUSED


def welcome_email_record_failure(onboarding: Onboarding, *, error: Exception) -> str:
    """A transient ESP or network error: retry with backoff, or give up after the retry window."""
    attempts = onboarding.email_attempts  # already counts this attempt (read after the claim)
    logger.warning(
        "Welcome email for onboarding %s failed (attempt %s): %s",
        onboarding.id,
        attempts,
        type(error).__name__,
    )
    status = Step.FAILED if attempts >= max_attempts() else Step.RETRYING
    # Status and schedule together, so the email never waits for a retry that does not exist.
    with transaction.atomic():
        still_ours = _this_claim(onboarding).update(
            email_status=status, email_last_error=f"{type(error).__name__}: {error}", updated=timezone.now()
        )
        if still_ours and status == Step.RETRYING:
            retry_schedule(func=EMAIL_TASK, arg=onboarding.id, attempts=attempts)
    outcome = "giving up" if status == Step.FAILED else "will retry"
    activity_record(
        kind=Kind.EMAIL,
        summary=f"Welcome email attempt {attempts} failed; {outcome}",
        detail=f"{type(error).__name__}: {error}",
        onboarding=onboarding,
    )
    return status


def welcome_email_requeue(*, onboarding_id: int, from_statuses: Iterable[str]) -> bool:
    """Set the email step back to pending and queue it, if it is in one of `from_statuses` and the
    onboarding has a client; False otherwise. The task claims the step, so it is sent once."""
    queued = Onboarding.objects.filter(
        id=onboarding_id, client__isnull=False, email_status__in=from_statuses
    ).update(email_status=Step.PENDING, updated=timezone.now())
    if queued:
        enqueue_transactionally(EMAIL_TASK, onboarding_id)
    return bool(queued)
