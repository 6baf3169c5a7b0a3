"""The dashboard's rollups: counted money per day, clients per lifecycle status, churn per day, MRR.

How they stay right:

- `crm_ledgerdayrollup`, `crm_clientstatuscount` and `crm_churndayrollup` are kept by PostgreSQL
  triggers (`TRIGGERS_SQL`, installed by migration 0017) on `crm_moneymovement` and `crm_client`.
  A trigger runs inside the statement that writes the row, so the rollup changes in the same
  transaction, whatever wrote it: the ledger's services, a queryset `.update()`, `bulk_create`,
  the backfill, the admin, a COPY. Each trigger takes away the old row's contribution and adds the
  new one with `INSERT ... ON CONFLICT DO UPDATE SET x = x + EXCLUDED.x`, which PostgreSQL makes
  atomic per rollup row, so concurrent writers never lose an update. A statement touching two
  cells takes them in key order; transactions that write many cells in different orders can
  still deadlock, and then PostgreSQL aborts one of them whole (its rollup changes with it), so
  the rollups stay right and the writer retries (tasks and webhook jobs do). The two hot tables
  are sharded (the row's id mod 8, summed on read), so concurrent onboardings rarely wait on
  one counter row until the other commits.
- `crm_subscriptionmrr` (one row per subscription) is recomputed from the ledger by
  `subscription_mrr_refresh`, called by the ledger in the transaction that records the
  subscription's payment or cancellation, under a per-subscription advisory lock; a trigger on it
  keeps `crm_subscriptionmrrtotal` (active subscriptions and MRR per currency, `MRR_TRIGGERS_SQL`,
  migration 0019), so the dashboard does not sum every subscription.
- The onboarding rollups (checkouts per day, work queues, payment → onboarded durations) are
  crm/onboarding_rollups.py's, kept the same way by triggers on `crm_onboarding` and `crm_payment`.
- `rollups_rebuild` recounts all of them from the tables they summarise (`manage.py
  dashboard_rollups --rebuild`; migrations 0017 and 0018 count them once in SQL); `rollups_recount`
  is the recount itself, which the tests compare with the rollups and which the dashboard uses on
  SQLite (no triggers there).

Days are UTC dates (TIME_ZONE is UTC): `(occurred_at AT TIME ZONE 'UTC')::date`.
"""

from collections import defaultdict

from django.db import connection, transaction
from django.db.models import Count, F, Sum
from django.db.models.functions import Coalesce, TruncDate

from core.locks import lock_name_for_transaction

from . import onboarding_rollups
from .models import (
    ChurnDayRollup,
    Client,
    ClientStatusCount,
    LedgerDayRollup,
    MoneyMovement,
    SubscriptionMrr,
    SubscriptionMrrTotal,
)

Kind = MoneyMovement.Kind
CHURNED = Client.LifecycleStatus.CHURNED
DAYS_PER_MONTH = 365.25 / 12

REBUILD_SQL = """
DELETE FROM crm_ledgerdayrollup;
INSERT INTO crm_ledgerdayrollup (day, currency, service_key, shard, paid, refunded, disputed, payments)
SELECT (occurred_at AT TIME ZONE 'UTC')::date, currency, COALESCE(service_id, 0), 0,
       COALESCE(SUM(amount) FILTER (WHERE kind = 'payment'), 0),
       COALESCE(SUM(amount) FILTER (WHERE kind = 'refund'), 0),
       COALESCE(SUM(amount) FILTER (WHERE kind = 'dispute'), 0),
       COUNT(*) FILTER (WHERE kind = 'payment')
FROM crm_moneymovement WHERE counts AND kind IN ('payment', 'refund', 'dispute')
GROUP BY 1, 2, 3;
DELETE FROM crm_clientstatuscount;
INSERT INTO crm_clientstatuscount (status, shard, clients)
SELECT lifecycle_status, 0, COUNT(*) FROM crm_client GROUP BY 1;
DELETE FROM crm_churndayrollup;
INSERT INTO crm_churndayrollup (day, churned)
SELECT (COALESCE(lifecycle_changed_at, created) AT TIME ZONE 'UTC')::date, COUNT(*)
FROM crm_client WHERE lifecycle_status = 'churned' GROUP BY 1;
"""

