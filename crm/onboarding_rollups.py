"""The dashboard's onboarding rollups: checkouts per day and measure, the work queues, and a
histogram of payment → onboarded durations per day.

Kept like the money rollups (crm/rollups.py): PostgreSQL triggers on `crm_onboarding` and
`crm_payment` (`TRIGGERS_SQL`, installed by the migration) change them inside the statement that
writes the row, whatever wrote it (the onboarding services, queryset updates, bulk inserts, the
backfill, the admin), with `INSERT ... ON CONFLICT DO UPDATE SET total = total + delta` on
counter rows sharded by the row's id mod 8.

- `crm_onboarding_cells(o)` lists every counter one onboarding adds one to. The trigger adds the
  new row's cells and takes away the old row's; cells present in both cancel, so the frequent
  updates that change nothing counted (an email claim, an attempt count) touch no counter and
  wait on no one. Changed cells are applied in key order, so two writers never lock two counters
  in opposite orders within one statement.
- `paid_unrecorded` (a held or rejected onboarding with no Payment) depends on two tables. The
  triggers of both take one advisory lock per Checkout Session before deciding, and plpgsql takes
  a fresh snapshot per statement under READ COMMITTED (Django's default), so whichever commits
  second sees the first: an onboarding held while its Payment is being recorded is never counted
  both ways. (Under REPEATABLE READ this would need the writer's retry; the app never uses it.)
- `onboarding_rollups_recount` counts the same from scratch with the ORM, independently of the
  SQL: the tests and `manage.py dashboard_rollups` compare the two, and the dashboard uses it on
  SQLite (no triggers there).

Days are UTC dates. The durations' buckets are crm/duration_histogram.py's.
"""

from collections import Counter
from datetime import UTC, date, datetime, time

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.db.models.functions import Coalesce, TruncDate

from .duration_histogram import BOUNDARIES_US, duration_bucket
from .models import (
    Onboarding,
    OnboardingDayRollup,
    OnboardingDurationRollup,
    OnboardingQueueCount,
    Payment,
)

Status = Onboarding.Status
Step = Onboarding.StepStatus
Delivery = Onboarding.EmailDelivery
# Welcome emails that did not arrive (the ESP's tracking webhooks said so).
BOUNCED = (Delivery.BOUNCED, Delivery.REJECTED, Delivery.COMPLAINED, Delivery.UNSUBSCRIBED)
# Onboardings stopped for review before any Payment was recorded: paid, yet not in Payment.
PAID_WITHOUT_PAYMENT = (Status.HELD, Status.REJECTED)
# The work queues: what waits for staff now, whatever its age.
QUEUES: dict[str, Q] = {
    "held": Q(status=Status.HELD),
    "failed": Q(status=Status.FAILED),
    "email_retrying": Q(email_status=Step.RETRYING),
    "email_failed": Q(email_status=Step.FAILED),
    "email_bounced": Q(status=Status.HELD, held_reason=Onboarding.HeldReason.EMAIL_BOUNCED),
    "workspace_failed": Q(workspace_status=Step.FAILED),
}
MEASURES = ("payments", "paid_unrecorded", "onboarded", "held", "failed", "email_bounced")

_BOUNCED_SQL = ", ".join(f"'{value}'" for value in BOUNCED)


def _moved_sql(column: str, counted: tuple[str, ...]) -> str:
    """The column changed to or from a value crm_onboarding_cells counts."""
    values = ", ".join(f"'{value}'" for value in counted)
    return (
        f"(OLD.{column} IS DISTINCT FROM NEW.{column} "
        f"AND (OLD.{column} IN ({values}) OR NEW.{column} IN ({values})))"
    )


# Every input of crm_onboarding_cells (below): an update changing none of them in a way it counts
# adds and takes away the same cells. Kept beside that function: a new cell needs its input here.
_UPDATE_MAY_COUNT_SQL = " OR ".join(
    [
        *(
            f"OLD.{column} IS DISTINCT FROM NEW.{column}"
            for column in (
                "id",
                "checkout_session_id",
                "paid_at",
                "created",
                "onboarded_at",
                "held_reason",
                "email_delivery_at",
            )
        ),
        _moved_sql("status", (Status.HELD, Status.FAILED, Status.REJECTED)),
        _moved_sql("email_status", (Step.RETRYING, Step.FAILED)),
        _moved_sql("workspace_status", (Step.FAILED,)),
        _moved_sql("email_delivery", BOUNCED),
    ]
)
_BOUNDARIES_SQL = "{" + ",".join(map(str, BOUNDARIES_US)) + "}"

