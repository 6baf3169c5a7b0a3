"""`manage.py backfill_onboarding`: Stripe's history in through the webhook path's service.

The Stripe sandbox serves the list API over HTTP (faults and request counters included); the
command and the service run for real against the database; queued tasks run as the worker would.
"""

import io
import json
import math
from collections import Counter
from datetime import UTC, datetime

import pytest
from django.apps import apps
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django_q.models import OrmQ
from djstripe.models import Session

from crm.backfill import BackfillError, RateLimiter, RetryPolicy, onboarding_backfill
from crm.models import Activity, BackfillRun, Client, LedgerDayRollup, MoneyMovement, Onboarding, Payment
from crm.rollups import rollups_differences
from crm.services.staff import welcome_email_resend
from provisioning.models import Workspace
from tests.factories import ServiceFactory
from tests.support.pipeline import run_queued_tasks, stripe_timeout

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("anymail_outbox")]

Status = Onboarding.Status
Held = Onboarding.HeldReason
Step = Onboarding.StepStatus

SINCE = datetime(2025, 3, 1, tzinfo=UTC)
UNTIL = datetime(2025, 4, 1, tzinfo=UTC)
T0 = int(SINCE.timestamp())
LIST = "GET /v1/checkout/sessions"
FAST = RetryPolicy(backoff_base=0.001, backoff_cap=0.01)


@pytest.fixture
def services(db):
    return ServiceFactory(service_id="website-care", name="Website Care Plan"), ServiceFactory(
        service_id="seo-audit", name="SEO Audit"
    )


def session(email: str, minute: int, **fields) -> dict:
    """A seed spec: a paid USD website-care checkout `minute` minutes into the window."""
    return {
        "email": email,
        "name": fields.pop("name", email.split("@")[0].title()),
        "service_id": "website-care",
        "amount": 10000,
        "currency": "usd",
        "created": T0 + 60 * minute,
        **fields,
    }


def backfill(*args: str) -> dict:
    """Run the real command with --json over March 2025 and return its summary."""
    out = io.StringIO()
    call_command(
        "backfill_onboarding", "--since", "2025-03-01", "--until", "2025-04-01", "--json", *args, stdout=out
    )
    return json.loads(out.getvalue())


def statuses() -> dict:
    return {
        o.customer_email: (o.status, o.held_reason, o.email_status, o.workspace_status)
        for o in Onboarding.objects.all()
    }


def end_state() -> dict:
    """Everything the backfill writes, keyed by what does not depend on ids."""
    return {
        "onboardings": sorted(
            Onboarding.objects.values_list(
                "customer_email", "status", "held_reason", "email_status", "workspace_status", "amount"
            )
        ),
        "clients": sorted(
            Client.objects.values_list("email", "name", "invoiced_value", "currency", "ordered_service")
        ),
        "payments": sorted(Payment.objects.values_list("checkout_session_id", "amount")),
        "activities": Counter(Activity.objects.values_list("kind", "summary")),
        "sessions": Session.objects.count(),
        "queued_tasks": OrmQ.objects.count(),
    }


def seed_mix(sandbox, pipeline) -> dict:
    """Every kind of history the backfill meets; returns session ids by label."""
    # Onboarded live by the webhook path before the backfill ran.
    webhook = pipeline.pay_and_process(
        email="hooked@example.com", name="Hooked", service_id="website-care", amount=5000, created=T0 + 60
    )
    specs = {
        "paid": session("paid@example.com", 2),
        "delayed_ok": session("delayed@example.com", 3, delayed="succeeded"),
        "delayed_failed": session("failed@example.com", 4, delayed="failed"),
        "processing": session("processing@example.com", 5, payment_status="unpaid"),
        "expired": session("expired@example.com", 6, status="expired"),
        "chf": session("swiss@example.com", 7, currency="chf"),
        "unknown": session("unknown@example.com", 8, service_id="no-such-service"),
        "returning_old": session("return@example.com", 9, name="Old Name", service_id="seo-audit"),
        "returning_new": session("return@example.com", 10, name="New Name", amount=2500),
        "hooked_again": session("hooked@example.com", 11, name="Hooked", amount=7000),
        "before_window": session("early@example.com", -5),
        "after_window": session("late@example.com", 60 * 24 * 31 + 1),
    }
    made = sandbox.seed(sessions=list(specs.values()))["sessions"]
    ids = dict(zip(specs, made, strict=True))
    ids["webhook"] = webhook["session"]["id"]
    return ids


