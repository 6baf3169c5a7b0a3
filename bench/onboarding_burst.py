"""Onboarding burst: N paid checkouts delivered within a few seconds to gunicorn and qcluster.

    /work/main/.venv/bin/python bench/onboarding_burst.py [--n 500] [--window 10]
        [--broker orm|redis] [--rate-limit 0|100] [--q-workers 4] [--web-workers 3]

Sets up like bench/onboarding_latency.py (its own database `onboarding_burst` unless DATABASE_URL
is given, migrated, queue emptied, service "website-care"), then runs as subprocesses on
127.0.0.1: the Stripe sandbox, the web app (gunicorn) and the real worker (`manage.py qcluster`).
`--broker redis` uses REDIS_URL=redis://127.0.0.1:6379/<--redis-db> (7), flushing only that db.
`--rate-limit 100` makes the sandbox answer 429 (Stripe's rate_limit error) above 100 requests in
any wall-clock second, as live mode does.

The N checkouts are started at even intervals over `--window` seconds through the sandbox's
POST /_sandbox/checkouts (which delivers the signed webhook to gunicorn before answering); then
the database is polled until every onboarding is ONBOARDED (workspace ready, email sent) or the
timeout passes. Latency: from the WebhookEventTrigger's `created` (the web process stamps it
just before committing) to Onboarding.onboarded_at. Stripe requests and the most in one second
come from the sandbox's own counters. Prints `uptime` before and after (the machine is shared).

The last line is one JSON object with all figures.
"""

import argparse
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import benchlib
import requests
from benchlib import log, percentile, rounded
from onboarding_latency import CHECKOUT, SERVICE

DEFAULT_DATABASE_URL = "postgres://root@127.0.0.1:5432/onboarding_burst"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500, help="checkouts (500)")
    parser.add_argument("--window", type=float, default=10.0, help="seconds to deliver them in (10)")
    parser.add_argument("--senders", type=int, default=24, help="concurrent checkout senders (24)")
    parser.add_argument("--broker", choices=["orm", "redis"], default="orm")
    parser.add_argument("--redis-db", type=int, default=7, help="Redis db number, flushed first (7)")
    parser.add_argument("--rate-limit", type=int, default=0, help="sandbox requests/s limit (0 = none)")
    parser.add_argument("--q-workers", type=int, default=4, help="qcluster workers (4: 2 per core)")
    parser.add_argument("--web-workers", type=int, default=3, help="gunicorn workers (3)")
    parser.add_argument("--mode", choices=["auto", "prod", "debug"], default="auto")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for onboardings")
    parser.add_argument("--max-seconds", type=float, default=900, help="hard time limit for the run")
    return parser.parse_args()


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def checkout(sandbox_url: str, webhook_url: str, email: str, start_at: float) -> dict:
    time.sleep(max(0.0, start_at - time.monotonic()))
    sent = time.time()
    try:
        data = benchlib.sandbox_paid_checkout(sandbox_url, webhook_url, CHECKOUT, email, timeout=60)
    except requests.RequestException as exc:
        return {"email": email, "error": str(exc), "sent": sent}
    ok = benchlib.deliveries_ok(data)
    return {
        "email": email,
        "session": data["session"]["id"],
        "events": data["events"],
        "delivered": ok,
        "sent": sent,
        "answered": time.time(),
    }


def drive(sandbox_url: str, webhook_url: str, n: int, window: float, senders: int) -> list[dict]:
    run = uuid.uuid4().hex[:8]
    begin = time.monotonic() + 0.5
    with ThreadPoolExecutor(max_workers=senders) as pool:
        futures = [
            pool.submit(
                checkout, sandbox_url, webhook_url, f"burst-{run}-{i}@example.com", begin + i * window / n
            )
            for i in range(n)
        ]
        return [f.result() for f in futures]


def wait_onboarded(session_ids: list[str], timeout: float, children) -> tuple[int, float]:
    from crm.models import Onboarding

    started = time.monotonic()
    deadline = started + timeout
    done = 0
    while time.monotonic() < deadline:
        children.check_alive()
        done = Onboarding.objects.filter(
            checkout_session_id__in=session_ids, status=Onboarding.Status.ONBOARDED
        ).count()
        if done == len(session_ids):
            break
        time.sleep(0.5)
    return done, time.monotonic() - started


