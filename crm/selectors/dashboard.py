"""Selectors for the admin's front page: what came in, what got through, what waits for staff.

Every figure is computed by a fixed number of small queries, whatever the amount of data: the
onboarding counts, queues and percentiles read the onboarding rollups (onboarding_dashboard), the
money figures (weekly revenue, revenue per currency, MRR, churn) the ledger's (money_dashboard);
triggers keep both in the writing transaction (crm/rollups.py, crm/onboarding_rollups.py).
"""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db.models import Count
from django.utils import timezone

from stripe_events.models import StripeWebhookJob

from ..models import Service
from .money_dashboard import MoneyFigures, _ledger_cells, money_figures
from .onboarding_dashboard import DURATION_DAYS, onboarding_figures

JobStatus = StripeWebhookJob.Status

# The windows the counts are given for, as (key, label): whole UTC days, as the money figures'.
WINDOWS = (("today", "Today"), ("last_7_days", "Last 7 days"), ("last_30_days", "Last 30 days"))
REVENUE_WEEKS = 12


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

    The windows are whole UTC days, the same as the money figures': today, the last 7 days (today
    and the 6 days before) and the last 30 days (today and the 29 before); the rollups count per
    day. What each count means, for a window:

    - paid: every Checkout Session that was paid on a day of the window, counted once, whether it
      was onboarded, failed or stopped for review. That is every recorded Payment (by
      Payment.paid_at) plus every onboarding paid but stopped before its Payment was recorded, i.e.
      held or rejected with no Payment row (by Onboarding.paid_at). Rejected ones stay counted so
      that a day's figure does not shrink when staff act on a held checkout; a held onboarding that
      already has a Payment (welcome email refused) is counted through its Payment only.
    - onboarded: onboardings that reached ONBOARDED on a day of the window (by onboarded_at).
    - held / failed: onboardings paid on a day of the window (by paid_at, else created) that are
      held for review / failed now.
    - email_bounced: onboardings whose current welcome email the ESP reported bounced, rejected,
      complained about or unsubscribed on a day of the window (by email_delivery_at); a resend
      that went out since no longer counts.

    The percentiles are those of onboarded_at - paid_at over the onboardings onboarded in the last
    30 days (with a paid_at), from a histogram with eight log-spaced buckets per doubling: each
    within 4.5 % of PostgreSQL's percentile_cont over the exact durations (crm/duration_histogram.py).
    """
    today = timezone.localdate(now)
    onboarding = onboarding_figures(today=today)
    counts = {
        "paid": WindowCounts(
            **{
                key: onboarding.counts["payments"][key] + onboarding.counts["paid_unrecorded"][key]
                for key, _ in WINDOWS
            }
        ),
        **{
            measure: WindowCounts(**onboarding.counts[measure])
            for measure in ("onboarded", "held", "failed", "email_bounced")
        },
    }
    # One read of the per-day rollup serves the weekly chart and the money windows.
    cells = _ledger_cells(min(revenue_first_week(today), today - timedelta(days=DURATION_DAYS - 1)))
    return DashboardFigures(
        counts=counts,
        queues=onboarding.queues | webhook_job_queues(),
        duration_p50=onboarding.duration_p50,
        duration_p95=onboarding.duration_p95,
        durations_counted=onboarding.durations_counted,
        revenue=weekly_revenue(now=now, cells=cells),
        money=money_figures(today=today, cells=cells),
    )


def webhook_job_queues() -> dict[str, int]:
    """Stripe webhook jobs waiting to retry or given up on: one query, on the (status, created)
    index, which reads only those jobs, never the succeeded ones (every delivery has a job)."""
    rows = (
        StripeWebhookJob.objects.filter(status__in=[JobStatus.RETRYING, JobStatus.FAILED])
        .order_by()
        .values("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    counts = dict(rows)
    return {
        "webhook_retrying": counts.get(JobStatus.RETRYING, 0),
        "webhook_failed": counts.get(JobStatus.FAILED, 0),
    }


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