TRIGGERS_SQL = f"""
CREATE OR REPLACE FUNCTION crm_duration_bucket(d interval) RETURNS integer AS $$
    SELECT width_bucket((extract(epoch FROM d) * 1000000)::bigint, '{_BOUNDARIES_SQL}'::bigint[])
$$ LANGUAGE sql IMMUTABLE PARALLEL SAFE;

-- Every counter one onboarding adds one to: tbl 1 per day and measure, 2 queues, 3 durations.
CREATE OR REPLACE FUNCTION crm_onboarding_cells(o crm_onboarding)
RETURNS TABLE (tbl integer, day date, name text, bucket integer, shard integer) AS $$
    SELECT 1, (o.onboarded_at AT TIME ZONE 'UTC')::date, 'onboarded'::text, 0, (o.id % 8)::integer
        WHERE o.onboarded_at IS NOT NULL
    UNION ALL
    SELECT 1, (COALESCE(o.paid_at, o.created) AT TIME ZONE 'UTC')::date, o.status::text, 0,
           (o.id % 8)::integer
        WHERE o.status IN ('held', 'failed')
    UNION ALL
    SELECT 1, (o.email_delivery_at AT TIME ZONE 'UTC')::date, 'email_bounced', 0, (o.id % 8)::integer
        WHERE o.email_delivery IN ({_BOUNCED_SQL}) AND o.email_delivery_at IS NOT NULL
    UNION ALL
    SELECT 1, (o.paid_at AT TIME ZONE 'UTC')::date, 'paid_unrecorded', 0, (o.id % 8)::integer
        WHERE o.paid_at IS NOT NULL AND o.status IN ('held', 'rejected')
            AND NOT EXISTS (SELECT 1 FROM crm_payment p WHERE p.checkout_session_id = o.checkout_session_id)
    UNION ALL
    SELECT 2, NULL::date, queue, 0, (o.id % 8)::integer
        FROM unnest(ARRAY[
            CASE WHEN o.status = 'held' THEN 'held' END,
            CASE WHEN o.status = 'failed' THEN 'failed' END,
            CASE WHEN o.email_status = 'retrying' THEN 'email_retrying' END,
            CASE WHEN o.email_status = 'failed' THEN 'email_failed' END,
            CASE WHEN o.status = 'held' AND o.held_reason = 'email_bounced' THEN 'email_bounced' END,
            CASE WHEN o.workspace_status = 'failed' THEN 'workspace_failed' END
        ]) AS queue
        WHERE queue IS NOT NULL
    UNION ALL
    SELECT 3, (o.onboarded_at AT TIME ZONE 'UTC')::date, 'duration',
           crm_duration_bucket(o.onboarded_at - o.paid_at), (o.id % 8)::integer
        WHERE o.onboarded_at IS NOT NULL AND o.paid_at IS NOT NULL
$$ LANGUAGE sql STABLE;

CREATE OR REPLACE FUNCTION crm_onboarding_rollup_add(
    p_tbl integer, p_day date, p_name text, p_bucket integer, p_shard integer, p_delta integer
) RETURNS void AS $$
BEGIN
    IF p_tbl = 1 THEN
        INSERT INTO crm_onboardingdayrollup AS r (day, measure, shard, total)
        VALUES (p_day, p_name, p_shard, p_delta)
        ON CONFLICT (day, measure, shard) DO UPDATE SET total = r.total + EXCLUDED.total;
    ELSIF p_tbl = 2 THEN
        INSERT INTO crm_onboardingqueuecount AS q (queue, shard, total)
        VALUES (p_name, p_shard, p_delta)
        ON CONFLICT (queue, shard) DO UPDATE SET total = q.total + EXCLUDED.total;
    ELSE
        INSERT INTO crm_onboardingdurationrollup AS d (day, bucket, shard, total)
        VALUES (p_day, p_bucket, p_shard, p_delta)
        ON CONFLICT (day, bucket, shard) DO UPDATE SET total = d.total + EXCLUDED.total;
    END IF;
END;
$$ LANGUAGE plpgsql;

-- Serialises deciding whether a session's onboarding has a Payment (both triggers take it).
CREATE OR REPLACE FUNCTION crm_checkout_rollup_lock(VARIADIC sessions text[]) RETURNS void AS $$
DECLARE
    s text;
BEGIN
    FOR s IN SELECT DISTINCT x FROM unnest(sessions) AS x WHERE x IS NOT NULL ORDER BY x LOOP
        PERFORM pg_advisory_xact_lock(hashtextextended('crm-rollup-checkout:' || s, 0));
    END LOOP;
END;
$$ LANGUAGE plpgsql;

-- The paid_unrecorded cell an onboarding would have if it had no Payment (NULL: none).
CREATE OR REPLACE FUNCTION crm_onboarding_unrecorded_key(o crm_onboarding) RETURNS text AS $$
    SELECT CASE WHEN o.paid_at IS NOT NULL AND o.status IN ('held', 'rejected')
        THEN o.checkout_session_id || ' ' || (o.paid_at AT TIME ZONE 'UTC')::date || ' ' || o.id END
$$ LANGUAGE sql IMMUTABLE;

CREATE OR REPLACE FUNCTION crm_onboarding_rollup_trigger() RETURNS trigger AS $$
DECLARE
    c record;
BEGIN
    -- Only when the row's paid_unrecorded cell may move does the Payment question matter.
    IF TG_OP = 'INSERT' AND crm_onboarding_unrecorded_key(NEW) IS NOT NULL THEN
        PERFORM crm_checkout_rollup_lock(NEW.checkout_session_id);
    ELSIF TG_OP = 'DELETE' AND crm_onboarding_unrecorded_key(OLD) IS NOT NULL THEN
        PERFORM crm_checkout_rollup_lock(OLD.checkout_session_id);
    ELSIF TG_OP = 'UPDATE'
        AND crm_onboarding_unrecorded_key(OLD) IS DISTINCT FROM crm_onboarding_unrecorded_key(NEW) THEN
        PERFORM crm_checkout_rollup_lock(OLD.checkout_session_id, NEW.checkout_session_id);
    END IF;
    FOR c IN
        SELECT x.tbl, x.day, x.name, x.bucket, x.shard, SUM(x.sign)::integer AS delta
        FROM (
            SELECT old_cells.*, -1 AS sign FROM crm_onboarding_cells(OLD) AS old_cells WHERE TG_OP <> 'INSERT'
            UNION ALL
            SELECT new_cells.*, 1 FROM crm_onboarding_cells(NEW) AS new_cells WHERE TG_OP <> 'DELETE'
        ) AS x
        GROUP BY 1, 2, 3, 4, 5
        HAVING SUM(x.sign) <> 0
        ORDER BY 1, 2, 3, 4, 5
    LOOP
        PERFORM crm_onboarding_rollup_add(c.tbl, c.day, c.name, c.bucket, c.shard, c.delta);
    END LOOP;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS crm_onboarding_rollup ON crm_onboarding;
DROP TRIGGER IF EXISTS crm_onboarding_rollup_update ON crm_onboarding;
CREATE TRIGGER crm_onboarding_rollup AFTER INSERT OR DELETE
    ON crm_onboarding FOR EACH ROW EXECUTE FUNCTION crm_onboarding_rollup_trigger();
-- An update reaches the function only if it may move a counted cell: most of an onboarding's
-- updates (a step claimed, an email sent, a workspace ready, the full save that starts it) do not,
-- and the function costs about half a millisecond a row (pg_stat_user_functions, 7 calls an
-- onboarding); the WHEN clause is evaluated without calling it.
CREATE TRIGGER crm_onboarding_rollup_update AFTER UPDATE
    ON crm_onboarding FOR EACH ROW WHEN ({_UPDATE_MAY_COUNT_SQL})
    EXECUTE FUNCTION crm_onboarding_rollup_trigger();

CREATE OR REPLACE FUNCTION crm_payment_rollup_trigger() RETURNS trigger AS $$
DECLARE
    c record;
    old_session text := CASE WHEN TG_OP <> 'INSERT' THEN OLD.checkout_session_id END;
    new_session text := CASE WHEN TG_OP <> 'DELETE' THEN NEW.checkout_session_id END;
BEGIN
    -- A session gaining its Payment (checkout_session_id is unique) takes its held or rejected
    -- onboarding out of paid_unrecorded; losing it puts it back.
    IF old_session IS DISTINCT FROM new_session THEN
        PERFORM crm_checkout_rollup_lock(old_session, new_session);
    END IF;
    FOR c IN
        SELECT x.day, x.name, x.shard, SUM(x.sign)::integer AS delta
        FROM (
            SELECT (OLD.paid_at AT TIME ZONE 'UTC')::date AS day, 'payments'::text AS name,
                   (OLD.id % 8)::integer AS shard, -1 AS sign
                WHERE TG_OP <> 'INSERT'
            UNION ALL
            SELECT (NEW.paid_at AT TIME ZONE 'UTC')::date, 'payments', (NEW.id % 8)::integer, 1
                WHERE TG_OP <> 'DELETE'
            UNION ALL
            SELECT (o.paid_at AT TIME ZONE 'UTC')::date, 'paid_unrecorded', (o.id % 8)::integer,
                   CASE WHEN o.checkout_session_id = old_session THEN 1 ELSE -1 END
                FROM crm_onboarding o
                WHERE old_session IS DISTINCT FROM new_session
                    AND o.checkout_session_id IN (old_session, new_session)
                    AND o.paid_at IS NOT NULL AND o.status IN ('held', 'rejected')
        ) AS x
        GROUP BY 1, 2, 3
        HAVING SUM(x.sign) <> 0
        ORDER BY 1, 2, 3
    LOOP
        PERFORM crm_onboarding_rollup_add(1, c.day, c.name, 0, c.shard, c.delta);
    END LOOP;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS crm_payment_rollup ON crm_payment;
CREATE TRIGGER crm_payment_rollup AFTER INSERT OR DELETE OR UPDATE OF id, checkout_session_id, paid_at
    ON crm_payment FOR EACH ROW EXECUTE FUNCTION crm_payment_rollup_trigger();
"""  # noqa: S608 - built from this module's constants only

