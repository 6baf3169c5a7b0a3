"""Onboarding latency: paid checkout -> webhook accepted -> workspace ready and welcome email sent.

    /work/venv/bin/python bench/onboarding_latency.py [--n 20] [--parallel 1] [--gap 0.25]

Sets up from nothing: creates and migrates the PostgreSQL database `onboarding_bench` (unless
DATABASE_URL is given), empties its task queue, creates the service "website-care", and runs as
subprocesses on 127.0.0.1: the Stripe sandbox (`manage.py stripe_sandbox`), the web app (gunicorn)
and the real worker (`manage.py qcluster`, default ORM broker, no REDIS_URL), with
STRIPE_API_HOST/SITE_URL pointing at them and the file email backend in a temporary directory.

Before the worker starts, ONE onboarding runs in this process through the same code the worker
runs (the real WSGI view, then each queued task taken from the ORM broker, run, acknowledged),
under CaptureQueriesContext: that is the SQL-per-onboarding figure. Then N checkouts go through
the sandbox's control endpoint (POST /_sandbox/checkouts, which delivers the signed webhook), and
the DB is polled until each onboarding's workspace is ready and its email sent. Latency starts at
the WebhookEventTrigger's `created` (the web process stamps it just before committing). Stage
timestamps come from rows the pipeline writes anyway (dj-stripe Event/Session, Onboarding,
Workspace). Stripe API requests come from the sandbox's own counters.

Prints figures as it goes; the last line is one JSON object with all of them.
"""

import argparse
import os
import re
import sys
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

import benchlib
import requests
from benchlib import log, percentile, rounded

SERVICE = ("website-care", "Website Care Plan")
CHECKOUT = {"name": "Bench Client", "service_id": SERVICE[0], "amount": 49900, "currency": "usd"}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="measured checkouts (20)")
    parser.add_argument("--parallel", type=int, default=1, help="checkouts in flight at once (1)")
    parser.add_argument("--gap", type=float, default=0.25, help="pause between checkouts, seconds (0.25)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured checkouts first (2)")
    parser.add_argument(
        "--stripe-latency-ms",
        type=int,
        default=0,
        help="extra latency the sandbox adds to every Stripe API request (a latency fault), e.g. 250",
    )
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn sync workers (2)")
    parser.add_argument(
        "--mode",
        choices=["auto", "prod", "debug"],
        default="auto",
        help="settings: prod = DJANGO_DEBUG=0 with its secrets; auto = prod, else debug (default)",
    )
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for onboardings")
    parser.add_argument("--max-seconds", type=float, default=240, help="hard time limit for the run")
    return parser.parse_args()


# --- the one in-process onboarding (SQL count) ----------------------------------------------------


def onboarding_in_process(endpoint_path: str) -> dict:
    """One paid checkout through the view and the worker's code, in this process; SQL per stage."""
    import stripe
    from django.core.wsgi import get_wsgi_application
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils.module_loading import import_string
    from django_q.brokers import get_broker
    from django_q.signing import SignedPackage

    from crm.models import Onboarding
    from stripe_sandbox.server import StripeSandbox
    from stripe_sandbox.signing import sign_payload
    from stripe_sandbox.webhooks import event_payload

    previous_host = stripe.api_base
    sandbox = StripeSandbox()
    stripe.api_base = sandbox.start()  # as dj-stripe sets it from STRIPE_API_HOST
    try:
        checkout = sandbox.create_checkout(
            email=f"bench-inprocess-{uuid.uuid4().hex[:8]}@example.com", **CHECKOUT, deliver=False
        )
        app = get_wsgi_application()
        broker = get_broker()
        stages = []  # (name, queries, seconds)
        for event_id in checkout["events"]:
            body = event_payload(sandbox.store.get("event", event_id))
            started = time.perf_counter()
            with CaptureQueriesContext(connection) as captured:
                status = benchlib.wsgi_post(
                    app, endpoint_path, body, sign_payload(body, benchlib.WEBHOOK_SECRET)
                )
            assert status == 200, f"in-process delivery answered {status}"
            stages.append(("webhook view", captured.captured_queries, time.perf_counter() - started))
        for _ in range(20):
            if not broker.queue_size():
                break
            # What the cluster does per task: pusher dequeues, a worker runs it, the monitor acks.
            with CaptureQueriesContext(connection) as captured:
                ((ack_id, payload),) = broker.dequeue()
            task = SignedPackage.loads(payload)
            started = time.perf_counter()
            with CaptureQueriesContext(connection) as ran:
                import_string(task["func"])(*task.get("args", ()), **task.get("kwargs", {}))
            elapsed = time.perf_counter() - started
            with CaptureQueriesContext(connection) as acked:
                broker.acknowledge(ack_id)
            name = task["func"].rsplit(".", 1)[-1]
            stages.append((f"task {name}", ran.captured_queries, elapsed))
            stages.append(
                (f"broker dequeue+ack ({name})", captured.captured_queries + acked.captured_queries, 0.0)
            )
        onboarding = Onboarding.objects.get(checkout_session_id=checkout["session"]["id"])
        stripe_requests = sandbox.request_counts()
    finally:
        sandbox.stop()
        stripe.api_base = previous_host
    return {"stages": stages, "status": onboarding.status, "stripe_requests": stripe_requests}


