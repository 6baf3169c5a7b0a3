"""Admin at scale: the staff cockpit's pages, searches and export with 100,000 clients.

    /work/venv/bin/python bench/admin_scale.py [--reseed] [--runs 5] [--mode auto]

Sets up from nothing: creates and migrates the PostgreSQL database `onboarding_admin_scale`
(unless DATABASE_URL is given) and, unless it already holds that volume, seeds it with COPY:
100,000 clients, 300,000 payments with one onboarding each (about 5% held with various reasons,
some failed, some in progress), a workspace per client, two timeline activities per onboarding
and a webhook delivery (dj-stripe's trigger and our job; 0.3% failed or retrying) per payment,
paid over the last 12 weeks. Then VACUUM ANALYZE. A second run reuses the data
(--reseed starts again); the dashboard's windows then see the data as it aged since seeding.

Then, in this process, logged in as a superuser through django.test.Client, each admin page is
rendered once to warm up and --runs times measured: median and minimum milliseconds and the SQL
queries (CaptureQueriesContext), the slowest statement and the paginator's COUNT. For every
search, the slowest statement is run again under EXPLAIN (ANALYZE, BUFFERS) and printed, and a
"Seq Scan" on crm_client, crm_payment or crm_onboarding in it is flagged. The CSV export of a
filtered client list is streamed to the end (time and rows).

Prints figures as it goes; the last line is one JSON object with all of them.
"""

import argparse
import io
import os
import random
import re
import statistics
import time
from datetime import UTC, datetime, timedelta

import benchlib
from benchlib import log, rounded

DEFAULT_DATABASE_URL = "postgres://root@127.0.0.1:5432/onboarding_admin_scale"
CLIENTS = 100_000
PAYMENTS = 300_000
WEEKS = 12
SEED = 20260101
SUPERUSER = "bench-admin"
BIG_TABLES = ("crm_client", "crm_payment", "crm_onboarding")

# (service_id, name, active, price in minor units, weight)
SERVICES = [
    ("website-care", "Website Care Plan", True, 49_900, 30),
    ("seo-growth", "SEO Growth", True, 129_900, 20),
    ("ppc-management", "PPC Management", True, 89_900, 15),
    ("social-starter", "Social Starter", True, 29_900, 15),
    ("brand-refresh", "Brand Refresh", True, 249_900, 10),
    ("hosting-pro", "Hosting Pro", True, 9_900, 9),
    ("legacy-seo", "Legacy SEO (retired)", False, 59_900, 1),
]
# The default ONBOARDING_CURRENCIES; held "currency not allowed" onboardings get one of OTHER_CURRENCIES.
CURRENCIES = (("usd", 87), ("eur", 7), ("gbp", 5), ("jpy", 1))
OTHER_CURRENCIES = ("cad", "aud", "chf")
FIRST_NAMES = [
    "ada",
    "grace",
    "alan",
    "edsger",
    "barbara",
    "donald",
    "margaret",
    "linus",
    "ken",
    "dennis",
    "frances",
    "john",
    "katherine",
    "tim",
    "radia",
    "niklaus",
    "leslie",
    "shafi",
    "sophie",
    "hedy",
    "annie",
    "bjarne",
    "guido",
    "james",
    "anita",
    "jean",
    "mary",
    "claude",
    "carol",
    "ivan",
]
LAST_NAMES = [
    "lovelace",
    "hopper",
    "turing",
    "dijkstra",
    "liskov",
    "knuth",
    "hamilton",
    "torvalds",
    "thompson",
    "ritchie",
    "allen",
    "backus",
    "johnson",
    "berners",
    "perlman",
    "wirth",
    "lamport",
    "goldwasser",
    "wilson",
    "lamarr",
    "easley",
    "stroustrup",
    "rossum",
    "gosling",
    "borg",
    "sammet",
    "keller",
    "shannon",
    "shaw",
    "sutherland",
]
# Outcome of each onboarding: (status, weight); held ones get a reason from HELD_REASONS.
OUTCOMES = (
    ("onboarded", 91.0),
    ("held", 5.0),
    ("failed", 2.0),
    ("in_progress", 1.5),
    ("rejected", 0.5),
)
HELD_REASONS = (
    ("currency_not_allowed", 30),
    ("service_inactive", 20),
    ("service_unknown", 15),
    ("currency_mismatch", 15),
    ("email_refused", 10),
    ("livemode_mismatch", 5),
    ("service_missing", 5),
)
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reseed", action="store_true", help="empty the tables and seed again")
    parser.add_argument("--runs", type=int, default=5, help="measured renders per page (5)")
    parser.add_argument("--csv-runs", type=int, default=2, help="measured CSV exports (2)")
    parser.add_argument(
        "--mode",
        choices=["auto", "prod", "debug"],
        default="auto",
        help="settings: prod = DJANGO_DEBUG=0 with its secrets; auto = prod, else debug (default)",
    )
    parser.add_argument("--max-seconds", type=float, default=600, help="hard time limit for the run")
    return parser.parse_args()


