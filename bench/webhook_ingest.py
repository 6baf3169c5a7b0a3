"""Webhook ingest throughput: signed checkout.session.completed POSTs vs GET /healthz/, same server.

    /work/venv/bin/python bench/webhook_ingest.py [--seconds 15] [--concurrency 8] [--mode auto]

Sets up from nothing: creates and migrates the PostgreSQL database `onboarding_bench` (unless
DATABASE_URL is given), runs the app under gunicorn (sync workers) on 127.0.0.1, registers a
webhook endpoint, then measures both endpoints in alternating rounds with a pure-Python load
generator (threads, one keep-alive-capable http.client connection each). Every webhook carries a
distinct event id and a fresh signature. Also counts SQL queries per webhook in-process
(django.test.Client + CaptureQueriesContext) and checks, at the end, that every 2xx left exactly
one valid WebhookEventTrigger and one StripeWebhookJob. The django-q worker is not running, so
jobs accumulate; the rows this run created are deleted at the end unless --keep.

The same server also serves two bench-only reference endpoints (bench/ingest_floor_urls.py):
signature check only, and signature check plus one raw INSERT of the delivery. They are measured
in the same rounds and show how much of the gap to the trivial view any durable ingest pays on
this machine, and how much is the app's own.

Prints figures as it goes; the last line is one JSON object with all of them.
"""

import argparse
import http.client
import itertools
import json
import os
import re
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter

import benchlib
from benchlib import log, percentile, rounded

BENCH = benchlib.REPO / "bench"

USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
ID_PLACEHOLDER = "evt_BENCH_ID_PLACEHOLDER"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15, help="measured seconds per endpoint (15)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds the seconds are split in")
    parser.add_argument("--warmup", type=float, default=3, help="warm-up seconds per endpoint (3)")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads (8)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers (4)")
    parser.add_argument(
        "--mode",
        choices=["auto", "prod", "debug"],
        default="auto",
        help="settings: prod = DJANGO_DEBUG=0 with its secrets; auto = prod, else debug (default)",
    )
    parser.add_argument("--query-samples", type=int, default=5, help="in-process deliveries measured (5)")
    parser.add_argument("--keep", action="store_true", help="keep the triggers, jobs and queue rows")
    parser.add_argument("--max-seconds", type=float, default=240, help="hard time limit for the run")
    return parser.parse_args()


class WebhookBodies:
    """Realistic signed deliveries: one real sandbox event, a distinct id and signature per request."""

    def __init__(self, event: dict, secret: str, run: str):
        from stripe_sandbox.webhooks import event_payload

        event = dict(event, id=ID_PLACEHOLDER)
        self.prefix, self.suffix = event_payload(event).split(ID_PLACEHOLDER)
        self.secret = secret
        self.id_prefix = f"evt_bench{run}_"
        self.counter = itertools.count(1)  # next() on itertools.count is atomic in CPython

    def next(self) -> tuple[str, str]:
        """(body, Stripe-Signature header) for a new event id."""
        from stripe_sandbox.signing import sign_payload

        body = f"{self.prefix}{self.id_prefix}{next(self.counter)}{self.suffix}"
        return body, sign_payload(body, self.secret)


