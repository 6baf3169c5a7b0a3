"""The admin's front page: counts per window, payment-to-onboarded times, queues, weekly revenue."""

import re
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crm.duration_histogram import PRECISION
from crm.models import MoneyMovement, Onboarding, Payment
from crm.selectors.dashboard import dashboard_figures, human_duration
from stripe_events.models import StripeWebhookJob
from tests.factories import (
    ClientFactory,
    OnboardingFactory,
    PaymentFactory,
    ServiceFactory,
    StripeWebhookJobFactory,
)

Status = Onboarding.Status
Step = Onboarding.StepStatus
# A Wednesday at noon: the revenue weeks start on Mondays (ISO weeks).
NOW = datetime(2026, 3, 18, 12, 0, tzinfo=UTC)
sessions = count(1)


def paid(at, *, service, amount=10000, currency="usd", client=None, onboarding=None, **fields):
    """A recorded Payment and, unless told otherwise, its onboarding (status and times in fields)."""
    session_id = f"cs_test_dash_{next(sessions)}"
    client = client or ClientFactory(currency=currency)
    payment = PaymentFactory(
        client=client,
        service=service,
        checkout_session_id=session_id,
        amount=amount,
        currency=currency,
        paid_at=at,
    )
    # As onboarding records it: the Payment and its ledger row (the revenue figures read the ledger).
    MoneyMovement.objects.create(
        stripe_id=session_id,
        kind=MoneyMovement.Kind.PAYMENT,
        client=client,
        service=service,
        payment=payment,
        amount=amount,
        currency=currency,
        status="paid",
        counts=True,
        occurred_at=at,
        checkout_session_id=session_id,
    )
    if onboarding is not False:
        onboarding_create(session_id, paid_at=at, service=service, client=client, **fields)
    return payment


def onboarding_create(session_id=None, **fields) -> Onboarding:
    return OnboardingFactory(checkout_session_id=session_id or f"cs_test_dash_{next(sessions)}", **fields)


def held(at, **fields) -> Onboarding:
    return onboarding_create(
        status=Status.HELD, held_reason=Onboarding.HeldReason.SERVICE_UNKNOWN, paid_at=at, **fields
    )


@pytest.fixture
def services(db):
    return ServiceFactory(), ServiceFactory(service_id="seo-audit", name="SEO Audit")


@pytest.fixture
def seeded(services):
    """3 payments today and 1 eight days ago; 2 onboarded today; 1 held and 1 failed today.

    Times are relative to the real clock (the admin view reads it), a minute in the past but never
    before midnight, so "today" holds whenever the test runs.
    """
    care, seo = services
    now = timezone.now()
    midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    today = max(now - timedelta(minutes=1), midnight)
    paid(today, service=care, amount=10000, status=Status.ONBOARDED, onboarded_at=today)
    paid(today, service=care, amount=5000, status=Status.ONBOARDED, onboarded_at=today)
    paid(today, service=seo, amount=20000, status=Status.FAILED, workspace_status=Step.FAILED)
    eight_days_ago = now - timedelta(days=8)
    paid(eight_days_ago, service=seo, amount=7000, status=Status.ONBOARDED, onboarded_at=eight_days_ago)
    held(today, service_ref="unknown-service")
    return now


def test_counts_per_window_on_the_admin_front_page(admin_client, seeded):
    response = admin_client.get("/admin/")

    assert response.status_code == 200
    counts = response.context["dashboard"]["figures"].counts
    # paid: 3 payments + 1 held (no Payment yet) today; the 8-day-old payment only in 30 days.
    assert (counts["paid"].today, counts["paid"].last_7_days, counts["paid"].last_30_days) == (4, 4, 5)
    assert (counts["onboarded"].today, counts["onboarded"].last_7_days, counts["onboarded"].last_30_days) == (
        2,
        2,
        3,
    )
    assert (counts["held"].today, counts["held"].last_7_days, counts["held"].last_30_days) == (1, 1, 1)
    assert (counts["failed"].today, counts["failed"].last_7_days, counts["failed"].last_30_days) == (1, 1, 1)
    html = response.content.decode()
    assert "<title>Dashboard | Onboarding</title>" in html
    for key, cells in {
        "paid": (4, 4, 5),
        "onboarded": (2, 2, 3),
        "held": (1, 1, 1),
        "failed": (1, 1, 1),
    }.items():
        row = re.search(rf'<tr id="count-{key}">(.*?)</tr>', html, re.S).group(1)
        assert re.findall(r'<td class="num">(\d+)</td>', row) == [str(n) for n in cells]
    # The app list stays below the dashboard.
    assert html.index('id="count-paid"') < html.index('class="app-crm module')