DROP_TRIGGERS_SQL = """
DROP TRIGGER IF EXISTS crm_onboarding_rollup ON crm_onboarding;
DROP TRIGGER IF EXISTS crm_onboarding_rollup_update ON crm_onboarding;
DROP TRIGGER IF EXISTS crm_payment_rollup ON crm_payment;
DROP FUNCTION IF EXISTS crm_onboarding_rollup_trigger();
DROP FUNCTION IF EXISTS crm_payment_rollup_trigger();
DROP FUNCTION IF EXISTS crm_onboarding_unrecorded_key(crm_onboarding);
DROP FUNCTION IF EXISTS crm_checkout_rollup_lock(text[]);
DROP FUNCTION IF EXISTS crm_onboarding_rollup_add(integer, date, text, integer, integer, integer);
DROP FUNCTION IF EXISTS crm_onboarding_cells(crm_onboarding);
DROP FUNCTION IF EXISTS crm_duration_bucket(interval);
"""

# Recount in SQL through the triggers' own crm_onboarding_cells, in one statement (one snapshot):
# for the migration and bulk loads. `onboarding_rollups_recount` is the independent check.
REBUILD_SQL = """
DELETE FROM crm_onboardingdayrollup;
DELETE FROM crm_onboardingqueuecount;
DELETE FROM crm_onboardingdurationrollup;
WITH cells AS MATERIALIZED (
    SELECT c.tbl, c.day, c.name, c.bucket FROM crm_onboarding o CROSS JOIN LATERAL crm_onboarding_cells(o) c
), days AS (
    INSERT INTO crm_onboardingdayrollup (day, measure, shard, total)
    SELECT day, name, 0, COUNT(*) FROM cells WHERE tbl = 1 GROUP BY 1, 2
    UNION ALL
    SELECT (paid_at AT TIME ZONE 'UTC')::date, 'payments', 0, COUNT(*) FROM crm_payment GROUP BY 1
), queues AS (
    INSERT INTO crm_onboardingqueuecount (queue, shard, total)
    SELECT name, 0, COUNT(*) FROM cells WHERE tbl = 2 GROUP BY 1
)
INSERT INTO crm_onboardingdurationrollup (day, bucket, shard, total)
SELECT day, bucket, 0, COUNT(*) FROM cells WHERE tbl = 3 GROUP BY 1, 2;
"""