def load(port: int, make_request, seconds: float, concurrency: int, cpu_groups) -> dict:
    """Run `concurrency` threads hitting the server for `seconds`; latencies, statuses, CPU use.

    `cpu_groups()` returns {name: [pids]} whose CPU time (from /proc) is charged to this phase.
    """
    deadline = time.perf_counter() + seconds
    results = []
    lock = threading.Lock()

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        latencies, statuses = [], Counter()
        while time.perf_counter() < deadline:
            method, path, body, headers = make_request()
            started = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                statuses[f"error:{type(exc).__name__}"] += 1
                continue
            latencies.append(time.perf_counter() - started)
            statuses[status] += 1
        conn.close()
        with lock:
            results.append((latencies, statuses))

    cpu = benchlib.CpuSampler()
    cpu.start()
    groups = cpu_groups()
    cpu_before = {name: benchlib.process_cpu_seconds(pids) for name, pids in groups.items()}
    client_cpu_start = time.process_time()
    wall_start = time.perf_counter()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    wall = time.perf_counter() - wall_start
    cpu_seconds = {
        name: benchlib.cpu_delta(cpu_before[name], benchlib.process_cpu_seconds(pids))
        for name, pids in cpu_groups().items()
    }
    latencies = [x for lats, _ in results for x in lats]
    statuses = sum((s for _, s in results), Counter())
    ok = sum(n for status, n in statuses.items() if isinstance(status, int) and 200 <= status < 300)
    return {
        "wall": wall,
        "ok": ok,
        "statuses": dict(statuses),
        "latencies": latencies,
        "client_cpu": (time.process_time() - client_cpu_start) / wall,
        "cpu_seconds": {**cpu_seconds, "client": time.process_time() - client_cpu_start},
        "machine_cpu": cpu.stop(),
    }


def summarise(name: str, parts: list[dict]) -> dict:
    wall = sum(p["wall"] for p in parts)
    ok = sum(p["ok"] for p in parts)
    latencies = [x for p in parts for x in p["latencies"]]
    statuses = sum((Counter(p["statuses"]) for p in parts), Counter())
    return {
        "endpoint": name,
        "requests_2xx": ok,
        "non_2xx": {str(k): v for k, v in statuses.items() if not (isinstance(k, int) and 200 <= k < 300)},
        "seconds": rounded(wall, 2),
        "rps": rounded(ok / wall, 1) if wall else None,
        "p50_ms": rounded((percentile(latencies, 50) or 0) * 1000, 2),
        "p99_ms": rounded((percentile(latencies, 99) or 0) * 1000, 2),
        "cpu_ms_per_request": {
            name: rounded(1000 * sum(p["cpu_seconds"][name] for p in parts) / ok, 3) if ok else None
            for name in parts[0]["cpu_seconds"]
        },
        "client_cpu_cores": rounded(sum(p["client_cpu"] * p["wall"] for p in parts) / wall, 2),
        "machine_cpu_busy": rounded(
            sum((p["machine_cpu"] or 0) * p["wall"] for p in parts) / wall if wall else None, 2
        ),
    }


def print_phase(label: str, result: dict) -> None:
    lats = result["latencies"]
    bad = {k: v for k, v in result["statuses"].items() if not (isinstance(k, int) and 200 <= k < 300)}
    log(
        f"  {label:<22} {result['ok'] / result['wall']:8.1f} rps  "
        f"p50 {1000 * (percentile(lats, 50) or 0):6.2f} ms  "
        f"p99 {1000 * (percentile(lats, 99) or 0):7.2f} ms  "
        f"client CPU {result['client_cpu']:.2f} cores  machine busy "
        f"{(result['machine_cpu'] or 0) * 100:.0f}%" + (f"  NON-2xx {bad}" if bad else "")
    )