def is_control(sql: str) -> bool:
    """BEGIN, COMMIT and savepoints, which Django 5.2 logs as queries."""
    return sql in ("BEGIN", "COMMIT") or sql.split(" ", 1)[0] in ("SAVEPOINT", "RELEASE", "ROLLBACK")


def statement_kind(sql: str) -> str:
    """`SELECT djstripe_customer`, `UPDATE crm_onboarding`, … (verb and first table)."""
    verb = sql.split(" ", 1)[0]
    match = re.search(r'(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', sql)
    return f"{verb} {match.group(1) if match else ''}".strip()


# --- driving checkouts through the sandbox subprocess ---------------------------------------------


def checkout(sandbox_url: str, webhook_url: str, email: str) -> dict:
    """One paid checkout; the sandbox delivers its signed webhook(s) before answering."""
    sent = time.time()
    data = benchlib.sandbox_paid_checkout(sandbox_url, webhook_url, CHECKOUT, email, timeout=30)
    if not benchlib.deliveries_ok(data):
        raise RuntimeError(f"webhook delivery failed for {email}: {data['deliveries']}")
    return {"session": data["session"]["id"], "events": data["events"], "sent": sent, "answered": time.time()}


def drive(sandbox_url: str, webhook_url: str, emails: list[str], parallel: int, gap: float) -> list[dict]:
    if parallel <= 1:
        results = []
        for email in emails:
            results.append(checkout(sandbox_url, webhook_url, email))
            time.sleep(gap)
        return results
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        futures = []
        for email in emails:
            futures.append(pool.submit(checkout, sandbox_url, webhook_url, email))
            time.sleep(gap / parallel)
        return [future.result() for future in futures]


def wait_onboarded(session_ids: list[str], timeout: float, children) -> int:
    """Poll until every onboarding has its workspace ready and email sent; returns how many did."""
    from crm.models import Onboarding

    Step = Onboarding.StepStatus
    deadline = time.monotonic() + timeout
    done = 0
    while time.monotonic() < deadline:
        children.check_alive()
        done = Onboarding.objects.filter(
            checkout_session_id__in=session_ids,
            email_sent_at__isnull=False,
            workspace_status=Step.DONE,
        ).count()
        if done == len(session_ids):
            return done
        time.sleep(0.1)
    return done


