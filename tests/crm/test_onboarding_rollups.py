"""The dashboard's onboarding rollups (crm/onboarding_rollups.py) equal a full recount after any mix
of writes: the onboarding services (checkouts held or started, the email and workspace steps,
bounces, approvals, rejections, resends), ORM saves, queryset updates, bulk inserts, deletes,
Payments recorded, moved and deleted, and concurrent writers."""

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from django.core.management import call_command
from django.db import IntegrityError, OperationalError, connection, transaction
from djstripe.models import Session
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.models import Onboarding, OnboardingDayRollup, OnboardingQueueCount, Payment
from crm.onboarding_rollups import REBUILD_SQL
from crm.rollups import rollups_current, rollups_differences, rollups_rebuild
from crm.selectors.dashboard import dashboard_figures
from crm.services.email_tracking import TrackingFacts, email_event_record
from crm.services.emails import welcome_email_send
from crm.services.onboarding import (
    SessionFacts,
    onboarding_defaults,
    onboarding_finish_if_done,
    onboarding_record_unpaid,
    onboarding_start,
)
from crm.services.staff import onboarding_approve, onboarding_reject, provisioning_retry, welcome_email_resend
from crm.services.workspace_step import workspace_step_run
from tests.factories import ClientFactory, ServiceFactory
from tests.support.pipeline import in_own_connection

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the rollups' triggers are PostgreSQL's"),
    pytest.mark.usefixtures("anymail_outbox"),
]

T0 = datetime(2026, 11, 10, 12, tzinfo=UTC)
STATUSES = [s.value for s in Onboarding.Status]
STEPS = [s.value for s in Onboarding.StepStatus]
DELIVERIES = ["", *(d.value for d in Onboarding.EmailDelivery)]
REASONS = ["", "service_unknown", "email_bounced", "email_refused"]
sessions = count(1)


def facts(session_id: str, *, email: str, service_ref: str, currency: str) -> SessionFacts:
    """A paid Checkout Session as dj-stripe would have synced it."""
    return SessionFacts(
        session_id=session_id, payment_status="paid", email=email, name="N", service_ref=service_ref,
        amount=4900, currency=currency, livemode=False, payment_intent_id=f"pi_{session_id}",
        customer_id="cus_1", created=T0 - timedelta(days=len(session_id) % 3),
    )  # fmt: skip


def checkout(session_id: str, **fields) -> Onboarding:
    """What onboarding_sync_from_session does with a paid session; the session mirrored as dj-stripe
    syncs it (staff approval reads it again)."""
    session = facts(session_id, **fields)
    Session.objects.create(
        id=session_id,
        livemode=False,
        stripe_data={
            "payment_status": "paid", "customer_details": {"email": session.email, "name": "N"},
            "metadata": {"serviceId": session.service_ref}, "amount_total": session.amount,
            "currency": session.currency, "created": int(session.created.timestamp()),
        },
    )  # fmt: skip
    onboarding, _ = Onboarding.objects.get_or_create(
        checkout_session_id=session_id, defaults=onboarding_defaults(session)
    )
    return onboarding_start(onboarding, facts=session)


# Each input of the counted cells, with values that do and do not count.
ONE_COLUMN = [
    ("status", STATUSES),
    ("email_status", STEPS),
    ("workspace_status", STEPS),
    ("held_reason", REASONS),
    ("email_delivery", DELIVERIES),
    ("email_delivery_at", [T0, T0 + timedelta(days=1), None]),
    ("paid_at", [T0, T0 + timedelta(days=2), None]),
    ("onboarded_at", [T0 + timedelta(days=1), None]),
    ("created", [T0, T0 + timedelta(days=1)]),
]


def when(day: int, minutes: int) -> datetime | None:
    return None if day > 3 else T0 + timedelta(days=day, minutes=minutes)


write = st.tuples(
    st.sampled_from(
        [
            "checkout",
            "unpaid",
            "email",
            "workspace",
            "finish",
            "bounce",
            "approve",
            "reject",
            "resend",
            "retry",
            "update",
            "save",
            "bulk_create",
            "delete",
            "payment_add",
            "payment_delete",
            "payment_move",
            "delivery",
            "one_column",
        ]  # fmt: skip
    ),
    st.integers(min_value=0, max_value=10_000),  # which existing row
    st.integers(min_value=0, max_value=6),  # a status, step or reason
    st.integers(min_value=-3, max_value=4),  # a day (4: none)
    st.integers(min_value=0, max_value=5000),  # minutes into it
)


