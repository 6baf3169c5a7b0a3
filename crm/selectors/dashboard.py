"""Selectors for the admin's front page: what came in, what got through, what waits for staff.

Every figure is computed by a fixed number of aggregate queries, whatever the amount of data; the
money figures (weekly revenue, revenue per currency, MRR, churn) read the rollups kept in the
ledger's and the clients' own transactions (crm/rollups.py), not the ledger.
"""

import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import cast

from django.db import connection
from django.db.models import Aggregate, Count, DurationField, Exists, F, OuterRef, Q
from django.utils import timezone

from stripe_events.models import StripeWebhookJob

from ..models import Onboarding, Payment, Service
from .money_dashboard import MoneyFigures, _ledger_cells, money_figures

Status = Onboarding.Status
Step = Onboarding.StepStatus
Delivery = Onboarding.EmailDelivery
# Welcome emails that did not arrive (the ESP's tracking webhooks said so).
BOUNCED = (Delivery.BOUNCED, Delivery.REJECTED, Delivery.COMPLAINED, Delivery.UNSUBSCRIBED)
JobStatus = StripeWebhookJob.Status

# The windows the counts are given for, as (key, label); "today" starts at local midnight.
WINDOWS = (("today", "Today"), ("last_7_days", "Last 7 days"), ("last_30_days", "Last 30 days"))
REVENUE_WEEKS = 12
DURATION_DAYS = 30
# The SQLite fallback reads at most this many durations (the most recent) into Python.
DURATION_SAMPLE_LIMIT = 10_000
# Onboardings stopped for review before any Payment was recorded: paid, yet not in Payment.
PAID_WITHOUT_PAYMENT = (Status.HELD, Status.REJECTED)


@dataclass(frozen=True)
class WindowCounts:
    today: int
    last_7_days: int
    last_30_days: int


@dataclass(frozen=True)
class RevenueSeries:
    """One service's revenue per week in one currency (minor units, aligned with the weeks)."""

    key: str
    label: str
    amounts: list[int]

    @property
    def total(self) -> int:
        return sum(self.amounts)


@dataclass(frozen=True)
class WeeklyRevenue:
    """The last weeks' revenue in one currency, one series per service, biggest first."""

    currency: str
    weeks: list[date]
    series: list[RevenueSeries]
    payments: int

    @property
    def total(self) -> int:
        return sum(series.total for series in self.series)


@dataclass(frozen=True)
class DashboardFigures:
    # paid, onboarded, held, failed, email_bounced → counts per window (see dashboard_figures).
    counts: dict[str, WindowCounts]
    # What waits for staff now, whatever its age: held, failed, email_retrying, email_failed,
    # email_bounced, workspace_failed, webhook_retrying, webhook_failed.
    queues: dict[str, int]
    # Payment → onboarded over the last 30 days; None when nothing was onboarded.
    duration_p50: timedelta | None
    duration_p95: timedelta | None
    durations_counted: int
    revenue: list[WeeklyRevenue] = field(default_factory=list)
    # Revenue net of refunds and lost disputes, subscriptions, MRR and churn (money_dashboard).
    money: MoneyFigures | None = None


def dashboard_figures(*, now: datetime) -> DashboardFigures:
    """Counts per window, queue lengths, payment-to-onboarded percentiles and weekly revenue.

    What each count means, for a window [start, now]:

    - paid: every Checkout Session that was paid in the window, counted once, whether it was
      onboarded, failed or stopped for review. That is every recorded Payment (by Payment.paid_at)
      plus every onboarding paid but stopped before its Payment was recorded, i.e. held or
      rejected with no Payment row (by Onboarding.paid_at). Rejected ones stay counted so that a
      day's figure does not shrink when staff act on a held checkout; a held onboarding that
      already has a Payment (welcome email refused) is counted through its Payment only.
    - onboarded: onboardings that reached ONBOARDED in the window (by onboarded_at).
    - held / failed: onboardings paid in the window (by paid_at, else created) that are held for
      review / failed now.
    - email_bounced: onboardings whose current welcome email the ESP reported bounced, rejected,
      complained about or unsubscribed in the window (by email_delivery_at); a resend that went
      out since no longer counts.
    """
    starts = window_starts(now)
    onboarding_counts, queues = onboarding_aggregates(starts=starts, now=now)
    payments = payment_counts(starts=starts, now=now)
    queues |= webhook_job_queues()
    counts = {
        "paid": WindowCounts(
            **{key: payments[key] + onboarding_counts["paid_unrecorded"][key] for key, _ in WINDOWS}
        ),
        "onboarded": WindowCounts(**onboarding_counts["onboarded"]),
        "held": WindowCounts(**onboarding_counts["held"]),
        "failed": WindowCounts(**onboarding_counts["failed"]),
        "email_bounced": WindowCounts(**onboarding_counts["email_bounced"]),
    }
    today = timezone.localdate(now)
    # One read of the per-day rollup serves the weekly chart and the money windows.
    cells = _ledger_cells(min(revenue_first_week(today), today - timedelta(days=29)))
    p50, p95, counted = onboarding_duration_percentiles(since=now - timedelta(days=DURATION_DAYS), now=now)
    return DashboardFigures(
        counts=counts,
        queues=queues,
        duration_p50=p50,
        duration_p95=p95,
        durations_counted=counted,
        revenue=weekly_revenue(now=now, cells=cells),
        money=money_figures(today=today, cells=cells),
    )


