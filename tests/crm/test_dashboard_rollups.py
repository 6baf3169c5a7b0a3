"""The dashboard's rollups (crm/rollups.py) equal a full recount after any mix of writes: ORM saves,
queryset updates and deletes, bulk inserts, the ledger's services, and concurrent writers."""

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import OperationalError, connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.models import ChurnDayRollup, Client, LedgerDayRollup, MoneyMovement, SubscriptionMrr
from crm.rollups import (
    monthly_amount,
    mrr_totals,
    rollups_current,
    rollups_differences,
    rollups_rebuild,
    stored_mrr_totals,
    subscription_mrr_refresh,
)
from crm.selectors.money_dashboard import money_figures
from crm.services.ledger import ledger_cancellation_record, ledger_payment_record, ledger_refund_record
from tests.factories import ClientFactory, ServiceFactory
from tests.support.pipeline import in_own_connection

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the rollups' triggers are PostgreSQL's"
)

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
KINDS = ("payment", "refund", "dispute", "cancellation")
STATUSES = {
    "payment": ("paid", "payment_failed"),
    "refund": ("succeeded", "failed", "pending"),
    "dispute": ("lost", "won", "needs_response"),
    "cancellation": ("canceled",),
}
COUNTS = {"paid", "succeeded", "lost"}
LIFECYCLE = ("active", "at_risk", "churned")


def movement(n: int, *, kind: str, status: str, amount: int, currency: str, day: int, service, client):
    return MoneyMovement(
        stripe_id=f"mm_{n}",
        kind=kind,
        status=status,
        counts=kind != "cancellation" and status in COUNTS,
        amount=amount,
        currency=currency,
        occurred_at=T0 + timedelta(days=day, hours=day % 5),
        service=service,
        client=client,
    )


SUBSCRIPTIONS = ("sub_a", "sub_b", "sub_c")

write = st.tuples(
    st.sampled_from(
        [
            "create",
            "bulk_create",
            "save",
            "update",
            "delete",
            "client",
            "client_status",
            "subscription",
            "cancel",
        ]
    ),
    st.sampled_from(KINDS),
    st.integers(min_value=0, max_value=3),  # status index
    st.integers(min_value=0, max_value=50_000),
    st.sampled_from(["usd", "eur", "jpy"]),
    st.integers(min_value=-3, max_value=3),  # day
    st.integers(min_value=0, max_value=2),  # service index (2: none)
    st.integers(min_value=0, max_value=10_000),  # which existing row
)


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=st.lists(write, min_size=1, max_size=25))
def test_rollups_equal_a_recount_after_random_writes(writes):
    sid = transaction.savepoint()
    try:
        services = [ServiceFactory(), ServiceFactory(service_id="seo", name="SEO"), None]
        clients = [ClientFactory()]
        for n, (op, kind, status_i, amount, currency, day, service_i, pick) in enumerate(writes, start=1):
            status = STATUSES[kind][status_i % len(STATUSES[kind])]
            rows = list(MoneyMovement.objects.order_by("id"))
            row = rows[pick % len(rows)] if rows else None
            fields = dict(kind=kind, status=status, amount=amount, currency=currency, day=day)
            if op == "create":
                movement(n, **fields, service=services[service_i], client=clients[0]).save()
            elif op == "bulk_create":
                MoneyMovement.objects.bulk_create(
                    [movement(n * 100 + i, **fields, service=services[i % 3], client=None) for i in range(3)]
                )
            elif op == "save" and row is not None:
                row.status, row.counts = status, row.kind != "cancellation" and status in COUNTS
                row.amount, row.occurred_at = amount, row.occurred_at + timedelta(days=day)
                row.save()
            elif op == "update" and row is not None:  # a queryset update: no save(), no signals
                MoneyMovement.objects.filter(id__gte=row.id).update(
                    currency=currency, service=services[service_i], counts=status in COUNTS
                )
            elif op == "delete" and row is not None:
                MoneyMovement.objects.filter(id=row.id).delete()
            elif op == "client":
                clients.append(ClientFactory(lifecycle_status=LIFECYCLE[status_i % 3]))
            elif op == "client_status":
                Client.objects.filter(id=clients[pick % len(clients)].id).update(
                    lifecycle_status=LIFECYCLE[status_i % 3], lifecycle_changed_at=T0 + timedelta(days=day)
                )
            elif op in ("subscription", "cancel"):  # a renewal (its period and amount) or a cancellation
                kind, status = ("payment", ("paid", "payment_failed")[status_i % 2])
                if op == "cancel":
                    kind, status = "cancellation", "canceled"
                row = movement(
                    n, kind=kind, status=status, amount=amount, currency=currency, day=day,
                    service=services[service_i], client=clients[0],
                )  # fmt: skip
                row.subscription_id, row.period_days = SUBSCRIPTIONS[pick % 3], (7, 30, 365, None)[status_i]
                row.save()
            # As the ledger's services do after their writes: each subscription's MRR recomputed.
            for subscription in SUBSCRIPTIONS:
                subscription_mrr_refresh(subscription)
        assert rollups_differences() == []
        # A rebuild from scratch changes nothing either.
        before = rollups_current()
        rollups_rebuild()
        assert rollups_current() == before
    finally:
        transaction.savepoint_rollback(sid)