def apply(op: str, pick: int, choice: int, day: int, minutes: int, services) -> None:
    rows = list(Onboarding.objects.order_by("id"))
    row = rows[pick % len(rows)] if rows else None
    if op == "checkout":  # held (unknown service, currency) or started, with its Payment
        checkout(
            f"cs_roll_{next(sessions)}",
            email=f"c{choice % 3}@example.com",
            service_ref=("website-care", "seo", "nope")[choice % 3],
            currency=("usd", "usd", "cad")[pick % 3],
        )
    elif op == "unpaid":
        onboarding = Onboarding.objects.create(checkout_session_id=f"cs_roll_{next(sessions)}")
        session = facts(
            onboarding.checkout_session_id, email="u@example.com", service_ref="seo", currency="usd"
        )
        event = "checkout.session.async_payment_failed" if choice % 2 else ""
        onboarding_record_unpaid(onboarding, facts=session, event_type=event)
    elif row is None:
        return
    elif op == "email":
        welcome_email_send(onboarding_id=row.id)
    elif op == "workspace":
        workspace_step_run(onboarding_id=row.id)
    elif op == "finish":
        onboarding_finish_if_done(onboarding_id=row.id)
    elif op == "bounce" and row.email_message_id:
        email_event_record(
            facts=TrackingFacts(
                esp="test", event_type=("bounced", "complained", "delivered")[choice % 3],
                message_id=row.email_message_id, event_id=f"ev_{next(sessions)}",
                timestamp=when(day, minutes),
            )
        )  # fmt: skip
    elif op == "approve":
        onboarding_approve(onboarding=row, actor=None, service=services[choice % 2] if choice > 3 else None)
    elif op == "reject":
        onboarding_reject(onboarding=row, actor=None, note="no")
    elif op == "resend":
        welcome_email_resend(onboarding=row, actor=None)
    elif op == "retry":
        provisioning_retry(onboarding=row, actor=None)
    elif op == "update":  # a queryset update: no save(), no signals, several rows at once
        Onboarding.objects.filter(id__gte=row.id, id__lte=row.id + choice).update(
            status=STATUSES[choice % len(STATUSES)],
            email_status=STEPS[(choice + day) % len(STEPS)],
            workspace_status=STEPS[(choice + minutes) % len(STEPS)],
            paid_at=when(day, minutes),
        )
    elif op == "save":
        row.status, row.held_reason = STATUSES[(choice + 2) % len(STATUSES)], REASONS[choice % len(REASONS)]
        row.onboarded_at = when(day, minutes)
        row.created = T0 + timedelta(days=day % 3)
        row.save()
    elif op == "bulk_create":
        Onboarding.objects.bulk_create(
            Onboarding(
                checkout_session_id=f"cs_roll_{next(sessions)}",
                status=STATUSES[(choice + i) % len(STATUSES)],
                held_reason=REASONS[i % len(REASONS)], paid_at=when(day - i, minutes),
                onboarded_at=when(day + i, minutes * i), email_status=STEPS[(choice * i) % len(STEPS)],
                workspace_status=STEPS[(choice + i) % len(STEPS)], email_delivery=DELIVERIES[(day + i) % 8],
                email_delivery_at=when(day, minutes),
            )
            for i in range(3)
        )  # fmt: skip
    elif op == "delete":
        Onboarding.objects.filter(id=row.id).delete()
    elif (
        op == "payment_add"
        and not Payment.objects.filter(checkout_session_id=row.checkout_session_id).exists()
    ):
        # A Payment appears for an onboarding stopped without one (e.g. a backfill, a hand fix).
        Payment.objects.create(
            client=ClientFactory(), checkout_session_id=row.checkout_session_id, amount=100, currency="usd",
            paid_at=when(day, minutes) or T0,
        )  # fmt: skip
    elif op == "payment_delete":
        Payment.objects.filter(checkout_session_id=row.checkout_session_id).delete()
    elif op == "payment_move":  # to another onboarding's session, or to none
        other = rows[(pick + choice + 1) % len(rows)].checkout_session_id
        target = (
            other if not Payment.objects.filter(checkout_session_id=other).exists() else f"cs_gone_{pick}"
        )
        Payment.objects.filter(checkout_session_id=row.checkout_session_id).update(
            checkout_session_id=target, paid_at=when(day, minutes) or T0
        )
    elif op == "delivery":
        Onboarding.objects.filter(id=row.id).update(
            email_delivery=DELIVERIES[choice % len(DELIVERIES)], email_delivery_at=when(day, minutes)
        )
    elif op == "one_column":  # one counted input alone (the update trigger's WHEN must see each)
        column, values = ONE_COLUMN[(pick + minutes) % len(ONE_COLUMN)]
        Onboarding.objects.filter(id=row.id).update(**{column: values[choice % len(values)]})


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=st.lists(write, min_size=1, max_size=25))
def test_onboarding_rollups_equal_a_recount_after_random_writes(writes):
    sid = transaction.savepoint()
    try:
        services = [ServiceFactory(), ServiceFactory(service_id="seo", name="SEO")]
        for op, pick, choice, day, minutes in writes:
            apply(op, pick, choice, day, minutes, services)
        assert rollups_differences() == []
        # The migration's SQL rebuild and the command's rebuild count the same.
        before = rollups_current()
        with connection.cursor() as cursor:
            cursor.execute(REBUILD_SQL)
        assert rollups_current() == before
        rollups_rebuild()
        assert rollups_current() == before
    finally:
        transaction.savepoint_rollback(sid)