def test_paid_counts_every_paid_checkout_once(services):
    """Held with a Payment (email refused) counts once; rejected counts; awaiting payment does not."""
    care, _ = services
    hour_ago = NOW - timedelta(hours=1)
    paid(
        hour_ago,
        service=care,
        status=Status.HELD,
        held_reason=Onboarding.HeldReason.EMAIL_REFUSED,
        email_status=Step.REFUSED,
    )
    onboarding_create(status=Status.REJECTED, paid_at=hour_ago, service_ref="gone")
    onboarding_create(status=Status.AWAITING_PAYMENT)
    onboarding_create(status=Status.PAYMENT_FAILED)
    held(NOW + timedelta(days=1))  # tomorrow: not in any window

    counts = dashboard_figures(now=NOW).counts

    assert counts["paid"].today == 2
    assert counts["held"].today == 1
    assert counts["onboarded"].last_30_days == 0


def test_payment_to_onboarded_percentiles(services):
    care, _ = services
    for seconds in (1, 2, 3, 4, 100):
        onboarded_at = NOW - timedelta(days=2)
        paid(
            onboarded_at - timedelta(seconds=seconds),
            service=care,
            status=Status.ONBOARDED,
            onboarded_at=onboarded_at,
        )
    # Onboarded 31 days ago: outside the 30-day window, however slow it was.
    old = NOW - timedelta(days=31)
    paid(old - timedelta(hours=5), service=care, status=Status.ONBOARDED, onboarded_at=old)

    figures = dashboard_figures(now=NOW)

    assert figures.durations_counted == 5
    # percentile_cont over the exact durations: p50 3 s; p95 at position 0.95 × 4 = 3.8, between
    # 4 s and 100 s → 4 + 0.8 × 96 = 80.8 s. The histogram's are within its precision (4.5 %).
    assert abs(figures.duration_p50 / timedelta(seconds=3) - 1) <= PRECISION
    assert abs(figures.duration_p95 / timedelta(seconds=80.8) - 1) <= PRECISION
    assert figures.duration_p95 != timedelta(seconds=4)  # interpolated between ranks, not a rank
    assert (human_duration(figures.duration_p50), human_duration(figures.duration_p95)) == ("3 s", "1.3 min")


def test_percentiles_shown_on_the_page(admin_client, services):
    care, _ = services
    onboarded_at = timezone.now() - timedelta(hours=1)
    for seconds in (3.2, 250, 250):
        paid(
            onboarded_at - timedelta(seconds=seconds),
            service=care,
            status=Status.ONBOARDED,
            onboarded_at=onboarded_at,
        )

    html = admin_client.get("/admin/").content.decode()

    # 250 s is 4.2 min; the histogram's estimate (within 4.5 %) reads the same.
    assert re.search(r'id="duration-p50">.*?<td class="num">4.2 min</td>', html, re.S)
    assert re.search(r'id="duration-p95">.*?<td class="num">4.2 min</td>', html, re.S)
    assert "3 onboardings" in html


def test_percentiles_without_onboardings(db):
    figures = dashboard_figures(now=NOW)
    assert (figures.duration_p50, figures.duration_p95, figures.durations_counted) == (None, None, 0)
    assert human_duration(None) == "—"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(seconds=3.24), "3.2 s"),
        (timedelta(seconds=42), "42 s"),
        (timedelta(minutes=4, seconds=10), "4.2 min"),
        (timedelta(minutes=25), "25 min"),
        (timedelta(hours=1, minutes=30), "1.5 h"),
        (timedelta(days=2), "2 d"),
    ],
)
def test_human_duration(value, text):
    assert human_duration(value) == text


def test_queues_link_to_filtered_changelists(admin_client, seeded):
    OnboardingFactory(status=Status.IN_PROGRESS, email_status=Step.RETRYING)
    OnboardingFactory(status=Status.FAILED, email_status=Step.FAILED)
    job_status = StripeWebhookJob.Status
    jobs = [job_status.FAILED, job_status.FAILED, job_status.RETRYING, job_status.SUCCEEDED]
    for n, status in enumerate(jobs):
        StripeWebhookJobFactory(event_id=f"evt_dash_{n}", status=status)

    response = admin_client.get("/admin/")

    queues = {queue.label: (queue.count, queue.url) for queue in response.context["dashboard"]["queues"]}
    onboardings = "/admin/crm/onboarding/"
    held_url = queues["Held for review"][1]
    assert queues["Held for review"][0] == 1
    # The "Needs review" queue's own admin (a superuser may view it).
    assert held_url == "/admin/crm/heldonboarding/"
    assert admin_client.get(held_url).status_code == 200
    assert queues["Failed onboardings"] == (2, f"{onboardings}?status__exact=failed")
    assert queues["Welcome emails waiting to retry"] == (1, f"{onboardings}?email_status__exact=retrying")
    assert queues["Welcome emails failed"] == (1, f"{onboardings}?email_status__exact=failed")
    assert queues["Workspaces failed"] == (1, f"{onboardings}?workspace_status__exact=failed")
    jobs_url = "/admin/stripe_events/stripewebhookjob/"
    assert queues["Stripe webhooks waiting to retry"] == (1, f"{jobs_url}?status__exact=retrying")
    assert queues["Stripe webhooks failed"] == (2, f"{jobs_url}?status__exact=failed")
    html = response.content.decode()
    assert f'<a href="{jobs_url}?status__exact=failed">Stripe webhooks failed</a>' in html
    assert admin_client.get(f"{onboardings}?status__exact=failed").status_code == 200
    assert admin_client.get(f"{jobs_url}?status__exact=failed").status_code == 200