# --- seeding --------------------------------------------------------------------------------------


def stripe_id(rng: random.Random, prefix: str, number: int, length: int) -> str:
    """Stripe-like, unique by construction: the row number in base 36, then random characters."""
    head = ""
    while True:
        number, digit = divmod(number, 36)
        head = ALNUM[digit] + head
        if not number:
            break
    return prefix + head + "".join(rng.choices(ALNUM, k=max(4, length - len(head))))


def ts(value: datetime | None) -> str:
    return r"\N" if value is None else value.isoformat()


class CopyWriter:
    """Rows into COPY … FROM STDIN (text format), written in large chunks."""

    def __init__(self, cursor, table: str, columns: list[str]):
        self.copy_cm = cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN")
        self.buffer = io.StringIO()
        self.rows = 0

    def __enter__(self):
        self.copy = self.copy_cm.__enter__()
        return self

    def row(self, *values) -> None:
        # Seeded values never hold tabs, newlines or backslashes, so no escaping is needed.
        self.buffer.write("\t".join(r"\N" if v is None else str(v) for v in values))
        self.buffer.write("\n")
        self.rows += 1
        if self.rows % 20_000 == 0:
            self.flush()

    def flush(self) -> None:
        self.copy.write(self.buffer.getvalue())
        self.buffer = io.StringIO()

    def __exit__(self, *exc_info):
        if exc_info[0] is None:
            self.flush()
        return self.copy_cm.__exit__(*exc_info)


def weighted(rng: random.Random, choices, k: int) -> list:
    values, weights = zip(*choices, strict=True)
    return rng.choices(values, weights=weights, k=k)


HELD_DETAIL = {
    "currency_not_allowed": "Currency not in ALLOWED_CURRENCIES",
    "service_inactive": "Service is inactive",
    "service_unknown": "No service with this id",
    "currency_mismatch": "Client pays in another currency",
    "email_refused": "Recipient mailbox refused the welcome email",
    "livemode_mismatch": "Live event on a test-mode site",
    "service_missing": "metadata.serviceId missing",
}


def onboarding_steps(status: str, reason: str, finished: datetime) -> tuple:
    """Email step (status, attempts, error, sent_at, message id), workspace step (3), onboarded_at."""
    if status == "onboarded":
        return "done", 1, "", finished, "<bench@example.com>", "done", 1, "", finished
    if status == "failed":
        return "done", 1, "", finished, "<bench@example.com>", "failed", 5, "Backend answered 503", None
    if status == "in_progress":
        return "done", 1, "", finished, "<bench@example.com>", "retrying", 2, "Backend timed out", None
    if reason == "email_refused":
        return "refused", 1, "550 mailbox unavailable", None, "", "not_started", 0, "", None
    return "not_started", 0, "", None, "", "not_started", 0, "", None


# Ledger seeding: a share of payments are subscriptions (billing period in days: weight), some of
# those cancelled; some payments refunded (succeeded or failed) or disputed (lost or won).
LIFECYCLE = (("active", 93), ("at_risk", 2), ("churned", 5))
SUBSCRIPTION_SHARE, CANCELLED_SHARE = 0.3, 0.1
PERIODS = ((30, 80), (365, 15), (7, 5))
REFUND_SHARE, DISPUTE_SHARE = 0.03, 0.005


