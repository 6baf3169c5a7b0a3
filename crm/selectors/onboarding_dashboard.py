"""The dashboard's onboarding figures, read from the onboarding rollups (crm/onboarding_rollups.py),
never from the onboardings themselves: checkouts per window, the work queues, and payment →
onboarded p50 and p95. Three small queries on small tables, whatever the number of onboardings.

The windows are whole UTC days, as the money figures' (money_dashboard.WINDOW_DAYS): "today", the
last 7 days (today and the 6 before) and the last 30. The percentiles come from a histogram of
durations (crm/duration_histogram.py): within 4.5 % of the exact percentile_cont.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta

from django.db import connection
from django.db.models import Sum

from ..duration_histogram import histogram_percentile
from ..models import OnboardingDayRollup, OnboardingDurationRollup, OnboardingQueueCount
from ..onboarding_rollups import MEASURES, QUEUES, onboarding_rollups_recount
from .money_dashboard import WINDOW_DAYS

DURATION_DAYS = 30


@dataclass(frozen=True)
class OnboardingFigures:
    # measure (crm.onboarding_rollups.MEASURES) → window key (WINDOW_DAYS) → how many.
    counts: dict[str, dict[str, int]]
    # queue (crm.onboarding_rollups.QUEUES) → how many wait now.
    queues: dict[str, int]
    # Payment → onboarded for onboardings onboarded in the last 30 days; None when there are none.
    duration_p50: timedelta | None
    duration_p95: timedelta | None
    durations_counted: int


def onboarding_figures(*, today: date) -> OnboardingFigures:
    starts = {key: today - timedelta(days=days - 1) for key, days in WINDOW_DAYS}
    first = min(starts.values())
    days, queues, histogram = _onboarding_cells(first=first, today=today)
    counts = {
        measure: {
            key: sum(n for (day, m), n in days.items() if m == measure and start <= day)
            for key, start in starts.items()
        }
        for measure in MEASURES
    }
    return OnboardingFigures(
        counts=counts,
        queues={name: queues.get(name, 0) for name in QUEUES},
        duration_p50=histogram_percentile(histogram, 0.5),
        duration_p95=histogram_percentile(histogram, 0.95),
        durations_counted=sum(n for n in histogram.values() if n > 0),
    )


def _onboarding_cells(
    *, first: date, today: date
) -> tuple[dict[tuple[date, str], int], dict[str, int], dict[int, int]]:
    """Counts per (day, measure) in [first, today], per queue, and the durations' histogram
    (bucket → how many) for the DURATION_DAYS up to today."""
    since = today - timedelta(days=DURATION_DAYS - 1)
    if connection.vendor != "postgresql":  # no triggers: recount
        counted = onboarding_rollups_recount(since=min(first, since))
        days = {key: n for key, n in counted["onboarding_days"].items() if first <= key[0] <= today}
        histogram: Counter = Counter()
        for (day, bucket), n in counted["onboarding_durations"].items():
            if since <= day <= today:
                histogram[bucket] += n
        return days, counted["onboarding_queues"], histogram
    # Summed over the shards by PostgreSQL: at most a few hundred rows come back.
    day_rows = (
        OnboardingDayRollup.objects.filter(day__gte=first, day__lte=today)
        .values("day", "measure")
        .annotate(n=Sum("total"))
        .values_list("day", "measure", "n")
        .order_by()
    )
    queue_rows = (
        OnboardingQueueCount.objects.values("queue")
        .annotate(n=Sum("total"))
        .values_list("queue", "n")
        .order_by()
    )
    duration_rows = (
        OnboardingDurationRollup.objects.filter(day__gte=since, day__lte=today)
        .values("bucket")
        .annotate(n=Sum("total"))
        .values_list("bucket", "n")
        .order_by()
    )
    return (
        {(day, measure): n for day, measure, n in day_rows},
        dict(queue_rows),
        dict(duration_rows),
    )