TRIGGERS_SQL = """
CREATE OR REPLACE FUNCTION crm_ledger_rollup_add(m crm_moneymovement, sign integer) RETURNS void AS $$
BEGIN
    IF NOT m.counts OR m.kind NOT IN ('payment', 'refund', 'dispute') THEN
        RETURN;
    END IF;
    INSERT INTO crm_ledgerdayrollup AS r
        (day, currency, service_key, shard, paid, refunded, disputed, payments)
    VALUES (
        (m.occurred_at AT TIME ZONE 'UTC')::date, m.currency, COALESCE(m.service_id, 0), m.id % 8,
        CASE WHEN m.kind = 'payment' THEN sign * m.amount ELSE 0 END,
        CASE WHEN m.kind = 'refund' THEN sign * m.amount ELSE 0 END,
        CASE WHEN m.kind = 'dispute' THEN sign * m.amount ELSE 0 END,
        CASE WHEN m.kind = 'payment' THEN sign ELSE 0 END
    )
    ON CONFLICT (day, currency, service_key, shard) DO UPDATE SET
        paid = r.paid + EXCLUDED.paid,
        refunded = r.refunded + EXCLUDED.refunded,
        disputed = r.disputed + EXCLUDED.disputed,
        payments = r.payments + EXCLUDED.payments;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION crm_ledger_rollup_trigger() RETURNS trigger AS $$
BEGIN
    -- Two cells (an update that moves a row): always in key order, so that two such updates
    -- lock the cells in the same order and cannot deadlock each other.
    IF TG_OP = 'UPDATE'
        AND ((NEW.occurred_at AT TIME ZONE 'UTC')::date, NEW.currency, COALESCE(NEW.service_id, 0))
        < ((OLD.occurred_at AT TIME ZONE 'UTC')::date, OLD.currency, COALESCE(OLD.service_id, 0)) THEN
        PERFORM crm_ledger_rollup_add(NEW, 1);
        PERFORM crm_ledger_rollup_add(OLD, -1);
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM crm_ledger_rollup_add(OLD, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM crm_ledger_rollup_add(NEW, 1);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS crm_ledger_rollup ON crm_moneymovement;
CREATE TRIGGER crm_ledger_rollup AFTER INSERT OR DELETE OR UPDATE OF
    kind, counts, amount, currency, occurred_at, service_id
    ON crm_moneymovement FOR EACH ROW EXECUTE FUNCTION crm_ledger_rollup_trigger();

CREATE OR REPLACE FUNCTION crm_client_rollup_add(c crm_client, sign integer) RETURNS void AS $$
BEGIN
    INSERT INTO crm_clientstatuscount AS s (status, shard, clients)
    VALUES (c.lifecycle_status, c.id % 8, sign)
    ON CONFLICT (status, shard) DO UPDATE SET clients = s.clients + EXCLUDED.clients;
    IF c.lifecycle_status = 'churned' THEN
        INSERT INTO crm_churndayrollup AS d (day, churned)
        VALUES ((COALESCE(c.lifecycle_changed_at, c.created) AT TIME ZONE 'UTC')::date, sign)
        ON CONFLICT (day) DO UPDATE SET churned = d.churned + EXCLUDED.churned;
    END IF;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION crm_client_rollup_trigger() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.lifecycle_status IS NOT DISTINCT FROM NEW.lifecycle_status
        AND (NEW.lifecycle_status <> 'churned'
             OR OLD.lifecycle_changed_at IS NOT DISTINCT FROM NEW.lifecycle_changed_at) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.lifecycle_status < OLD.lifecycle_status THEN  -- key order, as above
        PERFORM crm_client_rollup_add(NEW, 1);
        PERFORM crm_client_rollup_add(OLD, -1);
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM crm_client_rollup_add(OLD, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM crm_client_rollup_add(NEW, 1);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS crm_client_rollup ON crm_client;
CREATE TRIGGER crm_client_rollup AFTER INSERT OR DELETE OR UPDATE OF lifecycle_status, lifecycle_changed_at
    ON crm_client FOR EACH ROW EXECUTE FUNCTION crm_client_rollup_trigger();
"""