def pg_counters() -> dict:
    """This database's transaction and tuple counters (PostgreSQL statistics, flushed lazily)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT xact_commit + xact_rollback, tup_inserted FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
        xacts, inserted = cursor.fetchone()
    return {"xacts": xacts, "inserted": inserted}


def wire_statements(trace_path: str) -> int:
    """Statements the client sent, from a libpq protocol trace (simple Query or extended Execute)."""
    with open(trace_path, errors="replace") as trace:
        return sum(1 for line in trace if re.search(r"\tF\t\d+\t(Query|Execute)\b", line))


def measure_queries(bodies: WebhookBodies, path: str, samples: int) -> dict:
    """SQL per webhook, in-process, through Django's WSGI handler against the same database.

    Two counts per delivery: Django's (CaptureQueriesContext; Django 5.2 lists BEGIN and COMMIT)
    and the wire's (libpq trace), which also sees the raw `SELECT 1` connection health checks
    that CONN_HEALTH_CHECKS sends and Django does not log.
    """
    from django.core.wsgi import get_wsgi_application
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    app = get_wsgi_application()
    assert benchlib.wsgi_post(app, path, *bodies.next()) == 200, "warm-up delivery was not accepted"
    counts, wire, statements, ok = [], [], [], 1
    with tempfile.TemporaryDirectory() as tmp:
        for number in range(samples):
            trace_path = os.path.join(tmp, f"trace{number}.txt")
            with open(trace_path, "w") as trace, CaptureQueriesContext(connection) as captured:
                pgconn = connection.connection.pgconn if connection.connection else None
                traced = False
                try:
                    pgconn.trace(trace.fileno())
                    traced = True
                except Exception:  # noqa: BLE001 - tracing is optional (no libpq trace on some builds)
                    traced = False
                status = benchlib.wsgi_post(app, path, *bodies.next())
                if traced:
                    pgconn.untrace()
            assert status == 200, f"delivery answered {status}"
            ok += 1
            counts.append(len(captured.captured_queries))
            if traced:
                wire.append(wire_statements(trace_path))
            if not statements:
                statements = [q["sql"] for q in captured.captured_queries]
    return {"counts": counts, "wire": wire, "statements": statements, "deliveries_2xx": ok}


def floor_database_url(database_url: str) -> str:
    """The reference endpoint's own database, beside the app's on the same server."""
    return f"{database_url}_floor"


def floor_table_create(url: str) -> None:
    import psycopg

    benchlib.ensure_database(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {benchlib.FLOOR_TABLE} (id bigserial PRIMARY KEY, "
            "event_id text NOT NULL, body text NOT NULL, headers jsonb NOT NULL, "
            "received timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute(f"TRUNCATE {benchlib.FLOOR_TABLE}")


def floor_table_rows(url: str, drop: bool = False) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(f"SELECT count(*) FROM {benchlib.FLOOR_TABLE}").fetchone()[0]  # noqa: S608
        if drop:
            conn.execute(f"DROP TABLE {benchlib.FLOOR_TABLE}")
    return rows


def real_event() -> dict:
    """A real checkout.session.completed event from an in-process sandbox (never delivered)."""
    from stripe_sandbox.server import StripeSandbox

    sandbox = StripeSandbox()  # not started: only its object factory and store are used
    result = sandbox.create_checkout(
        email="ada@example.com",
        name="Ada Lovelace",
        service_id="website-care",
        amount=49900,
        currency="usd",
        deliver=False,
    )
    events = [sandbox.store.get("event", event_id) for event_id in result["events"]]
    event = next(e for e in events if e["type"] == "checkout.session.completed")
    return json.loads(json.dumps(event))


def verify_rows(run_prefix: str, first_trigger_id: int, expected: int) -> dict:
    """Every 2xx left exactly one valid trigger and one job; nothing else was stored."""
    from djstripe.models import WebhookEventTrigger

    from stripe_events.models import StripeWebhookJob

    new_triggers = WebhookEventTrigger.objects.filter(id__gt=first_trigger_id)
    jobs = StripeWebhookJob.objects.filter(event_id__startswith=run_prefix)
    figures = {
        "expected_2xx": expected,
        "valid_triggers": new_triggers.filter(valid=True).count(),
        "invalid_triggers": new_triggers.exclude(valid=True).count(),
        "jobs": jobs.count(),
        "distinct_job_event_ids": jobs.values("event_id").distinct().count(),
        "valid_triggers_without_job": new_triggers.filter(valid=True, job__isnull=True).count(),
    }
    figures["ok"] = (
        figures["valid_triggers"] == figures["jobs"] == figures["distinct_job_event_ids"] == expected
        and figures["invalid_triggers"] == figures["valid_triggers_without_job"] == 0
    )
    return figures


def cleanup_rows(first_trigger_id: int, run_prefix: str, first_ormq_id: int) -> tuple[int, int]:
    from django_q.models import OrmQ
    from djstripe.models import WebhookEventTrigger

    from stripe_events.models import StripeWebhookJob

    StripeWebhookJob.objects.filter(event_id__startswith=run_prefix).delete()
    deleted_triggers, _ = WebhookEventTrigger.objects.filter(id__gt=first_trigger_id).delete()
    deleted_tasks, _ = OrmQ.objects.filter(id__gt=first_ormq_id).delete()
    return deleted_triggers, deleted_tasks


def main() -> int:
    args = parse_args()
    benchlib.install_guards(args.max_seconds)
    started = time.monotonic()
    database_url = os.environ.get("DATABASE_URL") or benchlib.DEFAULT_DATABASE_URL
    figures: dict = {"bench": "webhook_ingest", "database": database_url.rsplit("/", 1)[-1]}

    benchlib.ensure_database(database_url)
    mode, mode_env = benchlib.choose_mode(args.mode, database_url, {})
    env = {**os.environ, **mode_env, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
    benchlib.django_setup(env)
    log(f"settings: {'production (DJANGO_DEBUG=0)' if mode == 'prod' else 'DEBUG (DJANGO_DEBUG=1)'}")
    log(f"migrate: {benchlib.migrate():.1f} s")
    figures.update(mode=mode, workers=args.workers, concurrency=args.concurrency)

    from django.db.models import Max
    from django_q.models import OrmQ
    from djstripe.models import WebhookEventTrigger

    from stripe_events.webhook_endpoints import webhook_endpoint_register

    run = uuid.uuid4().hex[:8]
    port = benchlib.free_port()
    endpoint, _ = webhook_endpoint_register(
        secret=benchlib.WEBHOOK_SECRET, base_url=f"http://127.0.0.1:{port}"
    )
    path = endpoint.url.removeprefix(f"http://127.0.0.1:{port}")
    bodies = WebhookBodies(real_event(), benchlib.WEBHOOK_SECRET, run)
    run_prefix = bodies.id_prefix
    first_trigger_id = WebhookEventTrigger.objects.aggregate(m=Max("id"))["m"] or 0
    first_ormq_id = OrmQ.objects.aggregate(m=Max("id"))["m"] or 0
    sample_body, _ = bodies.next()
    log(f"webhook endpoint {path}; body {len(sample_body)} bytes (checkout.session.completed)")

    floor_url = None
    try:
        # 1. SQL per webhook, in-process, against the same database.
        queries = measure_queries(bodies, path, args.query_samples)
        per_webhook = max(queries["counts"])
        data_statements = sum(1 for q in queries["statements"] if q not in ("BEGIN", "COMMIT"))
        wire = max(queries["wire"]) if queries["wire"] else None
        log(
            f"\nSQL queries per webhook (in-process through Django's WSGI handler, CaptureQueriesContext):"
            f" {queries['counts']} -> {per_webhook} ({data_statements} statements + BEGIN/COMMIT)"
        )
        for number, statement in enumerate(queries["statements"], 1):
            log(f"  {number}. {statement[:150]}{'…' if len(statement) > 150 else ''}")
        log(
            f"  on the wire (libpq trace): {queries['wire']} -> {wire}; the difference is raw `SELECT 1` "
            "health checks (CONN_HEALTH_CHECKS: one at the request's first query, one more when "
            "django-q's ORM broker calls close_old_connections() before its INSERT)"
        )
        figures["queries_per_webhook"] = per_webhook
        figures["queries_data_statements"] = data_statements
        figures["queries_on_wire"] = wire
        figures["queries_samples"] = queries["counts"]
        figures["queries_sql"] = [s[:120] for s in queries["statements"]]
        figures["queries_goal_met"] = per_webhook <= 6

        def signed_post(url_path: str):
            def make():
                body, signature = bodies.next()
                headers = {
                    "Content-Type": "application/json; charset=utf-8",
                    "Stripe-Signature": signature,
                    "User-Agent": USER_AGENT,
                }
                return "POST", url_path, body.encode(), headers

            return make

        def healthz_request():
            return "GET", "/healthz/", None, {}

        phases = {
            "healthz": healthz_request,
            "verify": signed_post("/bench/floor/verify/"),
            "floor": signed_post("/bench/floor/write/"),
            "webhook": signed_post(path),
        }
        floor_url = floor_database_url(database_url)
        floor_table_create(floor_url)
        # The app's settings plus the reference endpoints (bench/ingest_floor_settings.py).
        server_env = {
            **env,
            "DJANGO_SETTINGS_MODULE": "ingest_floor_settings",
            "PYTHONPATH": str(BENCH),
            "BENCH_FLOOR_DATABASE_URL": floor_url,
        }

        with benchlib.Children("bench-ingest-") as children:
            children.spawn("gunicorn", benchlib.gunicorn_args(port, args.workers), server_env)
            benchlib.wait_http(f"http://127.0.0.1:{port}/healthz/", children)
            log(
                f"\ngunicorn: {args.workers} sync workers on 127.0.0.1:{port}; "
                f"{args.concurrency} client threads"
            )
            gunicorn_pid = children.procs[-1][1].pid

            def cpu_groups():
                from django.db import connection

                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT pid FROM pg_stat_activity WHERE datname IN (current_database(), %s) "
                        "AND pid <> pg_backend_pid()",
                        [floor_url.rsplit("/", 1)[-1]],
                    )
                    backends = [row[0] for row in cursor.fetchall()]
                return {"gunicorn": benchlib.descendant_pids(gunicorn_pid), "postgres": backends}

            pg_before = pg_counters()

            total_2xx_webhooks = total_2xx_floor = 0
            log(f"warm-up {args.warmup:g} s each:")
            for label, make in phases.items():
                result = load(port, make, args.warmup, args.concurrency, cpu_groups)
                print_phase(f"{label} (warm-up)", result)
                total_2xx_webhooks += result["ok"] if label == "webhook" else 0
                total_2xx_floor += result["ok"] if label == "floor" else 0

            parts = {label: [] for label in phases}
            slice_seconds = args.seconds / args.rounds
            log(
                f"measuring {args.seconds:g} s each, alternating in "
                f"{args.rounds} rounds of {slice_seconds:g} s:"
            )
            for number in range(1, args.rounds + 1):
                for label, make in phases.items():
                    children.check_alive()
                    result = load(port, make, slice_seconds, args.concurrency, cpu_groups)
                    print_phase(f"{label} round {number}", result)
                    parts[label].append(result)
                    total_2xx_webhooks += result["ok"] if label == "webhook" else 0
                    total_2xx_floor += result["ok"] if label == "floor" else 0

            children.stop_all()  # closes the workers' connections, which flushes their statistics
            time.sleep(0.5)
            pg_after = pg_counters()

        trivial = summarise("GET /healthz/", parts["healthz"])
        webhook = summarise("POST /stripe/webhook/<uuid>/", parts["webhook"])
        verify_only = summarise("POST /bench/floor/verify/", parts["verify"])
        floor = summarise("POST /bench/floor/write/", parts["floor"])
        ratio = webhook["rps"] / trivial["rps"] if trivial["rps"] else None
        log("\nresults:")
        for result in (webhook, floor, verify_only, trivial):
            log(
                f"  {result['endpoint']:<30} {result['rps']:8.1f} rps  p50 {result['p50_ms']:6.2f} ms  "
                f"p99 {result['p99_ms']:7.2f} ms  ({result['requests_2xx']} x 2xx in {result['seconds']} s,"
                f" non-2xx {result['non_2xx'] or 0})"
            )
            cpu = result["cpu_ms_per_request"]
            log(
                f"  {'':<30} CPU ms per request: gunicorn {cpu['gunicorn']:.2f}, postgres backends "
                f"{cpu['postgres']:.2f}, load generator {cpu['client']:.2f}"
            )
        floor_ratio = floor["rps"] / trivial["rps"]
        to_floor = webhook["rps"] / floor["rps"]
        log(
            f"  ratio webhook/durable floor (signature check + one raw INSERT): {to_floor:.2f} "
            f"(goal >= 0.5: {'MET' if to_floor >= 0.5 else 'MISSED'})"
        )
        log(
            f"  reference: webhook/trivial {ratio:.2f} (the retired goal); signature check only/trivial "
            f"{verify_only['rps'] / trivial['rps']:.2f}; the floor/trivial {floor_ratio:.2f}"
        )
        log(f"  queries per webhook: {per_webhook} (goal <= 6: {'MET' if per_webhook <= 6 else 'MISSED'})")
        xacts = (pg_after["xacts"] - pg_before["xacts"]) / total_2xx_webhooks if total_2xx_webhooks else None
        inserted = (
            (pg_after["inserted"] - pg_before["inserted"]) / total_2xx_webhooks
            if total_2xx_webhooks
            else None
        )
        log(
            f"  server side (pg_stat_database over the gunicorn run): {xacts:.2f} transactions and "
            f"{inserted:.2f} rows inserted per webhook"
        )
        figures.update(
            webhook=webhook,
            healthz=trivial,
            ratio_webhook_to_trivial=rounded(ratio, 3),
            ratio_goal_met=to_floor >= 0.5,  # issue 13: ratio_webhook_to_floor_write >= 0.5
            floor_verify=verify_only,
            floor_write=floor,
            ratio_floor_verify_to_trivial=rounded(verify_only["rps"] / trivial["rps"], 3),
            ratio_floor_write_to_trivial=rounded(floor_ratio, 3),
            ratio_webhook_to_floor_write=rounded(webhook["rps"] / floor["rps"], 3),
            pg_xacts_per_webhook=rounded(xacts, 2),
            pg_rows_inserted_per_webhook=rounded(inserted, 2),
        )

        expected = total_2xx_webhooks + queries["deliveries_2xx"]
        check = verify_rows(run_prefix, first_trigger_id, expected)
        log(
            f"\ncorrectness: {check['expected_2xx']} deliveries answered 2xx (load + in-process); stored "
            f"{check['valid_triggers']} valid triggers, {check['jobs']} jobs "
            f"({check['distinct_job_event_ids']} distinct event ids), {check['invalid_triggers']} invalid "
            f"triggers, {check['valid_triggers_without_job']} triggers without a job -> "
            f"{'OK' if check['ok'] else 'MISMATCH'}"
        )
        floor_rows = floor_table_rows(floor_url)
        check["floor_2xx"], check["floor_rows"] = total_2xx_floor, floor_rows
        check["ok"] = check["ok"] and floor_rows == total_2xx_floor
        log(f"reference endpoint: {total_2xx_floor} answered 2xx, {floor_rows} rows stored")
        figures["correctness"] = check
    finally:
        if not args.keep:  # also after an error or Ctrl-C, so runs do not pile up rows
            triggers, tasks = cleanup_rows(first_trigger_id, run_prefix, first_ormq_id)
            if floor_url:
                floor_table_rows(floor_url, drop=True)
            log(f"cleanup: deleted {triggers} triggers (and their jobs) and {tasks} queued tasks of this run")
    figures["elapsed_seconds"] = rounded(time.monotonic() - started, 1)
    benchlib.emit_json(figures)
    return 0 if check["ok"] else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; child processes stopped", file=sys.stderr)
        sys.exit(130)