def ledger_rows(rows, rng, pk, client_id, service_pk, session, intent, customer, amount, currency, paid_at):
    """One payment's ledger rows: the payment, maybe a refund or dispute, its subscription's MRR."""
    from crm.rollups import monthly_amount

    at = ts(paid_at)
    subscription, period = "", None
    if rng.random() < SUBSCRIPTION_SHARE:
        subscription = f"sub_bench{pk}"
        period = weighted(rng, PERIODS, 1)[0]
    charge = f"ch_bench{pk}"
    rows["crm_moneymovement"].append(
        (session, "payment", client_id, service_pk, pk, currency, amount, "paid", True, False,
         "subscription_create" if subscription else "", charge, intent, "", subscription, session, customer,
         at, period, f"txn_bench{pk}", currency, 1, at, at)
    )  # fmt: skip
    if subscription:
        cancelled = rng.random() < CANCELLED_SHARE
        if cancelled:
            rows["crm_moneymovement"].append(
                (f"{subscription}:deleted", "cancellation", client_id, service_pk, None, currency, 0,
                 "canceled", False, False, "", "", "", "", subscription, "", customer, at, None, "", "", 0,
                 at, at)
            )  # fmt: skip
        rows["crm_subscriptionmrr"].append(
            (subscription, currency, monthly_amount(amount, period), not cancelled, at)
        )
    roll = rng.random()
    if roll < REFUND_SHARE:
        status = "succeeded" if rng.random() < 0.8 else "failed"
        refund = amount if rng.random() < 0.5 else amount // 3
        rows["crm_moneymovement"].append(
            (f"re_bench{pk}", "refund", client_id, service_pk, None, currency, refund, status,
             status == "succeeded", False, "", charge, intent, "", "", "", customer, at, None, "", "", 0,
             at, at)
        )  # fmt: skip
    elif roll < REFUND_SHARE + DISPUTE_SHARE:
        status = "lost" if rng.random() < 0.5 else "won"
        rows["crm_moneymovement"].append(
            (f"du_bench{pk}", "dispute", client_id, service_pk, None, currency, amount, status,
             status == "lost", False, "", charge, intent, "", "", "", customer, at, None, "", "", 0, at, at)
        )  # fmt: skip


# Webhook jobs: one delivery per payment (dj-stripe's trigger, body emptied by retention, and our
# job); a few given up on or waiting to retry, as the dashboard's queues show them.
JOB_STATUSES = (("succeeded", 99.7), ("failed", 0.2), ("retrying", 0.1))


def webhook_rows(rows, rng, pk, received):
    at = ts(received)
    status = weighted(rng, JOB_STATUSES, 1)[0]
    error = "" if status == "succeeded" else "APIConnectionError: Stripe unreachable"
    retry_at = ts(received + timedelta(minutes=30)) if status == "retrying" else None
    rows["djstripe_webhookeventtrigger"].append(
        (pk, "127.0.0.1", "{}", "", True, True, "", "", "2.11.0", at, at)
    )
    rows["crm_stripewebhookjob"].append(
        (pk, f"evt_bench{pk}", "checkout.session.completed", status, 1 if status == "succeeded" else 6, error,
         retry_at, at, at, pk)
    )  # fmt: skip


