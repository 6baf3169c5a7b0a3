"""Services for StripeWebhookJob: create with the trigger, run in the worker, requeue lost ones."""

import logging
from traceback import format_exc
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from djstripe.models import Event, WebhookEventTrigger

from core.locks import lock_name_for_transaction
from core.log_context import log_context_set
from core.queue import enqueue_transactionally
from core.retry import abandoned_before, max_attempts, retry_schedule

from .models import StripeWebhookJob
from .signals import webhook_job_failed, webhook_job_requeued
from .stripe_client import stripe_api_key
from .stripe_json import stripe_id_of

logger = logging.getLogger(__name__)

PROCESS_TASK = "stripe_events.tasks.webhook_job_process"


def webhook_job_create(*, trigger: WebhookEventTrigger, event: dict[str, Any]) -> StripeWebhookJob:
    """Record a verified delivery for the worker and queue it in the same transaction as the trigger."""
    job = StripeWebhookJob.objects.create(trigger=trigger, event_id=event["id"], event_type=event["type"])
    enqueue_transactionally(PROCESS_TASK, job.id)
    return job


def webhook_job_run(*, job_id: int) -> str:
    """Process the job's event with dj-stripe (Stripe retrieval, mirror sync, our receivers).

    Returns the job's resulting status. Safe to call twice: only a queued or retrying job is
    claimed, and duplicate deliveries of one event are serialised so it is processed once.
    """
    abandoned = Q(status=StripeWebhookJob.Status.RUNNING, updated__lt=abandoned_before())
    claimable = Q(status__in=[StripeWebhookJob.Status.QUEUED, StripeWebhookJob.Status.RETRYING])
    claimed = StripeWebhookJob.objects.filter(claimable | abandoned, id=job_id).update(
        status=StripeWebhookJob.Status.RUNNING,
        attempts=F("attempts") + 1,
        next_attempt_at=None,
        updated=timezone.now(),
    )
    job = StripeWebhookJob.objects.select_related("trigger").get(id=job_id)
    log_context_set(event_id=job.event_id, job_id=job.id)  # on every line this processing logs
    if not claimed:
        return job.status

    trigger = job.trigger
    try:
        with transaction.atomic():
            trigger.event = stripe_event_process(data=trigger.json_body)
            trigger.processed, trigger.exception, trigger.traceback = True, "", ""
            trigger.save(update_fields=["event", "processed", "exception", "traceback", "updated"])
    except Exception as exc:  # noqa: BLE001 - any failure is recorded and retried, never dropped
        return webhook_job_record_failure(job=job, trigger=trigger, error=exc)

    job.status = StripeWebhookJob.Status.SUCCEEDED
    job.last_error = ""
    job.save(update_fields=["status", "last_error", "updated"])
    return job.status


def stripe_event_process(*, data: dict[str, Any]) -> Event:
    """Process a Stripe event with dj-stripe (retrieve, sync the mirror, fire our receivers) once.

    Deliveries of the same event (duplicates, a reconciliation catch-up) wait on one lock per event
    id, so the later ones find the Event stored and do nothing. Events about one payment (its
    checkout, charge.refunded and refund.* for one refund, charge.dispute.*) are processed one at a
    time: dj-stripe mirrors the same refunds and balance transactions for each, and two workers
    inserting them in different orders deadlocked (seen in bench/ledger_truth.py: a retry 30 s later).
    """
    with transaction.atomic():
        lock_name_for_transaction(f"stripe-event:{data['id']}")
        payment = stripe_payment_of(data.get("data", {}).get("object") or {})
        if payment:
            lock_name_for_transaction(f"stripe-payment:{payment}")
        return Event.process(data, api_key=stripe_api_key(livemode=data.get("livemode")))


PAYMENT_OBJECTS = {"checkout.session", "payment_intent", "charge", "refund", "dispute"}


def stripe_payment_of(obj: dict[str, Any]) -> str:
    """The payment a Stripe object is about: its payment intent, else its charge ("" if none)."""
    kind = obj.get("object")
    if kind not in PAYMENT_OBJECTS:
        return ""
    if kind == "payment_intent":
        return stripe_id_of(obj)
    return stripe_id_of(obj.get("payment_intent")) or stripe_id_of(
        obj if kind == "charge" else obj.get("charge")
    )


def webhook_job_record_failure(
    *, job: StripeWebhookJob, trigger: WebhookEventTrigger, error: Exception
) -> str:
    """Keep the error on the trigger and the job; retry with backoff or give up for staff."""
    logger.warning("Processing Stripe event %s failed (attempt %s): %s", job.event_id, job.attempts, error)
    trigger.exception = str(error)[:128]
    trigger.traceback = format_exc()
    trigger.save(update_fields=["exception", "traceback", "updated"])

    job.last_error = f"{type(error).__name__}: {error}"
    # Status and schedule together, so a job never waits for a retry that does not exist.
    with transaction.atomic():
        if job.attempts >= max_attempts():  # retried for RETRY_WINDOW_HOURS, then left for staff
            job.status = StripeWebhookJob.Status.FAILED
            logger.error("Giving up on Stripe event %s after %s attempts", job.event_id, job.attempts)
            webhook_job_failed.send(sender=StripeWebhookJob, job=job)
        else:
            job.status = StripeWebhookJob.Status.RETRYING
            job.next_attempt_at = retry_schedule(func=PROCESS_TASK, arg=job.id, attempts=job.attempts)
        job.save(update_fields=["status", "last_error", "next_attempt_at", "updated"])
    return job.status


def webhook_job_retry_now(*, job: StripeWebhookJob) -> bool:
    """Staff door: send a failed or waiting job back to the queue now. False if not retryable."""
    requeued = StripeWebhookJob.objects.filter(
        id=job.id, status__in=[StripeWebhookJob.Status.FAILED, StripeWebhookJob.Status.RETRYING]
    ).update(status=StripeWebhookJob.Status.QUEUED, next_attempt_at=None)
    if requeued:
        enqueue_transactionally(PROCESS_TASK, job.id)
    return bool(requeued)


@transaction.atomic
def webhook_job_reprocess(*, job: StripeWebhookJob, actor: AbstractBaseUser | AnonymousUser) -> bool:
    """Staff door: send the job back to the worker now and tell listeners who did it (for the record)."""
    requeued = webhook_job_retry_now(job=job)
    if requeued:
        webhook_job_requeued.send(sender=StripeWebhookJob, job=job, actor=actor)
    return requeued
