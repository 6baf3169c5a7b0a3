"""Capped exponential backoff for tasks that fail on something outside the machine."""

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from django_q.models import Schedule

# Delays before attempt 2, 3, …: 30 s, 1 min, 2 min, … capped at 1 h. django-q's scheduler
# wakes every 30 s, so shorter delays would not be honoured anyway.
BASE_DELAY_SECONDS = 30
MAX_DELAY_SECONDS = 3600


def abandoned_before(now: datetime | None = None) -> datetime:
    """Work still "running" since before this belongs to a worker that died: the queue's timeout
    has passed (django-q would have killed the task), so another run may take it over."""
    return (now or timezone.now()) - timedelta(seconds=settings.Q_CLUSTER["timeout"])


def backoff_seconds(attempts: int) -> int:
    """Delay after the given number of failed attempts."""
    delay: int = BASE_DELAY_SECONDS * 2 ** max(0, attempts - 1)  # int ** int is typed Any
    return min(MAX_DELAY_SECONDS, delay)


def retry_schedule(*, func: str, arg: int, attempts: int) -> datetime:
    """Run `func(arg)` once more after the backoff delay; returns when."""
    run_at = timezone.now() + timedelta(seconds=backoff_seconds(attempts))
    Schedule.objects.create(
        name=f"retry {func}({arg}) #{attempts + 1}",
        func=func,
        args=repr((arg,)),
        schedule_type=Schedule.ONCE,
        repeats=-1,  # deleted once it has fired
        next_run=run_at,
    )
    return run_at