def test_revenue_chart_has_a_bar_per_week_and_service(services):
    """Stacked bars from the SVG: one rect per (week, service) with revenue, a legend, a table."""
    care, seo = services
    this_week = NOW - timedelta(days=1)  # Tuesday of NOW's week
    paid(this_week, service=care, amount=10000)
    paid(this_week, service=care, amount=5000)  # same bar as the one above
    paid(this_week, service=seo, amount=20000)
    paid(NOW - timedelta(weeks=3), service=seo, amount=7000)
    paid(NOW - timedelta(weeks=13), service=seo, amount=99900)  # older than 12 weeks
    paid(NOW - timedelta(weeks=2), service=care, amount=123456, currency="jpy")

    from crm.charts import revenue_charts

    charts = revenue_charts(dashboard_figures(now=NOW).revenue)

    usd, jpy = charts
    assert (usd.currency, usd.total, jpy.currency, jpy.total) == ("USD", "$420.00", "JPY", "¥123,456")
    svg = str(usd.svg)
    assert re.findall(r"<title>(.*?)</title></rect>", svg) == [
        "SEO Audit, week of 2026-02-23: $70.00",
        "SEO Audit, week of 2026-03-16: $200.00",
        "Website Care Plan, week of 2026-03-16: $150.00",
    ]
    assert svg.count('<rect class="bar"') == 3
    assert 'role="img"' in svg
    assert "<title id=" in svg
    assert [item.label for item in usd.legend] == ["SEO Audit", "Website Care Plan"]
    # The same service keeps its colour across currencies.
    assert jpy.legend[0].color == usd.legend[1].color
    assert ">29 Dec</text>" in svg and ">16 Mar</text>" in svg  # twelve Mondays on the x axis
    assert "$200</text>" in svg  # the y axis in major units
    assert usd.rows[-1].amounts == ["$200.00", "$150.00"]


def test_revenue_chart_on_the_page(admin_client, services):
    care, seo = services
    now = timezone.now()
    paid(now - timedelta(minutes=1), service=care, amount=10000)
    paid(now - timedelta(minutes=1), service=seo, amount=20000)

    html = admin_client.get("/admin/").content.decode()

    chart = html[html.index('id="revenue-chart"') :]
    assert chart.count('<rect class="bar"') == 2
    legend = re.search(r'<ul class="chart-legend".*?</ul>', chart, re.S).group(0)
    # Biggest service first.
    assert legend.index("SEO Audit") < legend.index("Website Care Plan")
    assert "<details>" in chart and "$300.00" in chart
    assert "No payments in the last 12 weeks" not in html
    assert "<script" not in chart


def test_empty_dashboard(admin_client, db):
    response = admin_client.get("/admin/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "No payments in the last 12 weeks" in html
    assert 'id="revenue-chart"' not in html
    assert 'class="revenue-svg"' not in html
    counts = response.context["dashboard"]["figures"].counts
    assert all(getattr(c, w) == 0 for c in counts.values() for w in ("today", "last_7_days", "last_30_days"))


def test_staff_without_crm_view_permission_get_the_plain_index(client, django_user_model):
    user = django_user_model.objects.create_user("staff", password="pw-staff-123", is_staff=True)
    client.force_login(user)

    response = client.get("/admin/")

    assert response.status_code == 200
    assert "dashboard" not in response.context


def seed_activity(services, payments: int) -> None:
    """`payments` payments over 10 weeks, with onboardings in every state the dashboard counts."""
    care, seo = services
    now = timezone.now()
    states = [
        {"status": Status.ONBOARDED},
        {"status": Status.FAILED, "workspace_status": Step.FAILED},
        {"status": Status.IN_PROGRESS, "email_status": Step.RETRYING},
    ]
    for n in range(payments):
        at = now - timedelta(days=n * 70 / payments, minutes=5)
        fields = states[n % len(states)]
        onboarded = (
            {"onboarded_at": at + timedelta(seconds=n)} if fields["status"] == Status.ONBOARDED else {}
        )
        paid(at, service=(care, seo)[n % 2], amount=1000 + n, **fields, **onboarded)
        if n % 5 == 0:
            held(at)


def dashboard_queries(admin_client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert admin_client.get("/admin/").status_code == 200
    return len(queries)


def test_dashboard_query_count_does_not_grow_with_data(admin_client, services, django_assert_num_queries):
    seed_activity(services, 5)
    few = dashboard_queries(admin_client)
    # From the rollups: onboardings per day, the queues, the durations, the per-day ledger cells,
    # service names, subscriptions (MRR), churn days, clients per status; and the webhook jobs.
    if connection.vendor == "postgresql":  # SQLite has no triggers: its fallback recounts
        with django_assert_num_queries(9):
            dashboard_figures(now=timezone.now())

    seed_activity(services, 45)
    assert Payment.objects.count() == 50

    assert dashboard_queries(admin_client) == few