# Installed by migration 0019 (not part of TRIGGERS_SQL, which migration 0017 runs before the
# totals table exists).
MRR_TRIGGERS_SQL = """
CREATE OR REPLACE FUNCTION crm_mrr_total_add(m crm_subscriptionmrr, sign integer) RETURNS void AS $$
BEGIN
    IF NOT m.active THEN
        RETURN;
    END IF;
    INSERT INTO crm_subscriptionmrrtotal AS t (currency, shard, subscriptions, mrr)
    VALUES (m.currency, m.id % 8, sign, sign * m.monthly_amount)
    ON CONFLICT (currency, shard) DO UPDATE SET
        subscriptions = t.subscriptions + EXCLUDED.subscriptions, mrr = t.mrr + EXCLUDED.mrr;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION crm_mrr_total_trigger() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.active = OLD.active AND NEW.currency = OLD.currency
        AND NEW.monthly_amount = OLD.monthly_amount AND NEW.id = OLD.id THEN
        RETURN NULL;  -- a refresh that changed nothing (most renewals): no counter row touched
    END IF;
    IF TG_OP = 'UPDATE' AND (NEW.currency, NEW.id % 8) < (OLD.currency, OLD.id % 8) THEN  -- key order
        PERFORM crm_mrr_total_add(NEW, 1);
        PERFORM crm_mrr_total_add(OLD, -1);
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM crm_mrr_total_add(OLD, -1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM crm_mrr_total_add(NEW, 1);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS crm_mrr_total ON crm_subscriptionmrr;
CREATE TRIGGER crm_mrr_total AFTER INSERT OR DELETE OR UPDATE OF id, currency, monthly_amount, active
    ON crm_subscriptionmrr FOR EACH ROW EXECUTE FUNCTION crm_mrr_total_trigger();
"""

MRR_REBUILD_SQL = """
DELETE FROM crm_subscriptionmrrtotal;
INSERT INTO crm_subscriptionmrrtotal (currency, shard, subscriptions, mrr)
SELECT currency, 0, COUNT(*), SUM(monthly_amount) FROM crm_subscriptionmrr WHERE active GROUP BY 1;
"""

MRR_DROP_TRIGGERS_SQL = """
DROP TRIGGER IF EXISTS crm_mrr_total ON crm_subscriptionmrr;
DROP FUNCTION IF EXISTS crm_mrr_total_trigger();
DROP FUNCTION IF EXISTS crm_mrr_total_add(crm_subscriptionmrr, integer);
"""

# Every rollup trigger as (table, trigger): bulk loads switch them off, then rebuild (REBUILD_SQL,
# MRR_REBUILD_SQL and onboarding_rollups.REBUILD_SQL).
TRIGGERS = (
    ("crm_moneymovement", "crm_ledger_rollup"),
    ("crm_client", "crm_client_rollup"),
    ("crm_subscriptionmrr", "crm_mrr_total"),
    *onboarding_rollups.TRIGGERS,
)

DROP_TRIGGERS_SQL = """
DROP TRIGGER IF EXISTS crm_ledger_rollup ON crm_moneymovement;
DROP TRIGGER IF EXISTS crm_client_rollup ON crm_client;
DROP FUNCTION IF EXISTS crm_ledger_rollup_trigger();
DROP FUNCTION IF EXISTS crm_ledger_rollup_add(crm_moneymovement, integer);
DROP FUNCTION IF EXISTS crm_client_rollup_trigger();
DROP FUNCTION IF EXISTS crm_client_rollup_add(crm_client, integer);
"""