mrr_write = st.tuples(
    st.sampled_from(["create", "bulk_create", "save", "update", "delete"]),
    st.integers(min_value=0, max_value=10_000),  # which existing row
    st.sampled_from(["usd", "eur", "jpy"]),
    st.integers(min_value=0, max_value=900_000),
    st.booleans(),
)


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=st.lists(mrr_write, min_size=1, max_size=20))
def test_mrr_totals_equal_the_sum_of_the_subscriptions_after_random_writes(writes):
    """The per-currency totals the dashboard reads equal the active subscriptions summed, whatever
    writes SubscriptionMrr: creates, bulk inserts, saves, queryset updates, deletes."""
    sid = transaction.savepoint()
    try:
        for n, (op, pick, currency, amount, active) in enumerate(writes):
            rows = list(SubscriptionMrr.objects.order_by("id"))
            row = rows[pick % len(rows)] if rows else None
            if op == "create":
                SubscriptionMrr.objects.create(
                    subscription_id=f"sub_{n}", currency=currency, monthly_amount=amount, active=active
                )
            elif op == "bulk_create":
                SubscriptionMrr.objects.bulk_create(
                    SubscriptionMrr(
                        subscription_id=f"sub_{n}_{i}", currency=currency, monthly_amount=amount + i,
                        active=active or i == 1,
                    )
                    for i in range(3)
                )  # fmt: skip
            elif op == "save" and row is not None:
                row.currency, row.monthly_amount, row.active = currency, amount, active
                row.save()
            elif op == "update" and row is not None:  # several rows, no save()
                SubscriptionMrr.objects.filter(id__gte=row.id).update(active=active, currency=currency)
            elif op == "delete" and row is not None:
                row.delete()
        assert stored_mrr_totals() == mrr_totals(
            SubscriptionMrr.objects.values_list("currency", "monthly_amount", "active")
        )
    finally:
        transaction.savepoint_rollback(sid)


def test_monthly_normalisation_in_minor_units():
    assert monthly_amount(4900, 30) == 4900
    assert monthly_amount(4900, None) == 4900  # unknown period: a month
    assert monthly_amount(120_000, 365) == 10_000  # yearly / 12
    assert monthly_amount(120_001, 366) == 10_000  # integers, rounded
    assert monthly_amount(700, 7) == 3044  # weekly × 365.25 / 12 / 7
    assert monthly_amount(6000, 91) == 2000  # quarterly


