"""What staff do from the admin: approve or reject held onboardings, resend emails, retry, note.

Each is a service the admin's actions call; each is safe to run twice and records who did it.
"""

import dataclasses

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.locks import lock_name_for_transaction
from stripe_events.models import StripeWebhookJob

from ..models import Client, Onboarding, Service
from .activity import Kind, activity_record
from .emails import welcome_email_requeue
from .invoices import onboarding_facts_load
from .onboarding import SessionFacts, normalise_email, onboarding_start
from .workspace_step import workspace_step_requeue

Status = Onboarding.Status
Held = Onboarding.HeldReason
Step = Onboarding.StepStatus

# Reasons an approval accepts for this one onboarding. The others need a fix first (add or
# activate the service, correct the client's currency), after which approval re-checks.
ACCEPTABLE_ON_APPROVAL = frozenset({Held.CURRENCY_NOT_ALLOWED, Held.LIVEMODE_MISMATCH})
# Holds over the client's email address: staff fix the address on the client, then approve or resend.
EMAIL_HOLDS = frozenset({Held.EMAIL_REFUSED, Held.EMAIL_LOGIN_CONFLICT, Held.EMAIL_BOUNCED})


@transaction.atomic
def onboarding_approve(
    *, onboarding: Onboarding, actor: User | None, service: Service | None = None, email: str = ""
) -> str:
    """Resume a held onboarding from where it stopped; returns what happened, for the admin.

    Staff may supply what the session lacked: the `service` to provision (a missing, unknown or
    inactive serviceId) and the client's `email` (none on the session). Both are recorded on the
    onboarding and the timeline, and used instead of the session's values."""
    lock_name_for_transaction(f"checkout-session:{onboarding.checkout_session_id}")
    onboarding = Onboarding.objects.select_for_update().get(id=onboarding.id)
    if onboarding.status != Status.HELD:
        return f"Nothing to do: {onboarding.checkout_session_id} is not held."

    if onboarding.held_reason in EMAIL_HOLDS:
        # The address was fixed on the client (or the provider's block lifted): send again, as a
        # new message (a new Message-ID), so the earlier send's late reports are told apart.
        Onboarding.objects.filter(id=onboarding.id).update(email_resends=F("email_resends") + 1)
        welcome_email_release_hold(onboarding=onboarding)
        activity_record(
            kind=Kind.STAFF,
            summary="Approved: welcome email queued again",
            onboarding=onboarding,
            actor=actor,
        )
        return f"Approved {onboarding.checkout_session_id}: welcome email queued again."

    facts = onboarding_facts_load(onboarding)  # a session's, or a stand-alone invoice's
    facts = onboarding_facts_supplied(onboarding, facts=facts, actor=actor, service=service, email=email)
    onboarding = onboarding_start(onboarding, facts=facts, accepted=ACCEPTABLE_ON_APPROVAL)
    if onboarding.status == Status.HELD:
        activity_record(
            kind=Kind.STAFF,
            summary=f"Approval tried; still held: {onboarding.get_held_reason_display()}",
            detail=onboarding.held_detail,
            onboarding=onboarding,
            actor=actor,
        )
        return f"Still held: {onboarding.checkout_session_id}. {onboarding.held_detail} Fix that first."
    activity_record(
        kind=Kind.STAFF, summary="Approved; onboarding resumed", onboarding=onboarding, actor=actor
    )
    return f"Approved {onboarding.checkout_session_id}: onboarding resumed."