def monthly_amount(amount: int, period_days: int | None) -> int:
    """A payment for `period_days` as a month's worth, in minor units (unknown period: a month).

    Whole months (28–31 days a month, e.g. 365 days = 12 months) divide by the months; shorter
    periods (a week, 14 days) scale by days: a weekly 700 is 700 × 365.25 / 12 / 7 = 3044.
    """
    if not period_days or 28 <= period_days <= 31:
        return amount
    if period_days > 31:
        months = max(1, round(period_days / DAYS_PER_MONTH))
        return round(amount / months)
    return round(amount * DAYS_PER_MONTH / period_days)


def subscription_mrr_values(subscription_id: str) -> dict | None:
    """What the subscription's MRR row should hold, from the ledger; None if it has no payment."""
    movements = MoneyMovement.objects.filter(subscription_id=subscription_id)
    latest = movements.filter(kind=Kind.PAYMENT, counts=True).order_by("occurred_at", "id").last()
    if latest is None:
        return None
    cancelled = movements.filter(kind=Kind.CANCELLATION).exists()
    return {
        "currency": latest.currency,
        "monthly_amount": monthly_amount(latest.amount, latest.period_days),
        "active": not cancelled,
    }


def subscription_mrr_refresh(subscription_id: str) -> None:
    """Recompute one subscription's MRR row from the ledger (in the caller's transaction)."""
    if not subscription_id:
        return
    with transaction.atomic():
        lock_name_for_transaction(f"subscription-mrr:{subscription_id}")
        values = subscription_mrr_values(subscription_id)
        if values is None:
            SubscriptionMrr.objects.filter(subscription_id=subscription_id).delete()
        else:
            SubscriptionMrr.objects.update_or_create(subscription_id=subscription_id, defaults=values)


# -- recount and rebuild ----------------------------------------------------------------------------


def rollups_recount() -> dict:
    """Every rollup recounted from the tables it summarises, as plain data (see `rollups_current`)."""
    return money_rollups_recount() | onboarding_rollups.onboarding_rollups_recount()