def cpu_groups(children) -> dict[str, list[int]]:
    """The processes of each part, for CPU accounting: the worker (qcluster and its workers), the
    web app, the Stripe sandbox, and this database's PostgreSQL backends."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        backends = [row[0] for row in cursor.fetchall()]
    pids = {name: proc.pid for name, proc, _ in children.procs}
    return {
        "worker": benchlib.descendant_pids(pids["qcluster"]),
        "web": benchlib.descendant_pids(pids["gunicorn"]),
        "sandbox": benchlib.descendant_pids(pids["sandbox"]),
        "postgres": backends,
    }


def latencies(results: list[dict]) -> list[float]:
    """Accepted (trigger created) -> onboarded, seconds, for each onboarded checkout."""
    from crm.models import Onboarding
    from stripe_events.models import StripeWebhookJob

    sessions = {r["session"]: r for r in results if "session" in r}
    event_to_session = {e: s for s, r in sessions.items() for e in r["events"]}
    accepted = {}
    for event_id, created in StripeWebhookJob.objects.filter(
        event_id__in=list(event_to_session), event_type="checkout.session.completed"
    ).values_list("event_id", "trigger__created"):
        accepted[event_to_session[event_id]] = created
    values = []
    for session_id, onboarded_at in Onboarding.objects.filter(
        checkout_session_id__in=list(sessions), onboarded_at__isnull=False
    ).values_list("checkout_session_id", "onboarded_at"):
        if session_id in accepted:
            values.append((onboarded_at - accepted[session_id]).total_seconds())
    return values


def outcome_counts(session_ids: list[str], since) -> dict:
    """The burst's onboardings by status, and this run's webhook jobs (the database keeps earlier runs')."""
    from django.db.models import Count

    from crm.models import Onboarding
    from stripe_events.models import StripeWebhookJob

    statuses = dict(
        Onboarding.objects.filter(checkout_session_id__in=session_ids)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    this_run = StripeWebhookJob.objects.filter(created__gte=since)
    jobs = dict(this_run.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    retried = this_run.filter(attempts__gt=1).count()
    return {"onboarding_statuses": statuses, "webhook_jobs": jobs, "webhook_jobs_retried": retried}


def main() -> int:
    args = parse_args()
    benchlib.install_guards(args.max_seconds)
    started = time.monotonic()
    database_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    figures: dict = {
        "bench": "onboarding_burst",
        "database": database_url.rsplit("/", 1)[-1],
        "n": args.n,
        "window_seconds": args.window,
        "broker": args.broker,
        "rate_limit_per_second": args.rate_limit,
        "q_workers": args.q_workers,
        "web_workers": args.web_workers,
        "uptime_before": uptime(),
    }
    log(f"load before: {figures['uptime_before']}")

    web_port, sandbox_port = benchlib.free_port(), benchlib.free_port()
    site_url, sandbox_url = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{sandbox_port}"
    children = benchlib.Children("bench-burst-")
    app_env = {
        "DATABASE_URL": database_url,
        "STRIPE_API_HOST": sandbox_url,
        "SITE_URL": site_url,
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(children.dir / "mail"),
        "LOG_LEVEL": "WARNING",
        "Q_WORKERS": str(args.q_workers),
    }
    os.environ.pop("REDIS_URL", None)
    if args.broker == "redis":
        app_env["REDIS_URL"] = f"redis://127.0.0.1:6379/{args.redis_db}"

    benchlib.ensure_database(database_url)
    mode, mode_env = benchlib.choose_mode(args.mode, database_url, app_env)
    env = {**os.environ, **mode_env, **app_env}
    benchlib.django_setup(env)
    log(f"settings: {mode}; migrate: {benchlib.migrate():.1f} s")

    from django.conf import settings
    from django.utils import timezone

    from stripe_events.webhook_endpoints import webhook_endpoint_register

    if args.broker == "redis":
        import redis

        redis.Redis.from_url(app_env["REDIS_URL"]).flushdb()  # only our db number
        log(f"flushed {app_env['REDIS_URL']}")
    benchlib.bench_database_ready([SERVICE])
    endpoint, _ = webhook_endpoint_register(secret=benchlib.WEBHOOK_SECRET, base_url=site_url)
    figures.update(mode=mode, q_cluster={k: v for k, v in settings.Q_CLUSTER.items() if k != "redis"})
    log(f"queue: {args.broker}, workers {settings.Q_CLUSTER['workers']}, gunicorn workers {args.web_workers}")

    with children:
        children.sandbox("sandbox", sandbox_port, env)
        children.spawn("gunicorn", benchlib.gunicorn_args(web_port, args.web_workers), env)
        benchlib.wait_http(f"{sandbox_url}/_sandbox/health", children)
        benchlib.wait_http(f"{site_url}/healthz/", children)
        children.manage("qcluster", ["qcluster"], env)
        warm = drive(sandbox_url, endpoint.url, 3, 0.5, 3)
        wait_onboarded([r["session"] for r in warm if "session" in r], 60, children)
        requests.delete(f"{sandbox_url}/_sandbox/requests", timeout=10).raise_for_status()
        requests.post(
            f"{sandbox_url}/_sandbox/rate_limit", json={"per_second": args.rate_limit}, timeout=10
        ).raise_for_status()

        log(f"driving {args.n} checkouts over {args.window:g} s ({args.senders} senders)")
        machine = benchlib.CpuSampler()
        machine.start()
        cpu_before = {name: benchlib.process_cpu_seconds(pids) for name, pids in cpu_groups(children).items()}
        drive_started = time.monotonic()
        run_started_at = timezone.now()
        results = drive(sandbox_url, endpoint.url, args.n, args.window, args.senders)
        drive_seconds = time.monotonic() - drive_started - 0.5
        undelivered = [r for r in results if not r.get("delivered")]
        log(f"delivered in {drive_seconds:.1f} s; {len(undelivered)} not accepted by the web app")
        session_ids = [r["session"] for r in results if "session" in r]
        done, waited = wait_onboarded(session_ids, args.timeout, children)
        cpu_seconds = {
            name: benchlib.cpu_delta(cpu_before.get(name, {}), benchlib.process_cpu_seconds(pids))
            for name, pids in cpu_groups(children).items()
        }
        figures["machine_cpu_busy"] = rounded(machine.stop(), 2)
        figures["cpu_ms_per_onboarding"] = {
            name: rounded(1000 * seconds / args.n, 1) for name, seconds in cpu_seconds.items()
        }
        log(f"CPU ms per onboarding (burst until the last onboarded): {figures['cpu_ms_per_onboarding']}")
        figures["uptime_during"] = uptime()
        counts = requests.get(f"{sandbox_url}/_sandbox/requests", timeout=10).json()
        rate = requests.get(f"{sandbox_url}/_sandbox/rate_limit", timeout=10).json()
        worker_log = children.log_of("qcluster").read_text(errors="replace")

    values = latencies(results)
    outcomes = outcome_counts(session_ids, run_started_at)
    # Failed: an onboarding or webhook job that gave up (not one still in progress at the timeout).
    failed = outcomes["onboarding_statuses"].get("failed", 0) + outcomes["webhook_jobs"].get("failed", 0)
    figures.update(
        delivered_in_seconds=rounded(drive_seconds, 2),
        not_accepted=len(undelivered),
        onboarded=done,
        failed=failed,
        not_onboarded_by_timeout=args.n - done,
        accepted_to_onboarded={
            "p50": rounded(percentile(values, 50)),
            "p95": rounded(percentile(values, 95)),
            "max": rounded(max(values) if values else None),
        },
        last_onboarded_after_burst_seconds=rounded(waited, 1),
        stripe_requests=counts.get("total", 0),
        stripe_requests_per_onboarding=rounded(counts.get("total", 0) / args.n, 2),
        stripe_requests_breakdown={k: v for k, v in counts.items() if k != "total"},
        stripe_max_requests_in_one_second=rate["max_in_one_second"],
        stripe_rate_limited_429=rate["rate_limited"],
        worker_log_rate_limit_waits=worker_log.count("Stripe rate limit (429)"),
        worker_log_tracebacks=worker_log.count("Traceback"),
        uptime_after=uptime(),
        elapsed_seconds=rounded(time.monotonic() - started, 1),
        **outcomes,
    )
    p95 = figures["accepted_to_onboarded"]["p95"]
    goal = 45 if args.rate_limit else 30
    met = done == args.n and failed == 0 and p95 is not None and p95 < goal
    figures["goal_met"] = met
    log(
        f"onboarded {done}/{args.n}, failed {failed}; accepted -> onboarded {figures['accepted_to_onboarded']}"  # noqa: E501
    )
    log(
        f"Stripe requests {figures['stripe_requests']}, most in one second {rate['max_in_one_second']}, "
        f"429s {rate['rate_limited']}; goal (all onboarded, p95 < {goal} s): {'MET' if met else 'MISSED'}"
    )
    log(f"load after: {figures['uptime_after']}")
    benchlib.emit_json(figures)
    return 0 if met else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; child processes stopped", file=sys.stderr)
        sys.exit(130)