def timelines(results: list[dict]) -> list[dict]:
    """Per checkout: seconds from webhook accepted to each later stamp the pipeline wrote."""
    from djstripe.models import Event, Session

    from crm.models import Onboarding
    from provisioning.models import Workspace
    from stripe_events.models import StripeWebhookJob

    rows = []
    for result in results:
        event_ids = result["events"]
        job = (
            StripeWebhookJob.objects.select_related("trigger")
            .filter(event_id__in=event_ids, event_type="checkout.session.completed")
            .first()
        )
        accepted = job.trigger.created
        event = Event.objects.filter(id=job.event_id).first()
        session = Session.objects.filter(id=result["session"]).first()
        onboarding = Onboarding.objects.get(checkout_session_id=result["session"])
        workspace = Workspace.objects.filter(
            client_id=onboarding.client_id, service_id=onboarding.service_id
        ).first()

        def since(moment, accepted=accepted):
            return None if moment is None else (moment - accepted).total_seconds()

        rows.append(
            {
                "session": result["session"],
                "status": onboarding.status,
                "delivery_roundtrip": result["answered"] - result["sent"],
                "job_picked_up": since(event.djstripe_created if event else None),
                "session_synced": since(session.djstripe_created if session else None),
                "onboarding_created": since(onboarding.created),
                "workspace_claimed": since(workspace.created if workspace else None),
                "workspace_ready": since(workspace.ready_at if workspace else None),
                "email_sent": since(onboarding.email_sent_at),
                "onboarded": since(onboarding.onboarded_at),
            }
        )
    return rows


def stats(values) -> dict:
    values = [v for v in values if v is not None]
    return {
        "p50": rounded(percentile(values, 50)),
        "p95": rounded(percentile(values, 95)),
        "max": rounded(max(values) if values else None),
    }


def stage_table(rows: list[dict]) -> dict:
    """Durations of consecutive stages (seconds), p50/p95/max over the checkouts."""

    def diff(row, end, start):
        if row[end] is None or (start and row[start] is None):
            return None
        return row[end] - (row[start] if start else 0.0)

    stages = {
        "accepted -> job picked up (commit, on_commit enqueue, ORM poll, pusher, worker)": (
            "job_picked_up",
            None,
        ),
        "job picked up -> session synced (Stripe retrieval)": ("session_synced", "job_picked_up"),
        "session synced -> onboarding created (receiver)": ("onboarding_created", "session_synced"),
        "onboarding created -> workspace claimed (enqueue, poll, pickup)": (
            "workspace_claimed",
            "onboarding_created",
        ),
        "workspace claimed -> ready (provisioning)": ("workspace_ready", "workspace_claimed"),
        "onboarding created -> email sent (enqueue, poll, pickup, render, send)": (
            "email_sent",
            "onboarding_created",
        ),
    }
    return {name: stats(diff(r, end, start) for r in rows) for name, (end, start) in stages.items()}


