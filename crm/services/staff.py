"""What staff do from the admin: approve or reject held onboardings, resend emails, retry, note.

Each is a service the admin's actions call; each is safe to run twice and records who did it.
"""

from django.db import transaction
from django.utils import timezone
from djstripe.models import Session

from core.locks import lock_name_for_transaction
from core.queue import enqueue_transactionally
from stripe_events.models import StripeWebhookJob

from ..models import Client, Onboarding
from .activity import Kind, activity_record
from .emails import welcome_email_requeue
from .onboarding import EMAIL_TASK, SessionFacts, onboarding_start
from .workspace_step import workspace_step_requeue

Status = Onboarding.Status
Held = Onboarding.HeldReason
Step = Onboarding.StepStatus

# Reasons an approval accepts for this one onboarding. The others need a fix first (add or
# activate the service, correct the client's currency), after which approval re-checks.
ACCEPTABLE_ON_APPROVAL = frozenset({Held.CURRENCY_NOT_ALLOWED, Held.LIVEMODE_MISMATCH})


@transaction.atomic
def onboarding_approve(*, onboarding: Onboarding, actor) -> str:
    """Resume a held onboarding from where it stopped; returns what happened, for the admin."""
    lock_name_for_transaction(f"checkout-session:{onboarding.checkout_session_id}")
    onboarding = Onboarding.objects.select_for_update().get(id=onboarding.id)
    if onboarding.status != Status.HELD:
        return f"Nothing to do: {onboarding.checkout_session_id} is not held."

    if onboarding.held_reason == Held.EMAIL_REFUSED:
        # The address was fixed on the client (or the provider's block lifted): send again.
        onboarding.status, onboarding.held_reason, onboarding.email_status = (
            Status.IN_PROGRESS,
            "",
            Step.PENDING,
        )
        onboarding.save(update_fields=["status", "held_reason", "email_status", "updated"])
        enqueue_transactionally(EMAIL_TASK, onboarding.id)
        activity_record(
            kind=Kind.STAFF,
            summary="Approved: welcome email queued again",
            onboarding=onboarding,
            actor=actor,
        )
        return f"Approved {onboarding.checkout_session_id}: welcome email queued again."

    facts = SessionFacts.from_session(Session.objects.get(id=onboarding.checkout_session_id))
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


@transaction.atomic
def onboarding_reject(*, onboarding: Onboarding, actor, note: str) -> bool:
    """Close a held onboarding without onboarding anyone; False if it was not held."""
    rejected = Onboarding.objects.filter(id=onboarding.id, status=Status.HELD).update(
        status=Status.REJECTED, held_detail=note, updated=timezone.now()
    )
    if rejected:
        activity_record(kind=Kind.STAFF, summary="Rejected", detail=note, onboarding=onboarding, actor=actor)
    return bool(rejected)


@transaction.atomic
def welcome_email_resend(*, onboarding: Onboarding, actor) -> bool:
    """Queue the welcome email again, with a fresh set-password link; False if already queued."""
    resendable = [Step.DONE, Step.FAILED, Step.SKIPPED, Step.REFUSED]
    queued = welcome_email_requeue(onboarding_id=onboarding.id, from_statuses=resendable)
    if queued:
        activity_record(
            kind=Kind.STAFF, summary="Welcome email resend requested", onboarding=onboarding, actor=actor
        )
    return queued


@transaction.atomic
def provisioning_retry(*, onboarding: Onboarding, actor) -> bool:
    """Queue the workspace step again now; False if it is not failed or waiting."""
    retried = workspace_step_requeue(onboarding=onboarding)
    if retried:
        activity_record(
            kind=Kind.STAFF, summary="Workspace provisioning retried", onboarding=onboarding, actor=actor
        )
    return retried


def webhook_reprocess_record(*, job: StripeWebhookJob, actor) -> None:
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


def client_note_add(*, client: Client, actor, text: str) -> None:
    """A staff note on the client's timeline."""
    activity_record(kind=Kind.NOTE, summary=text[:300], detail=text, client=client, actor=actor)