def test_backfill_onboards_paid_history_and_holds_the_rest(sandbox, pipeline, services):
    ids = seed_mix(sandbox, pipeline)
    mail.outbox.clear()

    summary = backfill()
    run_queued_tasks()

    by_email = statuses()
    done = (Status.ONBOARDED, "", Step.DONE, Step.DONE)
    assert by_email["paid@example.com"] == done
    assert by_email["delayed@example.com"] == done  # unpaid at first, then succeeded
    assert by_email["failed@example.com"][0] == Status.PAYMENT_FAILED
    assert by_email["processing@example.com"][0] == Status.AWAITING_PAYMENT
    assert by_email["swiss@example.com"][:2] == (Status.HELD, Held.CURRENCY_NOT_ALLOWED)
    assert by_email["unknown@example.com"][:2] == (Status.HELD, Held.SERVICE_UNKNOWN)
    for email in ("expired@example.com", "early@example.com", "late@example.com"):
        assert email not in by_email
    assert Onboarding.objects.filter(customer_email="return@example.com").count() == 2

    # A returning client is one client with both payments; the newest session names it.
    returning = Client.objects.get(email="return@example.com")
    assert (returning.name, returning.invoiced_value) == ("New Name", 12500)
    assert returning.ordered_service.service_id == "website-care"
    # The webhook's client got its newer payment added; its first session was not onboarded twice.
    hooked = Client.objects.get(email="hooked@example.com")
    assert hooked.invoiced_value == 12000 and hooked.onboardings.count() == 2
    assert Payment.objects.filter(checkout_session_id=ids["webhook"]).count() == 1

    # One welcome email per onboarding started now; none for the one the webhook onboarded.
    assert sorted(m.to[0] for m in mail.outbox) == sorted(
        ["paid@example.com", "delayed@example.com", "return@example.com", "return@example.com"]
        + ["hooked@example.com"]
    )
    # One workspace per client and service: paid, delayed, return (two services), hooked (reused).
    assert Workspace.objects.filter(status="ready").count() == 5

    counts = summary["counts"]
    assert counts["seen"] == 10
    assert counts["already_onboarded"] == 1
    assert counts["onboarded_now"] == 5
    assert counts["held"] == {Held.CURRENCY_NOT_ALLOWED: 1, Held.SERVICE_UNKNOWN: 1}
    assert (counts["awaiting_payment"], counts["payment_failed"], counts["failed"]) == (1, 1, 0)
    assert summary["status"] == "completed"
    assert BackfillRun.objects.get().status == BackfillRun.Status.COMPLETED

    # Running it again changes nothing and sends nothing.
    before = end_state()
    again = backfill()
    run_queued_tasks()
    assert again["counts"]["already_onboarded"] == 6 and again["counts"]["onboarded_now"] == 0
    assert end_state()["onboardings"] == before["onboardings"]
    assert end_state()["clients"] == before["clients"]
    assert len(mail.outbox) == 5
    # What the backfill wrote went through the ledger, so the dashboard's rollups (PostgreSQL
    # triggers; SQLite recounts) saw it.
    if connection.vendor == "postgresql":
        assert LedgerDayRollup.objects.exists()
        assert rollups_differences() == []