@pytest.mark.django_db
def test_the_windows_are_whole_utc_days():
    """Today, the last 7 days (today and the 6 before) and the last 30, as the money figures."""
    service = ServiceFactory()
    now = datetime(2026, 11, 10, 9, 30, tzinfo=UTC)
    for paid_at in (
        datetime(2026, 11, 10, 0, 0, tzinfo=UTC),  # today
        datetime(2026, 11, 4, 0, 5, tzinfo=UTC),  # six days before: in the 7 days
        datetime(2026, 11, 3, 23, 55, tzinfo=UTC),  # seven days before: in the 30 only
        datetime(2026, 10, 12, 0, 0, tzinfo=UTC),  # 29 days before: in the 30
        datetime(2026, 10, 11, 23, 59, tzinfo=UTC),  # 30 days before: in none
    ):
        onboarding = checkout(
            f"cs_day_{paid_at:%m%d%H%M}", email="d@example.com", service_ref="nope", currency="usd"
        )
        Onboarding.objects.filter(id=onboarding.id).update(paid_at=paid_at)
    Payment.objects.create(client=ClientFactory(), service=service, checkout_session_id="cs_p", amount=1,
                           currency="usd", paid_at=datetime(2026, 11, 10, 23, 59, tzinfo=UTC))  # fmt: skip

    counts = dashboard_figures(now=now).counts

    assert (counts["held"].today, counts["held"].last_7_days, counts["held"].last_30_days) == (1, 2, 4)
    # The payment later today counts today: a day is counted whole.
    assert (counts["paid"].today, counts["paid"].last_7_days, counts["paid"].last_30_days) == (2, 3, 5)


@pytest.mark.django_db
def test_a_payment_recorded_for_a_held_checkout_counts_it_once():
    """Held before its Payment: counted as paid through the onboarding; once the Payment exists,
    through the Payment only; rejected, still once; the Payment deleted, through the onboarding."""
    ServiceFactory()
    onboarding = checkout("cs_once", email="o@example.com", service_ref="nope", currency="usd")
    paid_at = onboarding.paid_at

    def paid_today() -> int:
        return dashboard_figures(now=paid_at).counts["paid"].today

    assert onboarding.status == Onboarding.Status.HELD and paid_today() == 1
    Payment.objects.create(
        client=ClientFactory(), checkout_session_id="cs_once", amount=1, currency="usd", paid_at=paid_at
    )
    assert paid_today() == 1
    onboarding_reject(onboarding=onboarding, actor=None, note="duplicate")
    assert paid_today() == 1
    Payment.objects.filter(checkout_session_id="cs_once").delete()
    assert paid_today() == 1
    assert rollups_differences() == []