def money_rollups_recount() -> dict:
    """The ledger's and the clients' rollups recounted (the money figures on SQLite use this)."""
    ledger: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    rows = (
        MoneyMovement.objects.filter(counts=True, kind__in=[Kind.PAYMENT, Kind.REFUND, Kind.DISPUTE])
        .annotate(day=TruncDate("occurred_at"))
        .values("day", "currency", "service_id", "kind")
        .annotate(total=Coalesce(Sum("amount"), 0), n=Count("id"))
        .order_by()
    )
    for row in rows:
        cell = ledger[(row["day"], row["currency"], row["service_id"] or 0)]
        if row["kind"] == Kind.PAYMENT:
            cell[0] += row["total"]
            cell[3] += row["n"]
        elif row["kind"] == Kind.REFUND:
            cell[1] += row["total"]
        else:
            cell[2] += row["total"]
    statuses = dict(
        Client.objects.values("lifecycle_status").annotate(n=Count("id")).values_list("lifecycle_status", "n")
    )
    churn = dict(
        Client.objects.filter(lifecycle_status=CHURNED)
        .annotate(day=TruncDate(Coalesce(F("lifecycle_changed_at"), F("created"))))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    subscriptions = {}
    ids = (
        MoneyMovement.objects.filter(kind=Kind.PAYMENT, counts=True)
        .exclude(subscription_id="")
        .values_list("subscription_id", flat=True)
        .distinct()
    )
    for subscription_id in ids:
        values = subscription_mrr_values(subscription_id)
        if values is not None:
            subscriptions[subscription_id] = (values["currency"], values["monthly_amount"], values["active"])
    return {
        "ledger": {key: tuple(cell) for key, cell in ledger.items() if any(cell)},
        "statuses": {status: n for status, n in statuses.items() if n},
        "churn": {day: n for day, n in churn.items() if n},
        "subscriptions": subscriptions,
        "mrr_totals": mrr_totals(subscriptions.values()),
    }


def mrr_totals(subscriptions) -> dict[str, tuple[int, int]]:
    """(active subscriptions, MRR) per currency of (currency, monthly_amount, active) triples."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for currency, monthly, active in subscriptions:
        if active:
            totals[currency][0] += 1
            totals[currency][1] += monthly
    return {currency: (n, mrr) for currency, (n, mrr) in totals.items() if n or mrr}


def rollups_current() -> dict:
    """The rollups as stored, in `rollups_recount`'s shape (empty cells left out)."""
    ledger: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for r in LedgerDayRollup.objects.all():  # summed over the shards
        cell = ledger[(r.day, r.currency, r.service_key)]
        for i, value in enumerate((r.paid, r.refunded, r.disputed, r.payments)):
            cell[i] += value
    statuses: dict[str, int] = defaultdict(int)
    for s in ClientStatusCount.objects.all():
        statuses[s.status] += s.clients
    return {
        "ledger": {key: tuple(cell) for key, cell in ledger.items() if any(cell)},
        "statuses": {status: n for status, n in statuses.items() if n},
        "churn": {c.day: c.churned for c in ChurnDayRollup.objects.all() if c.churned},
        "subscriptions": {
            s.subscription_id: (s.currency, s.monthly_amount, s.active) for s in SubscriptionMrr.objects.all()
        },
        "mrr_totals": stored_mrr_totals(),
        **onboarding_rollups.onboarding_rollups_current(),
    }


def stored_mrr_totals() -> dict[str, tuple[int, int]]:
    """crm_subscriptionmrrtotal summed over its shards (zero rows left out)."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for t in SubscriptionMrrTotal.objects.all():
        totals[t.currency][0] += t.subscriptions
        totals[t.currency][1] += t.mrr
    return {currency: (n, mrr) for currency, (n, mrr) in totals.items() if n or mrr}


def rollups_rebuild() -> dict[str, int]:
    """Recount every rollup from scratch, in one transaction (writers of the ledger, clients,
    onboardings and payments wait for it: the tables it reads are locked in SHARE mode, which blocks
    writes, not reads)."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "LOCK TABLE crm_moneymovement, crm_client, crm_onboarding, crm_payment,"
                    " crm_subscriptionmrr IN SHARE MODE"
                )
        counted = rollups_recount()
        LedgerDayRollup.objects.all().delete()
        ClientStatusCount.objects.all().delete()
        ChurnDayRollup.objects.all().delete()
        SubscriptionMrr.objects.all().delete()
        LedgerDayRollup.objects.bulk_create(
            LedgerDayRollup(
                day=day, currency=currency, service_key=service, paid=p, refunded=r, disputed=d, payments=n
            )
            for (day, currency, service), (p, r, d, n) in counted["ledger"].items()
        )
        ClientStatusCount.objects.bulk_create(
            ClientStatusCount(status=status, clients=n) for status, n in counted["statuses"].items()
        )
        ChurnDayRollup.objects.bulk_create(
            ChurnDayRollup(day=day, churned=n) for day, n in counted["churn"].items()
        )
        SubscriptionMrr.objects.bulk_create(
            SubscriptionMrr(subscription_id=sid, currency=c, monthly_amount=m, active=a)
            for sid, (c, m, a) in counted["subscriptions"].items()
        )
        # After the subscriptions: their trigger has added them to whatever the totals held.
        SubscriptionMrrTotal.objects.all().delete()
        SubscriptionMrrTotal.objects.bulk_create(
            SubscriptionMrrTotal(currency=currency, subscriptions=n, mrr=mrr)
            for currency, (n, mrr) in counted["mrr_totals"].items()
        )
        onboarding_rollups.onboarding_rollups_replace(counted)
    return {name: len(rows) for name, rows in counted.items()}


def rollups_differences() -> list[str]:
    """What differs between the stored rollups and a recount (empty: they agree)."""
    stored, counted = rollups_current(), rollups_recount()
    found = []
    for name in counted:
        for key in sorted(set(stored[name]) | set(counted[name]), key=str):
            if stored[name].get(key) != counted[name].get(key):
                found.append(
                    f"{name} {key}: stored {stored[name].get(key)}, recounted {counted[name].get(key)}"
                )
    return found