# The tables and triggers, for bulk loads that switch the triggers off and rebuild after.
TRIGGERS = (
    ("crm_onboarding", "crm_onboarding_rollup"),
    ("crm_onboarding", "crm_onboarding_rollup_update"),
    ("crm_payment", "crm_payment_rollup"),
)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _per_day(rows: QuerySet, field: str | Coalesce, since: date | None, measure: str, into: Counter) -> None:
    """Add `rows` counted per UTC day of `field` (from `since` on) to `into` under `measure`."""
    rows = rows.annotate(day=TruncDate(field, tzinfo=UTC))
    if since is not None:
        rows = rows.filter(day__gte=since)
    for day, n in rows.values("day").annotate(n=Count("id")).values_list("day", "n").order_by():
        into[(day, measure)] += n


def onboarding_rollups_recount(*, since: date | None = None) -> dict:
    """The onboarding rollups counted from scratch with the ORM (days from `since` on, if given),
    in `onboarding_rollups_current`'s shape."""
    days: Counter = Counter()
    onboardings = Onboarding.objects.all()
    if since is not None:
        # A cheap bound the per-day filter refines: nothing counted before `since` is read.
        start = _midnight(since)
        recent = (
            Q(paid_at__gte=start)
            | Q(onboarded_at__gte=start)
            | Q(created__gte=start)
            | Q(email_delivery_at__gte=start)
        )
        onboardings = onboardings.filter(recent)
    has_payment = Exists(Payment.objects.filter(checkout_session_id=OuterRef("checkout_session_id")))
    payments = (
        Payment.objects.all() if since is None else Payment.objects.filter(paid_at__gte=_midnight(since))
    )
    _per_day(payments, "paid_at", since, "payments", days)
    _per_day(
        onboardings.filter(paid_at__isnull=False, status__in=PAID_WITHOUT_PAYMENT).exclude(has_payment),
        "paid_at",
        since,
        "paid_unrecorded",
        days,
    )
    _per_day(onboardings.filter(onboarded_at__isnull=False), "onboarded_at", since, "onboarded", days)
    for status in (Status.HELD, Status.FAILED):
        cohort = Coalesce(F("paid_at"), F("created"))
        _per_day(onboardings.filter(status=status), cohort, since, str(status), days)
    bounced = onboardings.filter(email_delivery__in=BOUNCED, email_delivery_at__isnull=False)
    _per_day(bounced, "email_delivery_at", since, "email_bounced", days)

    queues = Onboarding.objects.aggregate(**{name: Count("id", filter=q) for name, q in QUEUES.items()})

    durations: Counter = Counter()
    onboarded = onboardings.filter(onboarded_at__isnull=False, paid_at__isnull=False)
    if since is not None:
        onboarded = onboarded.filter(onboarded_at__gte=_midnight(since))
    # Bucketed here, not in SQL: a second implementation of crm_duration_bucket, checked against it.
    for paid_at, onboarded_at in onboarded.values_list("paid_at", "onboarded_at").iterator(chunk_size=5000):
        if paid_at is not None and onboarded_at is not None:  # filtered above; for the type checker
            durations[(onboarded_at.astimezone(UTC).date(), duration_bucket(onboarded_at - paid_at))] += 1
    return {
        "onboarding_days": {key: n for key, n in days.items() if n},
        "onboarding_queues": {name: n for name, n in queues.items() if n},
        "onboarding_durations": {key: n for key, n in durations.items() if n},
    }