def test_no_email_skips_the_welcome_email_but_provisions_workspaces(sandbox, services, admin_user):
    sandbox.seed(sessions=[session("a@example.com", 1), session("b@example.com", 2)])

    summary = backfill("--no-email")
    run_queued_tasks()

    assert summary["counts"]["onboarded_now"] == 2
    assert not mail.outbox
    for onboarding in Onboarding.objects.all():
        assert (onboarding.status, onboarding.email_status, onboarding.workspace_status) == (
            Status.ONBOARDED,
            Step.SKIPPED,
            Step.DONE,
        )
    assert Workspace.objects.filter(status="ready").count() == 2
    assert Activity.objects.filter(summary__startswith="Welcome email skipped").count() == 2

    # Staff send it later from the admin's "Resend welcome email".
    assert welcome_email_resend(onboarding=Onboarding.objects.first(), actor=admin_user)
    run_queued_tasks()
    assert len(mail.outbox) == 1


def crm_and_mirror_counts() -> dict:
    models = [*apps.get_app_config("crm").get_models(), *apps.get_app_config("provisioning").get_models()]
    models += [apps.get_model("djstripe", name) for name in ("Session", "Customer", "PaymentIntent")]
    counts = {model._meta.label: model.objects.count() for model in models}
    counts["django_q.OrmQ"] = OrmQ.objects.count()
    return counts


def test_dry_run_prints_what_would_change_and_writes_nothing(sandbox, pipeline, services):
    seed_mix(sandbox, pipeline)
    before = crm_and_mirror_counts()

    out = io.StringIO()
    call_command(
        "backfill_onboarding", "--since", "2025-03-01", "--until", "2025-04-01", "--dry-run", stdout=out
    )

    assert crm_and_mirror_counts() == before
    text = out.getvalue()
    assert "Dry run (nothing written)" in text
    assert "would onboard: " in text and "would hold (currency_not_allowed): " in text
    assert "paid@example.com" in text and "swiss@example.com" in text
    assert "hooked@example.com" in text  # its newer session would be onboarded
    assert "onboarded now:        5" in text
    assert "already onboarded:    1" in text


def test_stripe_requests_are_one_per_page_plus_a_constant(sandbox, services):
    n = 250
    sandbox.seed(count=n, service_id="website-care", currency="usd", created_from=T0 + 60, created_step=60)
    sandbox.reset_request_counts()

    summary = backfill("--no-email")

    counts = sandbox.request_counts()
    assert summary["counts"]["onboarded_now"] == n
    assert counts[LIST] == math.ceil(n / 100)
    # + the account (dj-stripe, once) and one list each of invoices, refunds and disputes (empty).
    assert counts["total"] <= math.ceil(n / 100) + 2 + 3, counts
    # Nothing is retrieved per session: no customer, payment intent or payment method requests.
    assert not [endpoint for endpoint in counts if "{id}" in endpoint], counts


