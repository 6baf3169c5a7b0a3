"""Capped exponential backoff for tasks that fail on something outside the machine."""

import math
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from django_q.models import Schedule

# Delays before attempt 2, 3, …: RETRY_BASE_DELAY_SECONDS (30 s), doubling, capped at
# RETRY_MAX_DELAY_SECONDS (1 h), for as many attempts as span RETRY_WINDOW_HOURS (24): a day-long
# outage heals by itself. django-q's scheduler wakes every 30 s, so shorter delays wait for it.


def abandoned_before(now: datetime | None = None) -> datetime:
    """Work still "running" since before this belongs to a worker that died: the queue's timeout
    has passed (django-q would have killed the task), so another run may take it over."""
    return (now or timezone.now()) - timedelta(seconds=settings.Q_CLUSTER["timeout"])


def backoff_seconds(attempts: int) -> float:
    """Delay after the given number of failed attempts."""
    base, cap = settings.RETRY_BASE_DELAY_SECONDS, settings.RETRY_MAX_DELAY_SECONDS
    delay: float = base * 2 ** min(64, max(0, attempts - 1))
    return float(min(cap, delay))


def max_attempts() -> int:
    """Attempts before giving up: the first, then one after each delay until they span the window."""
    window = settings.RETRY_WINDOW_HOURS * 3600
    attempts, waited = 1, 0.0
    while waited < window and attempts <= 64 and backoff_seconds(attempts) < settings.RETRY_MAX_DELAY_SECONDS:
        waited += backoff_seconds(attempts)
        attempts += 1
    # From here every delay is the cap.
    return attempts + max(0, math.ceil((window - waited) / settings.RETRY_MAX_DELAY_SECONDS))


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