@pytest.mark.django_db
def test_ledger_services_keep_mrr_revenue_net_and_churn(django_capture_on_commit_callbacks):
    service = ServiceFactory()
    client = ClientFactory(currency="eur")
    today = T0.date()
    common = dict(client=client, service=service, livemode=False, customer_id="cus_1")
    ledger_payment_record(
        stripe_id="in_year", amount=120_000, currency="eur", status="paid", occurred_at=T0,
        subscription_id="sub_year", invoice_id="in_year", period_days=365, payment_intent_id="pi_year",
        **common,
    )  # fmt: skip
    ledger_payment_record(
        stripe_id="in_week", amount=700, currency="eur", status="paid", occurred_at=T0,
        subscription_id="sub_week", invoice_id="in_week", period_days=7, **common,
    )  # fmt: skip
    ledger_refund_record(
        refund={"id": "re_1", "amount": 20_000, "currency": "eur", "status": "succeeded",
                "payment_intent": "pi_year", "created": int(T0.timestamp()), "balance_transaction": None}
    )  # fmt: skip
    figures = money_figures(today=today)
    (eur,) = figures.currencies
    assert (eur.paid["today"], eur.refunded["today"], eur.net["today"]) == (120_700, 20_000, 100_700)
    assert (eur.active_subscriptions, eur.mrr) == (2, 10_000 + 3044)

    ledger_cancellation_record(
        subscription={
            "id": "sub_week",
            "currency": "eur",
            "canceled_at": int(T0.timestamp()),
            "customer": "cus_1",
        }
    )
    (eur,) = money_figures(today=today).currencies
    assert (eur.active_subscriptions, eur.mrr) == (1, 10_000)
    assert rollups_differences() == []


@pytest.mark.django_db
def test_command_reports_and_rebuilds_a_rollup_that_drifted(capsys):
    ClientFactory(lifecycle_status="churned")
    MoneyMovement.objects.create(
        stripe_id="cs_1",
        kind="payment",
        status="paid",
        counts=True,
        amount=500,
        currency="usd",
        occurred_at=T0,
    )
    LedgerDayRollup.objects.update(paid=1)  # drift, as a hand edit or a trigger-less restore would
    ChurnDayRollup.objects.all().delete()
    with pytest.raises(Exception, match="differ"):
        call_command("dashboard_rollups")
    call_command("dashboard_rollups", "--rebuild")
    call_command("dashboard_rollups")
    assert "equal a full recount" in capsys.readouterr().out
    assert LedgerDayRollup.objects.get().paid == 500


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_the_rollups_equal_to_a_recount():
    """Eight threads, each with its own connection and transactions, write into the same few rollup
    cells at once (inserts, status flips, amount changes, deletes, client status changes, MRR)."""
    services = [ServiceFactory(), ServiceFactory(service_id="seo", name="SEO")]
    clients = [ClientFactory() for _ in range(8)]
    MoneyMovement.objects.create(
        stripe_id="in_shared", kind="payment", status="paid", counts=True, amount=1000, currency="usd",
        occurred_at=T0, subscription_id="sub_shared", period_days=30,
    )  # fmt: skip

    deadlocks = []

    def writer(worker: int) -> None:
        rng = random.Random(worker)
        for n in range(40):
            for _attempt in range(5):
                try:
                    write(rng, n, worker)
                    break
                except OperationalError as error:  # aborted whole, rollups included: retried
                    assert "deadlock" in str(error)
                    deadlocks.append(worker)

    def write(rng: random.Random, n: int, worker: int) -> None:
        with transaction.atomic():
            row = MoneyMovement.objects.create(
                stripe_id=f"mm_{worker}_{n}", kind=rng.choice(["payment", "refund", "dispute"]),
                status="paid", counts=rng.random() < 0.7, amount=rng.randint(1, 9999),
                currency=rng.choice(["usd", "eur"]), occurred_at=T0 + timedelta(days=rng.randint(0, 1)),
                service=rng.choice(services), subscription_id="sub_shared" if n % 5 == 0 else "",
            )  # fmt: skip
            if rng.random() < 0.5:
                MoneyMovement.objects.filter(id=row.id).update(
                    counts=not row.counts, amount=rng.randint(1, 99)
                )
            if rng.random() < 0.1:
                row.delete()
            Client.objects.filter(id=rng.choice(clients).id).update(
                lifecycle_status=rng.choice(LIFECYCLE), lifecycle_changed_at=T0 + timedelta(days=n % 3)
            )
            subscription_mrr_refresh("sub_shared")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda worker: in_own_connection(writer, worker), range(8)))
    assert rollups_differences() == []
    assert SubscriptionMrr.objects.filter(subscription_id="sub_shared").count() == 1