def test_interrupted_run_resumes_after_its_checkpoint_and_ends_like_an_uninterrupted_run(sandbox, services):
    sandbox.seed(count=250, service_id="website-care", currency="usd", created_from=T0 + 60, created_step=60)

    # The uninterrupted run, measured and then rolled back.
    with transaction.atomic():
        expected_summary = onboarding_backfill(since=SINCE, until=UNTIL, no_email=True, rate=0)
        expected = end_state()
        transaction.set_rollback(True)
    assert not Onboarding.objects.exists()

    # Stripe fails hard from the second page on: the first run stops with page one done.
    def break_after_first_page(progress):
        if progress.seen == 100:
            sandbox.set_fault(endpoint=LIST, kind="http_500", count=10)

    sandbox.reset_request_counts()
    with pytest.raises(BackfillError, match="run the same command again"):
        onboarding_backfill(
            since=SINCE, until=UNTIL, no_email=True, rate=0, retry=FAST, progress=break_after_first_page
        )
    run = BackfillRun.objects.get()
    assert run.status == BackfillRun.Status.FAILED and run.counts["seen"] == 100
    assert Onboarding.objects.count() == 100
    assert run.last_session_id == Onboarding.objects.order_by("id").last().checkout_session_id

    # Ctrl-C in the middle of the second page: the page is one transaction, rolled back whole.
    sandbox.clear_faults()

    def interrupt(progress):
        if progress.seen == 150:
            raise KeyboardInterrupt

    sandbox.reset_request_counts()
    with pytest.raises(KeyboardInterrupt):
        onboarding_backfill(since=SINCE, until=UNTIL, no_email=True, rate=0, progress=interrupt)
    run.refresh_from_db()
    assert run.status == BackfillRun.Status.INTERRUPTED and run.counts["seen"] == 100
    assert Onboarding.objects.count() == 100 and Client.objects.count() == 100
    assert sandbox.request_counts()[LIST] == 1  # page one was not listed again

    sandbox.reset_request_counts()
    summary = onboarding_backfill(since=SINCE, until=UNTIL, no_email=True, rate=0)
    assert sandbox.request_counts()[LIST] == 2  # the interrupted page again, and the last one
    assert summary.resumed_after == run.last_session_id
    assert summary.status == "completed" and BackfillRun.objects.count() == 1

    assert end_state() == expected
    assert summary.counts == expected_summary.counts


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the page transaction is PostgreSQL's")
def test_a_session_failing_inside_a_page_is_counted_failed_and_the_rest_of_the_page_is_done(
    sandbox, services, caplog
):
    # The database refuses one session's onboarding (a CHECK constraint added for the test, as a
    # full disk or a bad row would), after the page's others were written.
    specs = [session(f"p{minute}@example.com", minute) for minute in range(1, 6)]
    made = sandbox.seed(sessions=specs)["sessions"]
    bad = made[2]
    with connection.cursor() as cursor:
        cursor.execute(
            f"ALTER TABLE {Onboarding._meta.db_table} ADD CONSTRAINT refuse_one "
            "CHECK (checkout_session_id <> %s) NOT VALID",
            [bad],
        )

    summary = onboarding_backfill(since=SINCE, until=UNTIL, no_email=True, rate=0)

    # The page was tried as one transaction, rolled back, and done again a session at a time.
    assert "doing the page one session at a time" in caplog.text
    assert summary.status == "completed"
    assert (summary.counts["seen"], summary.counts["onboarded_now"], summary.counts["failed"]) == (5, 4, 1)
    assert summary.failed_sessions == [bad]
    run = BackfillRun.objects.get()
    assert bad in run.last_error and "refuse_one" in run.last_error
    assert run.last_session_id == made[0]  # the oldest: the whole window was walked
    # The others once each: nothing of the rolled-back attempt is left, nothing is doubled.
    done = {sid for sid in made if sid != bad}
    assert set(Onboarding.objects.values_list("checkout_session_id", flat=True)) == done
    assert set(Payment.objects.values_list("checkout_session_id", flat=True)) == done
    assert Client.objects.count() == 4 and Payment.objects.count() == 4
    assert MoneyMovement.objects.count() == 4
    assert sorted(MoneyMovement.objects.values_list("amount", flat=True)) == [10000] * 4
    assert all(value == 10000 for value in Client.objects.values_list("invoiced_value", flat=True))
    lines = Counter(Activity.objects.values_list("client__email", "summary"))
    assert set(lines.values()) == {1} and len(lines) == 4 * 3
    assert Session.objects.filter(id__in=made).count() == 5  # the page's mirror was committed whole

    # Running it again fails that session again and adds nothing to the others.
    again = onboarding_backfill(since=SINCE, until=UNTIL, no_email=True, rate=0)
    assert (again.counts["already_onboarded"], again.counts["failed"]) == (4, 1)
    assert Onboarding.objects.count() == 4 and MoneyMovement.objects.count() == 4
    assert Activity.objects.count() == 4 * 3