def seed(now: datetime) -> dict:
    """Empty the tables and COPY the whole volume in; returns how many rows of each went in."""
    from django.db import connection, transaction

    from crm.models import Onboarding

    began = time.perf_counter()
    rng = random.Random(SEED)
    job_rng = random.Random(SEED + 1)  # its own stream: the rest of the data stays as it was seeded
    start = now - timedelta(weeks=WEEKS)
    span = (now - start).total_seconds() - 3600
    services = [(pk, s[0], s[3]) for pk, s in enumerate(SERVICES, start=1)]  # (pk, service_id, price)
    service_weights = [(service, s[4]) for service, s in zip(services, SERVICES, strict=True)]

    # Payments per client: one each, the rest spread at random (some clients buy a lot).
    per_client = [1] * CLIENTS
    for index in rng.choices(range(CLIENTS), k=PAYMENTS - CLIENTS):
        per_client[index] += 1
    client_services = weighted(rng, service_weights, CLIENTS)
    client_currencies = weighted(rng, CURRENCIES, CLIENTS)
    outcomes = weighted(rng, OUTCOMES, PAYMENTS)
    reasons = weighted(rng, HELD_REASONS, PAYMENTS)
    later_services = weighted(rng, service_weights, PAYMENTS)

    rows: dict[str, list[tuple]] = {table: [] for table in COLUMNS}
    rows["crm_service"] = [
        (pk, service_id, name, active, True, "", True, "standard", ts(start))
        for pk, (service_id, name, active, _price, _weight) in enumerate(SERVICES, start=1)
    ]
    status_counts: dict[str, int] = {}
    pk = 0  # payment, onboarding
    for index in range(CLIENTS):
        client_id = index + 1
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email, name = f"{first}.{last}{client_id}@example.com", f"{first.title()} {last.title()}"
        customer, currency = stripe_id(rng, "cus_", client_id, 14), client_currencies[index]
        times = sorted(start + timedelta(seconds=rng.uniform(0, span)) for _ in range(per_client[index]))
        invoiced = 0
        for number, paid_at in enumerate(times):
            pk += 1
            service_pk, service_id, price = client_services[index] if number == 0 else later_services[pk - 1]
            amount = price * 150 // 100 if currency == "jpy" else price  # yen have no minor unit
            session = stripe_id(rng, "cs_test_a1", pk, 56)
            intent = stripe_id(rng, "pi_3", pk, 24)
            created = paid_at + timedelta(seconds=rng.uniform(0.2, 3))
            finished = created + timedelta(seconds=rng.uniform(2, 90))
            status = outcomes[pk - 1]
            reason = reasons[pk - 1] if status in ("held", "rejected") else ""
            steps = onboarding_steps(status, reason, finished)
            updated = steps[-1] or finished
            invoiced += amount
            status_counts[status] = status_counts.get(status, 0) + 1
            ledger_rows(
                rows, rng, pk, client_id, service_pk, session, intent, customer, amount, currency, paid_at
            )
            webhook_rows(rows, job_rng, pk, created)
            rows["crm_payment"].append(
                (
                    pk,
                    client_id,
                    session,
                    intent,
                    customer,
                    service_pk,
                    amount,
                    currency,
                    False,
                    ts(paid_at),
                    ts(created),
                )
            )
            rows["crm_onboarding"].append(
                (
                    pk,
                    session,
                    client_id,
                    service_pk,
                    status,
                    reason,
                    HELD_DETAIL.get(reason, ""),
                    email,
                    name,
                    service_id,
                    amount,
                    rng.choice(OTHER_CURRENCIES) if reason == "currency_not_allowed" else currency,
                    False,
                    intent,
                    customer,
                    ts(paid_at),
                    *steps[:3],
                    ts(steps[3]),
                    steps[4],
                    *steps[5:8],
                    ts(steps[8]),
                    ts(created),
                    ts(updated),
                    0,
                    "checkout",
                    "",
                    "",
                )
            )
            label = Onboarding.Status(status).label
            outcome = f"{label}: {Onboarding.HeldReason(reason).label}" if reason else label
            money = f"{amount if currency == 'jpy' else amount / 100:.2f} {currency.upper()}"
            rows["crm_activity"] += [
                (client_id, pk, "payment", f"Payment of {money} recorded", "", ts(paid_at)),
                (client_id, pk, "onboarding", f"{service_id}: {outcome}", "", ts(updated)),
            ]
        first_paid = ts(times[0])
        service_pk = client_services[index][0]
        lifecycle = weighted(rng, LIFECYCLE, 1)[0]
        changed = ts(start + timedelta(seconds=rng.uniform(0, span))) if lifecycle != "active" else None
        rows["crm_client"].append(
            (client_id, email, name, customer, service_pk, invoiced, currency, lifecycle, "", changed,
             False, False, first_paid, first_paid)
        )  # fmt: skip
        rows["provisioning_workspace"].append(
            (client_id, service_pk, "ready", f"https://app.example.com/w/{client_id}", "bench",
             f"ws_{client_id}", 0, "", first_paid, first_paid, first_paid, False, "")
        )  # fmt: skip
    log(f"  generated the rows in {time.perf_counter() - began:.1f} s")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(reversed(COLUMNS))} RESTART IDENTITY CASCADE")
        # The rollups' triggers are off for the bulk load (a row trigger per COPY row would update
        # counter rows 300,000 times in one transaction); the rebuild path counts them after.
        from crm import onboarding_rollups, rollups

        for table, trigger in rollups.TRIGGERS:
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
        for table, columns in COLUMNS.items():
            began = time.perf_counter()
            with CopyWriter(cursor.cursor, table, columns) as out:  # cursor.cursor: psycopg's, for COPY
                for row in rows[table]:
                    out.row(*row)
            log(f"  COPY {table}: {len(rows[table]):,} rows in {time.perf_counter() - began:.1f} s")
            if columns[0] == "id":
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"  # noqa: S608
                )
        began = time.perf_counter()
        cursor.execute(rollups.REBUILD_SQL)
        cursor.execute(rollups.MRR_REBUILD_SQL)
        cursor.execute(onboarding_rollups.REBUILD_SQL)
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # ALTER TABLE refuses pending FK checks
        for table, trigger in rollups.TRIGGERS:
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")
        log(
            "  rollups rebuilt from the seeded ledger, clients, onboardings and payments"
            f" in {time.perf_counter() - began:.1f} s"
        )
    return {table: len(table_rows) for table, table_rows in rows.items()} | {
        "onboarding_statuses": status_counts
    }