def onboarding_rollups_current(*, since: date | None = None) -> dict:
    """The onboarding rollups as stored, summed over their shards (empty cells left out)."""
    day_rows = OnboardingDayRollup.objects.all()
    duration_rows = OnboardingDurationRollup.objects.all()
    if since is not None:
        day_rows, duration_rows = day_rows.filter(day__gte=since), duration_rows.filter(day__gte=since)
    days: Counter = Counter()
    for day, measure, total in day_rows.values_list("day", "measure", "total"):
        days[(day, measure)] += total
    queues: Counter = Counter()
    for queue, total in OnboardingQueueCount.objects.values_list("queue", "total"):
        queues[queue] += total
    durations: Counter = Counter()
    for day, bucket, total in duration_rows.values_list("day", "bucket", "total"):
        durations[(day, bucket)] += total
    return {
        "onboarding_days": {key: n for key, n in days.items() if n},
        "onboarding_queues": {name: n for name, n in queues.items() if n},
        "onboarding_durations": {key: n for key, n in durations.items() if n},
    }


def onboarding_rollups_replace(counted: dict) -> None:
    """Replace the stored onboarding rollups by `counted` (a recount; the caller's transaction)."""
    OnboardingDayRollup.objects.all().delete()
    OnboardingQueueCount.objects.all().delete()
    OnboardingDurationRollup.objects.all().delete()
    OnboardingDayRollup.objects.bulk_create(
        OnboardingDayRollup(day=day, measure=measure, total=n)
        for (day, measure), n in counted["onboarding_days"].items()
    )
    OnboardingQueueCount.objects.bulk_create(
        OnboardingQueueCount(queue=queue, total=n) for queue, n in counted["onboarding_queues"].items()
    )
    OnboardingDurationRollup.objects.bulk_create(
        OnboardingDurationRollup(day=day, bucket=bucket, total=n)
        for (day, bucket), n in counted["onboarding_durations"].items()
    )