def test_rate_limit_storm_and_failing_pages_are_survived(sandbox, services):
    sandbox.seed(count=120, service_id="website-care", currency="usd", created_from=T0 + 60, created_step=60)

    sandbox.set_fault(endpoint=LIST, kind="http_429", count=5)
    summary = onboarding_backfill(since=SINCE, until=UNTIL, no_email=True, retry=FAST, rate=0)
    assert summary.counts["onboarded_now"] == 120
    # Two session pages, the 429s, and one list each of invoices, refunds and disputes.
    assert summary.stripe_requests == 2 + 5 + 3
    assert sandbox.request_counts()[LIST] == 2 + 5

    # A fresh run (another window end) meets a failing page, then a timeout.
    sandbox.clear_faults()
    sandbox.set_fault(endpoint=LIST, kind="http_500", count=3)
    summary = onboarding_backfill(since=SINCE, until=UNTIL, retry=FAST, rate=0)
    assert summary.counts["already_onboarded"] == 120 and summary.stripe_requests == 2 + 3 + 3

    with stripe_timeout(1):
        sandbox.clear_faults()
        sandbox.set_fault(endpoint=LIST, kind="timeout", seconds=2, count=1)
        summary = onboarding_backfill(since=SINCE, until=UNTIL, retry=FAST, rate=0)
        assert summary.counts["already_onboarded"] == 120 and summary.stripe_requests == 2 + 1 + 3


def test_a_page_that_keeps_failing_stops_with_a_clear_message(sandbox, services):
    sandbox.seed(sessions=[session("a@example.com", 1)])
    sandbox.set_fault(endpoint=LIST, kind="http_500")

    with pytest.raises(
        CommandError, match=r"Backfill stopped \(run #\d+\).*5 attempts.*run the same command"
    ):
        call_command(
            "backfill_onboarding",
            "--since",
            "2025-03-01",
            "--until",
            "2025-04-01",
            "--rate",
            "1000",
            stdout=io.StringIO(),
        )
    assert BackfillRun.objects.get().status == BackfillRun.Status.FAILED


def test_since_until_and_service_narrow_the_backfill(sandbox, services):
    sandbox.seed(
        sessions=[
            session("feb@example.com", -60),
            session("march1@example.com", 10),
            session("march2@example.com", 60 * 24 * 10, service_id="seo-audit"),
            session("april@example.com", 60 * 24 * 31 + 5),
        ]
    )

    out = io.StringIO()
    call_command(
        "backfill_onboarding", "--since", "2025-03-01", "--until", "2025-03-05", "--json", stdout=out
    )
    assert set(statuses()) == {"march1@example.com"}
    assert json.loads(out.getvalue())["counts"]["seen"] == 1

    summary = backfill("--service", "seo-audit")
    assert set(statuses()) == {"march1@example.com", "march2@example.com"}
    assert (summary["counts"]["seen"], summary["counts"]["other_service"]) == (1, 1)
    assert Client.objects.get(email="march2@example.com").ordered_service.service_id == "seo-audit"


def test_plain_summary_lists_held_reasons(sandbox, services):
    sandbox.seed(sessions=[session("a@example.com", 1), session("swiss@example.com", 2, currency="chf")])
    out = io.StringIO()
    call_command("backfill_onboarding", "--since", "2025-03-01", "--until", "2025-04-01", stdout=out)
    text = out.getvalue()
    assert "sessions seen:        2" in text and "onboarded now:        1" in text
    assert "held for review:      1" in text and "currency_not_allowed: 1" in text
    assert "page 1:" in text  # plain progress lines when stdout is not a terminal


def test_rate_limiter_spaces_requests():
    clock = [0.0]
    limiter = RateLimiter(rate=20, clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    for _ in range(21):
        limiter.acquire()
    assert clock[0] == pytest.approx(1.0)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal(sandbox, services):
    sandbox.seed(sessions=[session("a@example.com", 1)])
    out, err = io.StringIO(), Terminal()
    call_command(
        "backfill_onboarding", "--since", "2025-03-01", "--until", "2025-04-01", stdout=out, stderr=err
    )
    bar, text = err.getvalue(), out.getvalue()
    assert "\r100%|" in bar and "1 sessions, 1 pages" in bar and "page 1:" not in text
    assert "onboarded now:        1" in text
