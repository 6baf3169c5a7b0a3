"""What the ESP says happened to a welcome email (Anymail tracking webhooks, any ESP).

Each event is recorded once (by the ESP's event id, else by message, type and time) and then, if it
is about the onboarding's current send, moves the email's delivery status on: delivered, deferred,
or a bad end (bounced, rejected, complained, unsubscribed) that holds the onboarding for staff to fix
the address and resend. Opens and clicks go on the timeline only.

Order does not matter: an event may arrive before the send is recorded (it waits, unlinked, and
welcome_email_record_sent applies it), and a bad end is never undone by a "delivered" of the same
message, nor by any event about an older send (those only go on the timeline).
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from core.locks import lock_name_for_transaction

from ..models import EmailEvent, Onboarding, StaffAlert
from .activity import Kind, activity_record
from .onboarding import onboarding_alert

logger = logging.getLogger(__name__)

Delivery = Onboarding.EmailDelivery
Status = Onboarding.Status
Step = Onboarding.StepStatus

# Anymail's normalised event types (anymail.signals.EventType) -> the welcome email's delivery status.
DELIVERY_FOR_EVENT = {
    "delivered": Delivery.DELIVERED,
    "deferred": Delivery.DEFERRED,
    "bounced": Delivery.BOUNCED,
    "rejected": Delivery.REJECTED,
    "failed": Delivery.REJECTED,  # the ESP could not send it at all
    "complained": Delivery.COMPLAINED,
    "unsubscribed": Delivery.UNSUBSCRIBED,
}
BAD = frozenset({Delivery.BOUNCED, Delivery.REJECTED, Delivery.COMPLAINED, Delivery.UNSUBSCRIBED})
# A status only moves up this ladder; the bad ends are final for a message.
RANK = {"": 0, Delivery.SENT: 0, Delivery.DEFERRED: 1, Delivery.DELIVERED: 2} | dict.fromkeys(BAD, 3)
# Statuses a bounce may hold (a rejected or already held onboarding keeps its status).
HOLDABLE = (Status.IN_PROGRESS, Status.ONBOARDED, Status.FAILED)
EVENT_WORDS = {
    "queued": "queued by the ESP",
    "sent": "sent by the ESP",
    "delivered": "delivered",
    "deferred": "deferred (the ESP retries)",
    "bounced": "bounced",
    "rejected": "rejected by the ESP",
    "failed": "failed at the ESP",
    "complained": "marked as spam",
    "unsubscribed": "unsubscribed",
    "opened": "opened",
    "clicked": "link clicked",
}


@dataclass(frozen=True)
class TrackingFacts:
    """The values of one Anymail tracking event this app uses."""

    esp: str
    event_type: str
    message_id: str
    event_id: str = ""
    timestamp: datetime | None = None
    recipient: str = ""
    reject_reason: str = ""
    description: str = ""
    mta_response: str = ""
    onboarding_ref: str = ""  # metadata["onboarding_id"], as the welcome email sent it


def esp_reason(event: EmailEvent) -> str:
    """The ESP's reason, for staff: its description and the receiving server's answer."""
    return " — ".join(part for part in (event.description, event.mta_response) if part)


def email_event_record(*, facts: TrackingFacts) -> EmailEvent | None:
    """Record one tracking event once and apply it; None when it was a duplicate."""
    with transaction.atomic():
        # Serialised with the send being recorded for the same message id (welcome_email_record_sent).
        if facts.message_id:
            lock_name_for_transaction(f"email-message:{facts.message_id}")
        onboarding = tracked_onboarding(facts)
        try:
            with transaction.atomic():
                event = EmailEvent.objects.create(
                    onboarding=onboarding,
                    esp=facts.esp[:40],
                    event_id=facts.event_id[:255],
                    message_id=facts.message_id[:255],
                    event_type=facts.event_type[:20],
                    timestamp=facts.timestamp,
                    recipient=facts.recipient[:254],
                    reject_reason=facts.reject_reason[:20],
                    description=facts.description,
                    mta_response=facts.mta_response,
                    received=timezone.now(),
                )
        except IntegrityError:
            logger.info("Duplicate %s %s tracking event ignored", facts.esp, facts.event_type)
            return None
        if onboarding is None:
            logger.info("%s %s event for an unrecorded message: kept for later", facts.esp, facts.event_type)
            return event
        email_event_timeline(event, onboarding=onboarding)
        email_event_apply(event, onboarding=onboarding)
    return event


def tracked_onboarding(facts: TrackingFacts) -> Onboarding | None:
    """The onboarding the event is about, locked: by the message id of its current send, else by
    the onboarding id the welcome email carried in its metadata."""
    query = Onboarding.objects.select_for_update(of=("self",)).select_related("client")
    if facts.message_id:
        onboarding = query.filter(email_message_id=facts.message_id).first()
        if onboarding is not None:
            return onboarding
    if facts.onboarding_ref.isdigit():
        return query.filter(id=int(facts.onboarding_ref)).first()
    return None


def email_events_apply_pending(*, onboarding: Onboarding) -> int:
    """The send was recorded: link and apply the events that arrived for its message id before it."""
    message_id = onboarding.email_message_id
    if not message_id:
        return 0
    waiting = EmailEvent.objects.filter(
        Q(onboarding__isnull=True) | Q(onboarding=onboarding), message_id=message_id, applied=False
    ).order_by("timestamp", "id")
    applied = 0
    for event in waiting:
        if event.onboarding_id is None:
            EmailEvent.objects.filter(id=event.id).update(onboarding=onboarding)
            event.onboarding = onboarding
            email_event_timeline(event, onboarding=onboarding)
        onboarding = (
            Onboarding.objects.select_for_update(of=("self",)).select_related("client").get(id=onboarding.id)
        )
        email_event_apply(event, onboarding=onboarding)
        applied += 1
    return applied


def email_event_apply(event: EmailEvent, *, onboarding: Onboarding) -> None:
    """Move the current send's delivery status on, if the event is about it and moves it up."""
    current = onboarding.email_status == Step.DONE and event.message_id == onboarding.email_message_id
    if not current:
        # An older send (or one superseded by a resend in flight), or a send not recorded yet:
        # its event stays unapplied; welcome_email_record_sent applies it if its send is recorded.
        return
    EmailEvent.objects.filter(id=event.id).update(applied=True)
    delivery = DELIVERY_FOR_EVENT.get(event.event_type)
    if delivery is None or RANK[delivery] <= RANK[onboarding.email_delivery]:
        return  # opens, clicks, …; or a "delivered" after a bounce, a "deferred" after "delivered"
    reason = esp_reason(event) or event.reject_reason
    changes = {
        "email_delivery": delivery,
        "email_delivery_at": event.timestamp or event.received,
        "email_delivery_detail": reason if delivery in BAD else "",
        "updated": timezone.now(),
    }
    hold = delivery in BAD and onboarding.status in HOLDABLE
    recipient = event.recipient or (onboarding.client.email if onboarding.client else "")
    held_detail = (
        f"The welcome email to {recipient} "
        f"{EVENT_WORDS.get(event.event_type, event.event_type)} ({event.esp}): "
        f"{reason or 'no reason given'}. Fix the client's email and resend."
    )
    if hold:
        changes |= {
            "status": Status.HELD,
            "held_reason": Onboarding.HeldReason.EMAIL_BOUNCED,
            "held_detail": held_detail,
        }
    Onboarding.objects.filter(id=onboarding.id).update(**changes)
    if hold:
        logger.warning("Onboarding %s held: welcome email %s", onboarding.id, event.event_type)
        activity_record(
            kind=Kind.ONBOARDING,
            summary="Held for review: welcome email bounced",
            detail=held_detail,
            onboarding=onboarding,
        )
        onboarding_alert(
            onboarding, kind=StaffAlert.Kind.HELD, what=f"held: {Onboarding.HeldReason.EMAIL_BOUNCED.label}"
        )


def email_event_timeline(event: EmailEvent, *, onboarding: Onboarding) -> None:
    """One timeline line per event (never the clicked URL: it is the one-time set-password link)."""
    # A recorded send with another id: the event is about an earlier one.
    older = onboarding.email_status == Step.DONE and event.message_id != onboarding.email_message_id
    words = EVENT_WORDS.get(event.event_type, event.event_type)
    recipient = f" ({event.recipient})" if event.recipient else ""
    activity_record(
        kind=Kind.EMAIL,
        summary=f"Welcome email {words}{recipient}, {event.esp}{' (an earlier send)' if older else ''}",
        detail=esp_reason(event),
        onboarding=onboarding,
    )