def main() -> int:
    args = parse_args()
    benchlib.install_guards(args.max_seconds)
    started = time.monotonic()
    database_url = os.environ.get("DATABASE_URL") or benchlib.DEFAULT_DATABASE_URL
    figures: dict = {"bench": "onboarding_latency", "database": database_url.rsplit("/", 1)[-1]}

    web_port, sandbox_port = benchlib.free_port(), benchlib.free_port()
    site_url, sandbox_url = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{sandbox_port}"
    children = benchlib.Children("bench-onboarding-")
    app_env = {
        "DATABASE_URL": database_url,
        "STRIPE_API_HOST": sandbox_url,
        "SITE_URL": site_url,
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(children.dir / "mail"),
        "LOG_LEVEL": "INFO",
    }
    for name in ("REDIS_URL", "Q_WORKERS"):
        os.environ.pop(name, None)  # the default ORM broker and worker count are what is measured

    benchlib.ensure_database(database_url)
    mode, mode_env = benchlib.choose_mode(args.mode, database_url, app_env)
    env = {**os.environ, **mode_env, **app_env}
    benchlib.django_setup(env)
    log(f"settings: {'production (DJANGO_DEBUG=0)' if mode == 'prod' else 'DEBUG (DJANGO_DEBUG=1)'}")
    log(f"migrate: {benchlib.migrate():.1f} s")

    from django.conf import settings

    from stripe_events.webhook_endpoints import webhook_endpoint_register

    purged_tasks, purged_retries = benchlib.bench_database_ready([SERVICE])
    log(f"emptied the bench database's queue: {purged_tasks} queued tasks, {purged_retries} retry schedules")
    endpoint, _ = webhook_endpoint_register(secret=benchlib.WEBHOOK_SECRET, base_url=site_url)
    endpoint_path = endpoint.url.removeprefix(site_url)
    broker = "ORM (default)" if not settings.REDIS_URL else "redis"
    log(
        f"queue: {broker}, poll {settings.Q_CLUSTER.get('poll')} s, workers {settings.Q_CLUSTER['workers']}, "
        f"bulk {settings.Q_CLUSTER.get('bulk')}"
    )
    figures.update(
        mode=mode,
        n=args.n,
        parallel=args.parallel,
        gap=args.gap,
        stripe_latency_ms=args.stripe_latency_ms,
        q_cluster=settings.Q_CLUSTER,
    )

    with children:
        children.sandbox("sandbox", sandbox_port, env)
        children.spawn("gunicorn", benchlib.gunicorn_args(web_port, args.web_workers), env)
        benchlib.wait_http(f"{sandbox_url}/_sandbox/health", children)
        benchlib.wait_http(f"{site_url}/healthz/", children)
        log(f"sandbox {sandbox_url}, web {site_url} (gunicorn, {args.web_workers} workers)")

        # 1. One onboarding in-process, before the worker runs, for the SQL count.
        one = onboarding_in_process(endpoint_path)
        log(f"\nSQL per onboarding, one onboarding run in-process (status {one['status']}):")
        per_stage = defaultdict(int)
        total = 0
        for name, queries, seconds in one["stages"]:
            total += len(queries)
            per_stage[name] += len(queries)
            log(f"  {name:<45} {len(queries):3d} queries  {1000 * seconds:7.1f} ms")
        data_total = sum(1 for _, queries, _ in one["stages"] for q in queries if not is_control(q["sql"]))
        job_queries = [
            q["sql"] for name, queries, _ in one["stages"] if "webhook_job" in name for q in queries
        ]
        top = Counter(statement_kind(sql) for sql in job_queries if not is_control(sql)).most_common(10)
        log("  webhook_job_process, most frequent statements: " + ", ".join(f"{k} x{n}" for k, n in top))
        log(
            f"  total {total} queries as Django logs them ({data_total} without BEGIN/COMMIT/SAVEPOINTs);"
            " raw CONN_HEALTH_CHECKS `SELECT 1`s are not included"
        )
        log(f"  Stripe API requests for it (in-process sandbox): {one['stripe_requests']}")
        figures.update(
            sql_per_onboarding=total,
            sql_per_onboarding_without_transaction_control=data_total,
            sql_job_top_statements=dict(top),
            sql_per_stage=dict(per_stage),
            inprocess_stripe_requests=one["stripe_requests"],
        )

        # 2. The real worker.
        children.manage("qcluster", ["qcluster"], env)
        run = uuid.uuid4().hex[:8]
        webhook_url = endpoint.url
        warm = drive(
            sandbox_url, webhook_url, [f"bench-{run}-warm{i}@example.com" for i in range(args.warmup)], 1, 0
        )
        warmed = wait_onboarded([r["session"] for r in warm], args.timeout, children)
        if warmed < len(warm):
            raise RuntimeError(
                f"warm-up: {warmed}/{len(warm)} onboarded in {args.timeout:.0f} s; worker log:\n"
                + benchlib.tail(children.log_of("qcluster"))
            )
        log(f"\nworker (manage.py qcluster) warm: {len(warm)} warm-up onboardings done")
        requests.delete(f"{sandbox_url}/_sandbox/requests", timeout=10).raise_for_status()
        if args.stripe_latency_ms:
            requests.post(
                f"{sandbox_url}/_sandbox/faults",
                json={"endpoint": "*", "kind": "latency", "latency_ms": args.stripe_latency_ms},
                timeout=10,
            ).raise_for_status()
            log(f"sandbox adds {args.stripe_latency_ms} ms to every Stripe API request from now on")

        how = "one at a time" if args.parallel <= 1 else f"{args.parallel} in parallel"
        log(f"driving {args.n} checkouts through POST /_sandbox/checkouts, {how}, gap {args.gap:g} s")
        drive_started = time.monotonic()
        results = drive(
            sandbox_url,
            webhook_url,
            [f"bench-{run}-{i}@example.com" for i in range(args.n)],
            args.parallel,
            args.gap,
        )
        done = wait_onboarded([r["session"] for r in results], args.timeout, children)
        elapsed = time.monotonic() - drive_started
        log(f"{done}/{args.n} onboarded (workspace ready + email sent) {elapsed:.1f} s after the first one")
        counts = requests.get(f"{sandbox_url}/_sandbox/requests", timeout=10).json()
        worker_log = children.log_of("qcluster").read_text(errors="replace")
        web_log = children.log_of("gunicorn").read_text(errors="replace")
        mails = len(list((children.dir / "mail").glob("*"))) if (children.dir / "mail").exists() else 0

    rows = timelines(results)
    ready = stats(r["workspace_ready"] for r in rows)
    email = stats(r["email_sent"] for r in rows)
    onboarded = stats(r["onboarded"] for r in rows)
    log("\nper checkout (seconds after the webhook was accepted):")
    log("   #  picked-up  synced  onboarding  ws-claimed  ws-ready  email-sent  delivery-rtt")
    for number, r in enumerate(rows, 1):
        cells = [
            r[k]
            for k in (
                "job_picked_up",
                "session_synced",
                "onboarding_created",
                "workspace_claimed",
                "workspace_ready",
                "email_sent",
                "delivery_roundtrip",
            )
        ]
        log(f"  {number:2d}  " + "  ".join(f"{c:9.3f}" if c is not None else "        -" for c in cells))
    log("\nstages (p50 / p95 / max, seconds):")
    table = stage_table(rows)
    for name, s in table.items():
        log(f"  {name:<80} {s['p50']} / {s['p95']} / {s['max']}")

    total_requests = counts.get("total", 0)
    per_onboarding = total_requests / args.n if args.n else None
    goal_latency = (ready["p95"] or 99) < 2 and (email["p95"] or 99) < 2 and done == args.n
    goal_stripe = per_onboarding is not None and per_onboarding <= 2  # issue 13 goal 4
    log("\nresults:")
    log(f"  accepted -> workspace ready: p50 {ready['p50']} s, p95 {ready['p95']} s (max {ready['max']})")
    log(f"  accepted -> email sent:      p50 {email['p50']} s, p95 {email['p95']} s (max {email['max']})")
    log(f"  accepted -> onboarded:       p50 {onboarded['p50']} s, p95 {onboarded['p95']} s")
    log(f"  goal p95 < 2 s with the ORM broker: {'MET' if goal_latency else 'MISSED'}")
    log(
        f"  Stripe API requests: {total_requests} for {args.n} onboardings = {per_onboarding:.2f} each "
        f"(goal <= 2: {'MET' if goal_stripe else 'MISSED'})"
    )
    for pattern, count in sorted(counts.items()):
        if pattern != "total":
            log(f"    {count / args.n:5.2f}  {pattern}")
    log(f"  SQL per onboarding (in-process, see above): {total}")
    problems = {
        "worker_log_errors": worker_log.count(" ERROR "),
        "worker_log_tracebacks": worker_log.count("Traceback"),
        "web_log_tracebacks": web_log.count("Traceback"),
        "emails_written": mails,
    }
    log(f"  logs: {problems}")
    figures.update(
        onboarded=done,
        accepted_to_workspace_ready=ready,
        accepted_to_email_sent=email,
        accepted_to_onboarded=onboarded,
        stages=table,
        latency_goal_met=goal_latency,
        stripe_requests_total=total_requests,
        stripe_requests_per_onboarding=rounded(per_onboarding, 2),
        stripe_requests_breakdown={k: v for k, v in counts.items() if k != "total"},
        stripe_goal_met=goal_stripe,
        checks=problems,
        elapsed_seconds=rounded(time.monotonic() - started, 1),
    )
    benchlib.emit_json(figures)
    return 0 if done == args.n else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; child processes stopped", file=sys.stderr)
        sys.exit(130)