def rollup_writes() -> int:
    """Rows this transaction inserted or updated in the onboarding rollups so far."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sum(pg_stat_get_xact_tuples_inserted(t::regclass)"
            " + pg_stat_get_xact_tuples_updated(t::regclass))"
            " FROM unnest(ARRAY['crm_onboardingdayrollup', 'crm_onboardingqueuecount',"
            " 'crm_onboardingdurationrollup']) AS t"
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_sending_the_welcome_email_touches_no_counter():
    """Updates that change nothing counted (the email step's claim, its send, its attempt count)
    write no rollup row, so they never wait on another onboarding's counters."""
    ServiceFactory()
    onboarding = checkout("cs_claim", email="e@example.com", service_ref="website-care", currency="usd")
    before = rollup_writes()

    assert welcome_email_send(onboarding_id=onboarding.id) == "done"

    assert rollup_writes() == before
    workspace_step_run(onboarding_id=onboarding.id)  # onboarded: now the counters move
    assert rollup_writes() > before


@pytest.mark.django_db
def test_command_reports_and_rebuilds_onboarding_rollups_that_drifted(capsys):
    ServiceFactory()
    checkout("cs_drift", email="x@example.com", service_ref="nope", currency="usd")
    OnboardingQueueCount.objects.update(total=7)  # as a hand edit or a trigger-less restore would
    OnboardingDayRollup.objects.filter(measure="held").delete()
    with pytest.raises(Exception, match="differ"):
        call_command("dashboard_rollups")
    out = capsys.readouterr().out
    assert "onboarding_queues held: stored 7, recounted 1" in out
    call_command("dashboard_rollups", "--rebuild")
    call_command("dashboard_rollups")
    assert "equal a full recount" in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_the_onboarding_rollups_equal_to_a_recount():
    """Eight threads, each with its own connection, hold, reject and release the same few checkouts
    while others record, move and delete their Payments, insert held onboardings for sessions whose
    Payment is being recorded, and run the steps of fresh onboardings, all on the same day's cells."""
    ServiceFactory(), ServiceFactory(service_id="seo", name="SEO")
    shared = [f"cs_shared_{n}" for n in range(4)]
    for session_id in shared:
        checkout(session_id, email=f"{session_id}@example.com", service_ref="nope", currency="usd")
    client = ClientFactory()
    deadlocks = []

    def writer(worker: int) -> None:
        rng = random.Random(worker)
        for n in range(30):
            for _attempt in range(5):
                try:
                    with transaction.atomic():
                        step(rng, worker, n)
                    break
                except OperationalError as error:  # aborted whole, rollups included: retried
                    assert "deadlock" in str(error)
                    deadlocks.append(worker)
                except IntegrityError:  # another writer recorded that Payment first: look again
                    pass

    def step(rng: random.Random, worker: int, n: int) -> None:
        session_id = rng.choice(shared)
        kind = rng.randrange(5)
        if kind == 0:  # the onboarding's status moves in and out of held / rejected
            Onboarding.objects.filter(checkout_session_id=session_id).update(
                status=rng.choice(["held", "rejected", "in_progress", "failed"]), paid_at=T0
            )
        elif kind == 1:  # its Payment appears or goes
            if not Payment.objects.filter(checkout_session_id=session_id).delete()[0]:
                Payment.objects.create(
                    client=client, checkout_session_id=session_id, amount=1, currency="usd", paid_at=T0
                )
        elif kind == 2:  # a new held onboarding and its Payment, written by two racing writers
            fresh = f"cs_race_{n % 6}"
            if rng.random() < 0.5:
                Onboarding.objects.get_or_create(
                    checkout_session_id=fresh, defaults={"status": "held", "paid_at": T0}
                )
            elif not Payment.objects.filter(checkout_session_id=fresh).exists():
                Payment.objects.create(
                    client=client, checkout_session_id=fresh, amount=1, currency="usd", paid_at=T0
                )
        elif kind == 3:  # a fresh checkout through the services, then its steps
            onboarding = checkout(
                f"cs_w{worker}_{n}",
                email=f"w{worker}@example.com",
                service_ref=rng.choice(["website-care", "seo"]),
                currency="usd",
            )
            workspace_step_run(onboarding_id=onboarding.id)
        else:  # a Payment moves between two shared sessions
            source, target = rng.sample(shared, 2)
            if not Payment.objects.filter(checkout_session_id=target).exists():
                Payment.objects.filter(checkout_session_id=source).update(checkout_session_id=target)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda worker: in_own_connection(writer, worker), range(8)))
    assert rollups_differences() == []


@pytest.mark.django_db
@pytest.mark.parametrize("column, values", ONE_COLUMN, ids=[column for column, _ in ONE_COLUMN])
def test_each_counted_input_changed_alone_keeps_the_rollups_equal_to_a_recount(column, values):
    """The update trigger runs only when its WHEN clause sees a counted input change: each input,
    changed alone to every value (counted or not) on a held and an onboarding under way."""
    ServiceFactory()
    held = checkout("cs_alone_held", email="h@example.com", service_ref="nope", currency="usd")
    started = checkout("cs_alone_started", email="s@example.com", service_ref="website-care", currency="usd")
    for onboarding in (held, started):
        for value in [*values, values[0]]:
            Onboarding.objects.filter(id=onboarding.id).update(**{column: value})
            assert rollups_differences() == [], (column, value)