def window_starts(now: datetime) -> dict[str, datetime]:
    local = timezone.localtime(now)
    return {
        "today": local.replace(hour=0, minute=0, second=0, microsecond=0),
        "last_7_days": now - timedelta(days=7),
        "last_30_days": now - timedelta(days=30),
    }


def payment_counts(*, starts: dict[str, datetime], now: datetime) -> dict[str, int]:
    """Recorded payments per window: one query."""
    oldest = min(starts.values())
    # The WHERE lets PostgreSQL read only the window from the paid_at index, not every payment.
    return Payment.objects.filter(paid_at__gte=oldest).aggregate(
        **{key: Count("id", filter=Q(paid_at__gte=start, paid_at__lte=now)) for key, start in starts.items()}
    )


def onboarding_aggregates(
    *, starts: dict[str, datetime], now: datetime
) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Per-window onboarding counts and the onboarding queues, in one conditional aggregate."""
    has_payment = Exists(Payment.objects.filter(checkout_session_id=OuterRef("checkout_session_id")))
    cells = {}
    for key, start in starts.items():
        paid_in_window = Q(paid_at__gte=start, paid_at__lte=now)
        # Held and failed onboardings always have paid_at; created is the fallback for old rows.
        cohort = paid_in_window | Q(paid_at__isnull=True, created__gte=start, created__lte=now)
        cells[f"paid_unrecorded__{key}"] = Count(
            # Q & ~Exists is a Q (Django combines conditional expressions); the stubs say Combinable.
            "id",
            filter=cast(Q, paid_in_window & Q(status__in=PAID_WITHOUT_PAYMENT) & ~has_payment),
        )
        cells[f"onboarded__{key}"] = Count("id", filter=Q(onboarded_at__gte=start, onboarded_at__lte=now))
        cells[f"held__{key}"] = Count("id", filter=cohort & Q(status=Status.HELD))
        cells[f"failed__{key}"] = Count("id", filter=cohort & Q(status=Status.FAILED))
        cells[f"email_bounced__{key}"] = Count(
            "id",
            filter=Q(email_delivery__in=BOUNCED, email_delivery_at__gte=start, email_delivery_at__lte=now),
        )
    queue_cells = {
        "held": Count("id", filter=Q(status=Status.HELD)),
        "failed": Count("id", filter=Q(status=Status.FAILED)),
        "email_retrying": Count("id", filter=Q(email_status=Step.RETRYING)),
        "email_failed": Count("id", filter=Q(email_status=Step.FAILED)),
        "email_bounced": Count(
            "id", filter=Q(status=Status.HELD, held_reason=Onboarding.HeldReason.EMAIL_BOUNCED)
        ),
        "workspace_failed": Count("id", filter=Q(workspace_status=Step.FAILED)),
    }
    # Only rows that can count anywhere: in a window, or in a queue. Each condition has an index,
    # so PostgreSQL combines index scans instead of reading all onboardings.
    oldest = min(starts.values())
    relevant = (
        Q(paid_at__gte=oldest)
        | Q(onboarded_at__gte=oldest)
        | Q(paid_at__isnull=True, created__gte=oldest)
        | Q(status__in=[Status.HELD, Status.FAILED])
        | Q(email_status__in=[Step.RETRYING, Step.FAILED])
        | Q(workspace_status=Step.FAILED)
        | Q(email_delivery__in=BOUNCED, email_delivery_at__gte=oldest)
    )
    row = Onboarding.objects.filter(relevant).aggregate(
        **cells, **{f"queue__{k}": v for k, v in queue_cells.items()}
    )
    counts: dict[str, dict[str, int]] = {}
    queues: dict[str, int] = {}
    for name, value in row.items():
        group, key = name.split("__", 1)
        if group == "queue":
            queues[key] = value
        else:
            counts.setdefault(group, {})[key] = value
    return counts, queues


def webhook_job_queues() -> dict[str, int]:
    """Stripe webhook jobs waiting to retry or given up on: one query."""
    return StripeWebhookJob.objects.aggregate(
        webhook_retrying=Count("id", filter=Q(status=JobStatus.RETRYING)),
        webhook_failed=Count("id", filter=Q(status=JobStatus.FAILED)),
    )


class PercentileCont(Aggregate):
    """PostgreSQL's ordered-set aggregate: percentile_cont(fraction) WITHIN GROUP (ORDER BY expr)."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression, *, fraction: float, **extra):
        # A float we format ourselves, never user input, so it can go into the SQL text.
        super().__init__(expression, fraction=f"{float(fraction):.4f}", **extra)