# The tables seeded, in the order they are filled, with the columns COPY writes.
COLUMNS = {
    "crm_service": [
        "id", "service_id", "name", "active", "send_welcome_email", "welcome_email_subject",
        "provision_workspace", "workspace_plan", "created",
    ],
    "crm_client": [
        "id", "email", "name", "stripe_customer_id", "ordered_service_id", "invoiced_value", "currency",
        "lifecycle_status", "lifecycle_reason", "lifecycle_changed_at", "keep_active", "offboarded_by_staff",
        "created", "updated",
    ],
    "crm_payment": [
        "id", "client_id", "checkout_session_id", "payment_intent_id", "stripe_customer_id", "service_id",
        "amount", "currency", "livemode", "paid_at", "created",
    ],
    "crm_onboarding": [
        "id", "checkout_session_id", "client_id", "service_id", "status", "held_reason", "held_detail",
        "customer_email", "customer_name", "service_ref", "amount", "currency", "livemode",
        "payment_intent_id", "stripe_customer_id", "paid_at", "email_status", "email_attempts",
        "email_last_error", "email_sent_at", "email_message_id", "workspace_status", "workspace_attempts",
        "workspace_last_error", "onboarded_at", "created", "updated", "email_resends", "source",
        "email_delivery", "email_delivery_detail",
    ],
    "crm_activity": ["client_id", "onboarding_id", "kind", "summary", "detail", "created"],
    "crm_moneymovement": [
        "stripe_id", "kind", "client_id", "service_id", "payment_id", "currency", "amount", "status",
        "counts", "livemode", "billing_reason", "charge_id", "payment_intent_id", "invoice_id",
        "subscription_id", "checkout_session_id", "stripe_customer_id", "occurred_at", "period_days",
        "balance_transaction_id", "settlement_currency", "settlement_transactions", "created", "updated",
    ],
    "crm_subscriptionmrr": ["subscription_id", "currency", "monthly_amount", "active", "updated"],
    "provisioning_workspace": [
        "client_id", "service_id", "status", "url", "backend", "external_id", "attempts",
        "last_error", "ready_at", "created", "updated", "rejected", "suspended_reason",
    ],
    "djstripe_webhookeventtrigger": [
        "id", "remote_ip", "headers", "body", "valid", "processed", "exception", "traceback",
        "djstripe_version", "created", "updated",
    ],
    "crm_stripewebhookjob": [
        "id", "event_id", "event_type", "status", "attempts", "last_error", "next_attempt_at", "created",
        "updated", "trigger_id",
    ],
}  # fmt: skip


def seeded_volume() -> tuple[int, int]:
    from crm.models import Client, Payment

    return Client.objects.count(), Payment.objects.count()


def vacuum_analyze() -> float:
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        for table in (
            *BIG_TABLES,
            "crm_activity",
            "provisioning_workspace",
            "crm_service",
            "crm_stripewebhookjob",
        ):
            cursor.execute(f"VACUUM ANALYZE {table}")
    return time.perf_counter() - started


# --- measuring ------------------------------------------------------------------------------------


def render(http, url: str, params: dict) -> tuple[float, int, int]:
    """GET the page and read it to the end (streams too): seconds, status, bytes."""
    started = time.perf_counter()
    response = http.get(url, params)
    size = sum(map(len, response.streaming_content)) if response.streaming else len(response.content)
    status = response.status_code
    return time.perf_counter() - started, status, size


