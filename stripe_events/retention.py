"""Keep what a webhook delivery said only as long as it is useful: after WEBHOOK_RETENTION_DAYS the
trigger's body and headers (customer emails, names, addresses) are emptied. The row stays, so the
admin still shows that the delivery came, when, and how it ended."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from djstripe.models import WebhookEventTrigger

from .models import StripeWebhookJob

# A job that may still run needs its delivery's body.
UNFINISHED = [
    StripeWebhookJob.Status.QUEUED,
    StripeWebhookJob.Status.RUNNING,
    StripeWebhookJob.Status.RETRYING,
]
PURGED_NOTE = "(purged after the retention period)"


def webhook_triggers_purge(*, now: datetime | None = None) -> int:
    """Empty the body and headers of triggers older than the retention period; returns how many."""
    before = (now or timezone.now()) - timedelta(days=settings.WEBHOOK_RETENTION_DAYS)
    old = WebhookEventTrigger.objects.filter(created__lt=before).exclude(body=PURGED_NOTE)
    old = old.exclude(Q(job__status__in=UNFINISHED))
    purged: int = old.update(body=PURGED_NOTE, headers={})
    return purged