def onboarding_duration_percentiles(
    *, since: datetime, now: datetime
) -> tuple[timedelta | None, timedelta | None, int]:
    """p50 and p95 of onboarded_at - paid_at for onboardings onboarded in [since, now], and how many."""
    onboarded = Onboarding.objects.filter(
        onboarded_at__gte=since, onboarded_at__lte=now, paid_at__isnull=False
    )
    if connection.vendor == "postgresql":
        duration = F("onboarded_at") - F("paid_at")
        row = onboarded.aggregate(
            p50=PercentileCont(duration, fraction=0.5, output_field=DurationField()),
            p95=PercentileCont(duration, fraction=0.95, output_field=DurationField()),
            counted=Count("id"),
        )
        return row["p50"], row["p95"], row["counted"]
    # SQLite has no ordered-set aggregates (percentile_cont) and only text timestamps, so the
    # durations are read (newest first, bounded) and interpolated in Python the same way.
    pairs = onboarded.order_by("-onboarded_at").values_list("paid_at", "onboarded_at")[:DURATION_SAMPLE_LIMIT]
    durations = [onboarded_at - paid_at for paid_at, onboarded_at in pairs if paid_at and onboarded_at]
    return percentile(durations, 0.5), percentile(durations, 0.95), len(durations)


def percentile(durations: list[timedelta], fraction: float) -> timedelta | None:
    """Linear interpolation between closest ranks, as PostgreSQL's percentile_cont does.

    statistics.quantiles' "inclusive" method is that interpolation; `fraction` in whole percents.
    """
    if len(durations) < 2:  # quantiles needs two points (before Python 3.13)
        return durations[0] if durations else None
    seconds = statistics.quantiles([d.total_seconds() for d in durations], n=100, method="inclusive")
    return timedelta(seconds=seconds[round(fraction * 100) - 1])


def revenue_first_week(today: date, weeks: int = REVENUE_WEEKS) -> date:
    return today - timedelta(days=today.weekday(), weeks=weeks - 1)


def weekly_revenue(
    *, now: datetime, weeks: int = REVENUE_WEEKS, cells: list | None = None
) -> list[WeeklyRevenue]:
    """Net ledger revenue (paid − succeeded refunds − lost disputes) per ISO week and service over
    the last `weeks` weeks, per currency, from the per-day rollup (crm/rollups.py)."""
    today = timezone.localdate(now)
    first_week = revenue_first_week(today, weeks)
    week_starts = [first_week + timedelta(weeks=n) for n in range(weeks)]
    names = dict(Service.objects.values_list("id", "name"))
    by_currency: dict[str, dict[str, RevenueSeries]] = {}
    payments: dict[str, int] = {}
    for day, currency, service, paid, refunded, disputed, counted in (
        _ledger_cells(first_week) if cells is None else cells
    ):
        if day > today or day < first_week:
            continue
        key = str(service or "")
        series = by_currency.setdefault(currency, {}).get(key)
        if series is None:
            label = names.get(service, "No service") if service else "No service"
            series = RevenueSeries(key=key, label=label, amounts=[0] * weeks)
            by_currency[currency][key] = series
        series.amounts[(day - first_week).days // 7] += paid - refunded - disputed
        payments[currency] = payments.get(currency, 0) + counted
    charts = [
        WeeklyRevenue(
            currency=currency,
            weeks=week_starts,
            series=sorted((s for s in series.values() if any(s.amounts)), key=lambda s: (-s.total, s.label)),
            payments=payments[currency],
        )
        for currency, series in by_currency.items()
        if any(any(s.amounts) for s in series.values())
    ]
    # Amounts in different currencies do not compare: the busiest currency comes first.
    return sorted(charts, key=lambda chart: (-chart.payments, chart.currency))


def human_duration(value: timedelta | None) -> str:
    """3.2 s, 42 s, 4 min, 1.5 h, 2 d: one decimal below ten of a unit, none above."""
    if value is None:
        return "—"
    seconds = value.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{short_number(seconds / size)} {unit}"
    return f"{short_number(seconds)} s"


def short_number(number: float) -> str:
    text = f"{number:.1f}" if number < 10 else f"{number:.0f}"
    return text.removesuffix(".0")