def onboarding_facts_supplied(
    onboarding: Onboarding, *, facts: SessionFacts, actor: User | None, service: Service | None, email: str
) -> SessionFacts:
    """The session's facts with what staff supplied (or supplied at an earlier approval) in their place."""
    email = normalise_email(email)
    if service is not None and service.service_id != onboarding.service_ref:
        activity_record(
            kind=Kind.STAFF,
            summary=f"Service set by staff: {service.name} (session: {onboarding.service_ref or 'none'})",
            onboarding=onboarding,
            actor=actor,
        )
        onboarding.service_ref = service.service_id
    if email and email != onboarding.customer_email:
        activity_record(
            kind=Kind.STAFF,
            summary=f"Client email set by staff (session said {onboarding.customer_email or 'nothing'})",
            onboarding=onboarding,
            actor=actor,
        )
        onboarding.customer_email = email
    onboarding.save(update_fields=["service_ref", "customer_email", "updated"])
    # Staff's values stay in force for later approvals: the onboarding row keeps them.
    return dataclasses.replace(
        facts,
        service_ref=onboarding.service_ref or facts.service_ref,
        email=onboarding.customer_email or facts.email,
    )


@transaction.atomic
def onboarding_reject(*, onboarding: Onboarding, actor: User | None, note: str) -> bool:
    """Close a held onboarding without onboarding anyone; False if it was not held."""
    rejected = Onboarding.objects.filter(id=onboarding.id, status=Status.HELD).update(
        status=Status.REJECTED, held_detail=note, updated=timezone.now()
    )
    if rejected:
        activity_record(kind=Kind.STAFF, summary="Rejected", detail=note, onboarding=onboarding, actor=actor)
    return bool(rejected)


def welcome_email_release_hold(*, onboarding: Onboarding) -> None:
    """An onboarding held over its email address goes back in progress with the email queued."""
    Onboarding.objects.filter(id=onboarding.id, status=Status.HELD, held_reason__in=EMAIL_HOLDS).update(
        status=Status.IN_PROGRESS, held_reason="", updated=timezone.now()
    )
    welcome_email_requeue(onboarding_id=onboarding.id, from_statuses=list(Step))
    onboarding.refresh_from_db()


@transaction.atomic
def welcome_email_resend(*, onboarding: Onboarding, actor: User | None) -> bool:
    """Queue the welcome email again, with a fresh set-password link, from whatever state its step
    is in (a send still running or waiting to retry included: staff asked for a new message);
    False when there is nothing to send to yet (no client) or it is queued already."""
    onboarding = Onboarding.objects.select_for_update().get(id=onboarding.id)
    if onboarding.client_id is None or onboarding.email_status == Step.PENDING:
        return False
    Onboarding.objects.filter(id=onboarding.id).update(email_resends=F("email_resends") + 1)
    if onboarding.status == Status.HELD and onboarding.held_reason in EMAIL_HOLDS:
        welcome_email_release_hold(onboarding=onboarding)
    else:
        welcome_email_requeue(onboarding_id=onboarding.id, from_statuses=list(Step))
    activity_record(
        kind=Kind.STAFF, summary="Welcome email resend requested", onboarding=onboarding, actor=actor
    )
    return True


@transaction.atomic
def provisioning_retry(*, onboarding: Onboarding, actor: User | None) -> bool:
    """Queue the workspace step again now; False if it is not failed or waiting."""
    retried = workspace_step_requeue(onboarding=onboarding)
    if retried:
        activity_record(
            kind=Kind.STAFF, summary="Workspace provisioning retried", onboarding=onboarding, actor=actor
        )
    return retried


def webhook_reprocess_record(*, job: StripeWebhookJob, actor: User | None) -> None:
    """Put staff's reprocessing of a webhook job on the record (stripe_events did the requeue)."""
    # On the timeline of the checkout the event is about, when it is one we onboarded.
    session_id = job.trigger.json_body.get("data", {}).get("object", {}).get("id")
    onboarding = Onboarding.objects.filter(checkout_session_id=session_id).first() if session_id else None
    activity_record(
        kind=Kind.STAFF,
        summary=f"Stripe event {job.event_id} ({job.event_type}) sent back to the worker",
        onboarding=onboarding,
        actor=actor,
    )


def client_note_add(*, client: Client, actor: User | None, text: str) -> None:
    """A staff note on the client's timeline."""
    activity_record(kind=Kind.NOTE, summary=text[:300], detail=text, client=client, actor=actor)
