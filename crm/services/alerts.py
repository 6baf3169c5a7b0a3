"""Staff alerts: held onboardings, steps that gave up, disputes, churn, webhooks that gave up.

Raising an alert only writes a row (in the caller's transaction, inside a savepoint, so it can never
fail the pipeline). The flush task, scheduled every minute, puts every waiting alert of a kind into
one message once the kind's last message is older than STAFF_ALERT_WINDOW, and delivers it to
SLACK_WEBHOOK_URL (an incoming webhook) and STAFF_ALERT_EMAILS. A channel that fails is retried at the
next flush and logged; the other channels are not held back by it.
"""

import logging
from datetime import datetime, timedelta

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.db import DatabaseError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from ..models import StaffAlert, StaffAlertBatch

logger = logging.getLogger(__name__)

Kind = StaffAlert.Kind
ITEMS_PER_MESSAGE = 5
MAX_DELIVERY_ATTEMPTS = 60  # one a minute: an hour of a channel being down, then it is left logged
SLACK_TIMEOUT_SECONDS = 10


def admin_url(viewname: str, *args: object) -> str:
    """An absolute link to an admin page, for messages read outside the app."""
    return f"{settings.SITE_URL}{reverse(viewname, args=args)}"


def staff_alert_raise(*, kind: str, summary: str, url: str) -> StaffAlert | None:
    """Record an alert for the next batch; never raises (an alert must not fail what raised it)."""
    if not alert_channels():
        return None
    try:
        with transaction.atomic():
            return StaffAlert.objects.create(kind=kind, summary=summary[:300], url=url[:500])
    except DatabaseError:
        logger.exception("Could not record a %s staff alert", kind)
        return None


def alert_channels() -> list[str]:
    channels = []
    if settings.SLACK_WEBHOOK_URL:
        channels.append("slack")
    if settings.STAFF_ALERT_EMAILS:
        channels.append("email")
    return channels


def staff_alerts_flush(*, now: datetime | None = None) -> int:
    """Batch what waits (one message per kind per window) and deliver pending batches; returns
    how many batches were delivered to every channel."""
    now = now or timezone.now()
    window = timedelta(seconds=settings.STAFF_ALERT_WINDOW)
    waiting = StaffAlert.objects.filter(batch__isnull=True).values_list("kind", flat=True).distinct()
    for kind in set(waiting):
        last = StaffAlertBatch.objects.filter(kind=kind).order_by("-created").first()
        if last is None or now - last.created >= window:
            staff_alert_batch_create(kind=kind, now=now)
    delivered = 0
    pending = StaffAlertBatch.objects.filter(sent_at__isnull=True, attempts__lt=MAX_DELIVERY_ATTEMPTS)
    for batch in pending.order_by("created"):
        delivered += staff_alert_batch_deliver(batch=batch)
    return delivered


@transaction.atomic
def staff_alert_batch_create(*, kind: str, now: datetime) -> StaffAlertBatch | None:
    """Gather every waiting alert of `kind` into one batch (a concurrent flush skips them)."""
    alerts = list(
        StaffAlert.objects.select_for_update(skip_locked=True).filter(kind=kind, batch__isnull=True)
    )
    if not alerts:
        return None
    batch = StaffAlertBatch.objects.create(
        kind=kind,
        count=len(alerts),
        text=batch_text(kind, alerts),
        channels_pending=alert_channels(),
        created=now,
    )
    StaffAlert.objects.filter(id__in=[a.id for a in alerts]).update(batch=batch)
    return batch


def batch_text(kind: str, alerts: list[StaffAlert]) -> str:
    lines = [f"{Kind(kind).label}: {len(alerts)}"]
    lines += [f"- {alert.summary}: {alert.url}" for alert in alerts[:ITEMS_PER_MESSAGE]]
    if len(alerts) > ITEMS_PER_MESSAGE:
        lines.append(f"… and {len(alerts) - ITEMS_PER_MESSAGE} more")
    return "\n".join(lines)


def staff_alert_batch_deliver(*, batch: StaffAlertBatch) -> bool:
    """Send the batch to each channel still pending; record what failed for the next flush."""
    errors, left = [], []
    for channel in batch.channels_pending:
        try:
            SENDERS[channel](batch)
        except Exception as exc:  # noqa: BLE001 - any channel failure is logged and retried, never raised
            logger.warning("Staff alert batch %s not delivered to %s: %s", batch.id, channel, exc)
            errors.append(f"{channel}: {type(exc).__name__}: {exc}")
            left.append(channel)
    StaffAlertBatch.objects.filter(id=batch.id).update(
        channels_pending=left,
        attempts=F("attempts") + 1,
        last_error="\n".join(errors),
        sent_at=None if left else timezone.now(),
    )
    return not left


def slack_send(batch: StaffAlertBatch) -> None:
    response = requests.post(
        settings.SLACK_WEBHOOK_URL, json={"text": batch.text}, timeout=SLACK_TIMEOUT_SECONDS
    )
    response.raise_for_status()


def email_send(batch: StaffAlertBatch) -> None:
    subject = f"[Onboarding] {Kind(batch.kind).label}: {batch.count}"
    send_mail(subject, batch.text, settings.DEFAULT_FROM_EMAIL, settings.STAFF_ALERT_EMAILS)


SENDERS = {"slack": slack_send, "email": email_send}