def measure(http, url: str, params: dict, runs: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    render(http, url, params)  # warm-up: templates, caches, the database's buffers
    times = []
    with CaptureQueriesContext(connection) as captured:
        seconds, status, size = render(http, url, params)
    # Read now: captured_queries slices the connection's log, which the next request empties.
    queries = [(q["sql"], float(q["time"])) for q in captured.captured_queries]
    times.append(seconds)
    assert status == 200, f"{url} {params} answered {status}"
    for _ in range(runs - 1):
        times.append(render(http, url, params)[0])
    slowest = max(queries, key=lambda q: q[1])
    counts = [t for sql, t in queries if re.match(r"SELECT COUNT\(\*\)", sql)]
    return {
        "median_ms": rounded(statistics.median(times) * 1000, 1),
        "min_ms": rounded(min(times) * 1000, 1),
        "queries": len(queries),
        "sql_ms": rounded(sum(t for _, t in queries) * 1000, 1),
        "slowest_sql_ms": rounded(slowest[1] * 1000, 1),
        "count_ms": rounded(sum(counts) * 1000, 1) if counts else None,
        "bytes": size,
        "_queries": queries,
    }


def explain(sql: str, *, analyze: bool = True) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {'(ANALYZE, BUFFERS) ' if analyze else ''}{sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def seq_scans(plan: str) -> list[str]:
    return sorted({t for t in re.findall(r"Seq Scan on (\w+)", plan) if t in BIG_TABLES})


def sample_terms() -> dict:
    """Search terms taken from the data: one well-paying client's email, name and Stripe ids."""
    from crm.models import Client, Onboarding, Payment

    client = Client.objects.order_by("-invoiced_value", "id").first()
    payment = Payment.objects.filter(client=client).order_by("paid_at").first()
    onboarding = Onboarding.objects.filter(client=client).order_by("-created").first()
    held = Onboarding.objects.filter(status="held").order_by("id").first()
    local, _ = client.email.split("@")
    return {
        "client": client,
        "email_prefix": local[: local.index(".") + 4],  # "grace.hop": every grace.hop…, ~1/900
        "email_full": client.email,
        "name_fragment": client.name.split()[-1][1:6],  # "opper": a surname's middle, ~1/30
        "cus": client.stripe_customer_id,
        "cs": onboarding.checkout_session_id,
        "pi": payment.payment_intent_id,
        "held_cs": held.checkout_session_id,
    }


def cases(terms: dict, now: datetime) -> list[tuple[str, str, dict, str]]:
    """(name, url, query parameters, kind) for every page measured."""
    from django.utils import timezone

    from crm.models import Service

    # As DateFieldListFilter spells its "Past 7 days" link: aware local midnights.
    today = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    week_ago, tomorrow = str(today - timedelta(days=7)), str(today + timedelta(days=1))
    service = Service.objects.get(service_id="seo-growth").pk
    c, o, h, p = (
        "/admin/crm/client/",
        "/admin/crm/onboarding/",
        "/admin/crm/heldonboarding/",
        "/admin/crm/payment/",
    )
    return [
        ("dashboard", "/admin/", {}, "page"),
        ("client_list", c, {}, "list"),
        ("onboarding_list", o, {}, "list"),
        ("held_list", h, {}, "list"),
        ("payment_list", p, {}, "list"),
        ("client_list_page_50", c, {"p": "50"}, "list"),
        ("client_search_email_prefix", c, {"q": terms["email_prefix"]}, "search"),
        ("client_search_email_full", c, {"q": terms["email_full"]}, "search"),
        ("client_search_name", c, {"q": terms["name_fragment"]}, "search"),
        ("client_search_cus", c, {"q": terms["cus"]}, "search"),
        ("client_search_cs", c, {"q": terms["cs"]}, "search"),
        ("client_search_pi", c, {"q": terms["pi"]}, "search"),
        ("onboarding_search_cs", o, {"q": terms["cs"]}, "search"),
        ("onboarding_search_pi", o, {"q": terms["pi"]}, "search"),
        ("onboarding_search_email", o, {"q": terms["email_prefix"]}, "search"),
        ("held_search_cs", h, {"q": terms["held_cs"]}, "search"),
        ("payment_search_pi", p, {"q": terms["pi"]}, "search"),
        ("payment_search_email", p, {"q": terms["email_prefix"]}, "search"),
        ("client_filter_onboarding_held", c, {"onboarding_status": "held"}, "filter"),
        ("client_filter_onboarding_failed", c, {"onboarding_status": "failed"}, "filter"),
        ("client_filter_held_reason", c, {"held_reason": "currency_not_allowed"}, "filter"),
        ("client_filter_created_7d", c, {"created__gte": week_ago, "created__lt": tomorrow}, "filter"),
        ("onboarding_filter_held", o, {"status__exact": "held"}, "filter"),
        ("onboarding_filter_failed", o, {"status__exact": "failed"}, "filter"),
        ("onboarding_filter_held_reason", o, {"held_reason__exact": "service_inactive"}, "filter"),
        ("onboarding_filter_workspace_failed", o, {"workspace_status__exact": "failed"}, "filter"),
        ("onboarding_filter_created_7d", o, {"created__gte": week_ago, "created__lt": tomorrow}, "filter"),
        ("payment_filter_paid_7d", p, {"paid_at__gte": week_ago, "paid_at__lt": tomorrow}, "filter"),
        ("payment_filter_service", p, {"service__id__exact": str(service)}, "filter"),
        ("client_page", f"{c}{terms['client'].pk}/change/", {}, "page"),
    ]


def main() -> int:
    args = parse_args()
    benchlib.install_guards(args.max_seconds)
    started = time.monotonic()
    database_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    figures: dict = {"bench": "admin_scale", "database": database_url.rsplit("/", 1)[-1]}

    benchlib.ensure_database(database_url)
    app_env = {"DATABASE_URL": database_url}
    mode, mode_env = benchlib.choose_mode(args.mode, database_url, app_env)
    benchlib.django_setup({**os.environ, **mode_env, **app_env})
    figures["mode"] = mode
    log(f"settings: {'production (DJANGO_DEBUG=0)' if mode == 'prod' else 'DEBUG (DJANGO_DEBUG=1)'}")
    log(f"migrate: {benchlib.migrate():.1f} s")

    from django.conf import settings
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client as HttpClient
    from django.test.utils import override_settings

    # Production settings want collectstatic's manifest, which a checkout does not have; plain
    # static storage only changes how /static/ URLs are spelled, not what the pages query.
    plain_static = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    override_settings(STORAGES={**settings.STORAGES, "staticfiles": plain_static}).enable()

    now = datetime.now(UTC)
    clients, payments = seeded_volume()
    if args.reseed or (clients, payments) != (CLIENTS, PAYMENTS):
        log(
            f"seeding {CLIENTS:,} clients, {PAYMENTS:,} payments and onboardings"
            f" (found {clients:,} and {payments:,})"
        )
        seed_started = time.perf_counter()
        counts = seed(now)
        figures["seed_s"] = rounded(time.perf_counter() - seed_started, 1)
        figures["seeded"] = counts
        log(f"seeded in {figures['seed_s']} s: {counts}")
    else:
        log(f"reusing the seeded volume: {clients:,} clients, {payments:,} payments (--reseed to redo)")
        figures["seed_s"] = None
    figures["vacuum_analyze_s"] = rounded(vacuum_analyze(), 1)
    log(f"VACUUM ANALYZE: {figures['vacuum_analyze_s']} s")
    with connection.cursor() as cursor:
        cursor.execute("SHOW lc_collate")
        figures["lc_collate"] = cursor.fetchone()[0]
        cursor.execute("SELECT extname FROM pg_extension WHERE extname = 'pg_trgm'")
        figures["pg_trgm"] = bool(cursor.fetchone())
    log(f"lc_collate {figures['lc_collate']}, pg_trgm installed: {figures['pg_trgm']}")

    admin_user = User.objects.filter(username=SUPERUSER).first() or User.objects.create_superuser(
        SUPERUSER, "bench-admin@example.com", None
    )
    http = HttpClient()
    http.force_login(admin_user)
    # Superusers sign in with a second factor when DEBUG is off (onboarding_project/staff_otp.py):
    # the bench's session carries a verified TOTP device, as a real staff login would.
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device, _ = TOTPDevice.objects.get_or_create(user=admin_user, name="bench", defaults={"confirmed": True})
    session = http.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    terms = sample_terms()
    log(f"search terms: { {k: v for k, v in terms.items() if k != 'client'} }")

    results: dict = {}
    flagged = []
    log()
    log(
        f"{'page':34} {'median ms':>9} {'min ms':>8} {'queries':>7} {'SQL ms':>7} {'slowest':>7} {'COUNT':>6}"
    )
    for name, url, params, _kind in cases(terms, now):
        page = results[name] = measure(http, url, params, args.runs)
        count = "-" if page["count_ms"] is None else page["count_ms"]
        log(
            f"{name:34} {page['median_ms']:>9} {page['min_ms']:>8} {page['queries']:>7}"
            f" {page['sql_ms']:>7} {page['slowest_sql_ms']:>7} {count:>6}"
        )
    log()
    for name, url, params, kind in cases(terms, now):
        if kind != "search":
            continue
        entry = results[name]
        # The search's statements are those holding the term (LIKE escapes "_" with a backslash);
        # the slowest of them (the page or its COUNT) is run under EXPLAIN ANALYZE.
        term = params["q"].lower()
        searching = [q for q in entry["_queries"] if term in q[0].replace("\\", "").lower()]
        main_sql, main_seconds = max(searching, key=lambda q: q[1])
        plan = explain(main_sql)
        scans = set(seq_scans(plan))
        sidebar = []
        for sql, _seconds in entry["_queries"]:
            if sql != main_sql and sql.startswith("SELECT") and any(t in sql for t in BIG_TABLES):
                found = seq_scans(explain(sql, analyze=False))
                if found and (sql, _seconds) in searching:
                    scans.update(found)
                elif found:
                    sidebar.append(f"{', '.join(found)}: {sql[:100]}…")
        entry["search_sql_ms"] = rounded(main_seconds * 1000, 1)
        entry["seq_scans"] = sorted(scans)
        if scans:
            flagged.append(name)
        log(f"--- {name}: {url}?q={params['q']}")
        log(f"slowest search statement ({entry['search_sql_ms']} ms): {main_sql}")
        log(plan)
        log(f"!! Seq Scan on {', '.join(sorted(scans))}" if scans else "no Seq Scan on big tables")
        for line in sidebar:
            log(f"   (not the search: the filter sidebar etc.) Seq Scan on {line}")
        log()

    # The CSV export of a filtered list, streamed to the end.
    from django.test.utils import CaptureQueriesContext

    from crm.models import Service

    export_params = {"ordered_service__id__exact": str(Service.objects.get(service_id="seo-growth").pk)}

    export_times, export_rows, export_queries = [], 0, 0
    for run in range(args.csv_runs):
        with CaptureQueriesContext(connection) as captured:
            began = time.perf_counter()
            response = http.get("/admin/crm/client/export.csv", export_params)
            body = b"".join(response.streaming_content)
            export_times.append(time.perf_counter() - began)
            if run == 0:
                export_rows = body.count(b"\n") - 1
                export_queries = len(captured.captured_queries)
    figures["csv_export"] = {
        "filter": export_params,
        "rows": export_rows,
        "median_ms": rounded(statistics.median(export_times) * 1000, 1),
        "queries": export_queries,
        "bytes": len(body),
    }
    log(
        f"CSV export (clients of one service): {export_rows:,} rows, {len(body):,} bytes,"
        f" median {figures['csv_export']['median_ms']} ms, {export_queries} queries"
    )

    figures["dashboard_to_client_list"] = rounded(
        results["dashboard"]["median_ms"] / results["client_list"]["median_ms"], 2
    )
    from crm.models import LedgerDayRollup, MoneyMovement, SubscriptionMrr
    from crm.selectors.money_dashboard import money_figures

    money = money_figures(today=now.date())
    figures["ledger"] = {
        "movements": MoneyMovement.objects.count(),
        "rollup_rows": LedgerDayRollup.objects.count(),
        "subscriptions": SubscriptionMrr.objects.count(),
        "churn_30_days": money.churn["last_30_days"],
        "per_currency": {
            c.currency: {"net_30_days": c.net["last_30_days"], "active_subscriptions": c.active_subscriptions,
                         "mrr": c.mrr}
            for c in money.currencies
        },
    }  # fmt: skip
    log(f"dashboard / client list (median ms): {figures['dashboard_to_client_list']}")
    log(f"ledger figures on the dashboard: {figures['ledger']}")
    figures["pages"] = {
        name: {k: v for k, v in entry.items() if not k.startswith("_")} for name, entry in results.items()
    }
    figures["search_seq_scans"] = flagged
    figures["elapsed_s"] = rounded(time.monotonic() - started, 1)
    log(f"searches whose main statement Seq Scans a big table: {flagged or 'none'}")
    log(f"elapsed: {figures['elapsed_s']} s")
    benchlib.emit_json(figures)
    return 1 if flagged else 0


if __name__ == "__main__":
    raise SystemExit(main())
