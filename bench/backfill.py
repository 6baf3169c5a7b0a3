"""Backfill throughput and memory: `onboarding_backfill` over 1,000 and 10,000 Stripe sessions.

    /work/venv/bin/python bench/backfill.py [--sizes 1000,10000] [--mode auto|prod|debug]

Sets up from nothing: creates and migrates its own PostgreSQL database `onboarding_bench_backfill`
(unless DATABASE_URL is given; not benchlib's `onboarding_bench`, because each size starts by
emptying the tables the backfill writes and other benches may be using that one).

For each size, on 127.0.0.1: a fresh Stripe sandbox subprocess (`manage.py stripe_sandbox`) is
seeded with N paid sessions through its control endpoint (POST /_sandbox/seed), then a FRESH
child process (this script with --child) runs the backfill service, in the same way the command
does, with --no-email and the rate limit lifted (rate=0: the bench measures our side, not the
20 requests/s a test-mode key is held to). The sandbox runs in its own process so that the
child's memory is the backfill's alone (an in-process sandbox holds every seeded object).

Figures per size:
- sessions per second: N / wall time of the backfill call;
- Stripe API requests per session: from the sandbox's own counters (GET /_sandbox/requests);
- SQL queries per session: counted with `connection.execute_wrapper` (a counter; Django's
  CaptureQueriesContext would keep every statement's SQL, growing memory with N);
- peak memory: `resource.getrusage(RUSAGE_SELF).ru_maxrss` of the child (the process's real high
  water mark, C allocations included, which tracemalloc would miss and would slow down), shown
  with the child's RSS just before the backfill, so the growth is visible as well as the total.

The last line is one JSON object with all figures.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime

import benchlib
import requests
from benchlib import log, rounded

DATABASE_URL = "postgres://root@127.0.0.1:5432/onboarding_bench_backfill"
SINCE = datetime(2025, 1, 1, tzinfo=UTC)
UNTIL = datetime(2025, 1, 2, tzinfo=UTC)
SERVICE = ("website-care", "Website Care Plan")
# Everything the backfill writes, emptied before each size so each starts from the same state.
TABLES = [
    "crm_activity",
    "crm_payment",
    "crm_onboarding",
    "provisioning_workspace",
    "crm_client",
    "crm_backfillrun",
    "djstripe_session",
    "djstripe_paymentintent",
    "djstripe_paymentmethod",
    "djstripe_customer",
    "django_q_ormq",
]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="session counts, comma-separated")
    parser.add_argument("--mode", choices=["auto", "prod", "debug"], default="auto")
    parser.add_argument("--max-seconds", type=float, default=1500, help="hard time limit for the run")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sandbox-url", help=argparse.SUPPRESS)
    return parser.parse_args()


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


# --- the child: one size, one fresh process -------------------------------------------------------


def child(size: int, sandbox_url: str) -> None:
    from django.db import connection

    from crm.backfill import onboarding_backfill
    from crm.models import Service

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")  # noqa: S608 - constant names
    Service.objects.update_or_create(service_id=SERVICE[0], defaults={"name": SERVICE[1]})
    requests.delete(f"{sandbox_url}/_sandbox/requests", timeout=10)

    queries = 0

    def count(execute, sql, params, many, context):
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    rss_before = maxrss_mb()
    started = time.perf_counter()
    with connection.execute_wrapper(count):
        summary = onboarding_backfill(since=SINCE, until=UNTIL, no_email=True, rate=0)
    seconds = time.perf_counter() - started
    stripe_requests = requests.get(f"{sandbox_url}/_sandbox/requests", timeout=10).json()
    print(
        json.dumps(
            {
                "size": size,
                "seconds": seconds,
                "sessions_per_second": size / seconds,
                "stripe_requests": stripe_requests,
                "sql_queries": queries,
                "rss_before_mb": rss_before,
                "peak_rss_mb": maxrss_mb(),
                "counts": summary.counts,
                "pages": summary.pages,
            }
        ),
        flush=True,
    )


# --- the parent: database, sandbox, one child per size ---------------------------------------------


def seed(sandbox_url: str, size: int) -> None:
    response = requests.post(
        f"{sandbox_url}/_sandbox/seed",
        json={
            "count": size,
            "service_id": SERVICE[0],
            "currency": "usd",
            "amount": 49900,
            "email": "bench-{i}@example.com",
            "name": "Bench Client {i}",
            "created_from": int(SINCE.timestamp()) + 60,
            "created_step": 1,
        },
        timeout=600,
    )
    response.raise_for_status()
    assert response.json()["created"] == size


def measure(size: int, env: dict, children: benchlib.Children) -> dict:
    port = benchlib.free_port()
    sandbox = children.sandbox(f"sandbox-{size}", port, env)
    url = f"http://127.0.0.1:{port}"
    try:
        benchlib.wait_http(f"{url}/_sandbox/health", children)
        started = time.perf_counter()
        seed(url, size)
        log(f"  seeded {size} sessions in {time.perf_counter() - started:.1f} s")
        run = subprocess.run(
            [sys.executable, __file__, "--child", str(size), "--sandbox-url", url],
            env={**env, "STRIPE_API_HOST": url},
            cwd=benchlib.REPO,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        if run.returncode != 0:
            raise RuntimeError(f"child for {size} failed:\n{run.stderr[-3000:]}")
        return json.loads(run.stdout.strip().splitlines()[-1])
    finally:
        children.stop(sandbox)
        children.procs = [entry for entry in children.procs if entry[1] is not sandbox]


def main() -> None:
    args = parse_args()
    if args.child:
        benchlib.django_setup({})
        child(args.child, args.sandbox_url)
        return

    benchlib.install_guards(args.max_seconds)
    database_url = os.environ.get("DATABASE_URL") or DATABASE_URL
    benchlib.ensure_database(database_url)
    mode, mode_env = benchlib.choose_mode(args.mode, database_url, {})
    env = {**os.environ, **mode_env, "DATABASE_URL": database_url}
    benchlib.django_setup(env)
    log(f"database {database_url.rsplit('/', 1)[-1]}, settings mode {mode}; migrating")
    benchlib.migrate()

    results = []
    with benchlib.Children("bench-backfill-") as children:
        for size in [int(s) for s in args.sizes.split(",")]:
            log(f"size {size}:")
            figures = measure(size, env, children)
            total_requests = figures["stripe_requests"]["total"]
            row = {
                "size": size,
                "seconds": rounded(figures["seconds"], 2),
                "sessions_per_second": rounded(figures["sessions_per_second"], 1),
                "stripe_requests": total_requests,
                "stripe_requests_by_endpoint": figures["stripe_requests"],
                "stripe_requests_per_session": rounded(total_requests / size, 4),
                "sql_queries_per_session": rounded(figures["sql_queries"] / size, 1),
                "rss_before_mb": rounded(figures["rss_before_mb"], 1),
                "peak_rss_mb": rounded(figures["peak_rss_mb"], 1),
                "rss_growth_mb": rounded(figures["peak_rss_mb"] - figures["rss_before_mb"], 1),
                "onboarded_now": figures["counts"]["onboarded_now"],
                "failed": figures["counts"]["failed"],
            }
            results.append(row)
            log(
                f"  {row['sessions_per_second']} sessions/s, {row['stripe_requests_per_session']} Stripe "
                f"requests/session ({total_requests} total), {row['sql_queries_per_session']} SQL "
                f"queries/session, peak RSS {row['peak_rss_mb']} MB "
                f"(before the backfill {row['rss_before_mb']} MB)"
            )

    figures = {"bench": "backfill", "mode": mode, "rate_limit": "lifted (rate=0)", "no_email": True}
    figures["sizes"] = results
    if len(results) >= 2:
        small, large = results[0], results[-1]
        figures["peak_rss_ratio_largest_to_smallest"] = rounded(
            large["peak_rss_mb"] / small["peak_rss_mb"], 3
        )
        log(
            f"peak memory at {large['size']} is {figures['peak_rss_ratio_largest_to_smallest']}x "
            f"the peak at {small['size']} (goal: within 1.2x)"
        )
    benchlib.emit_json(figures)


if __name__ == "__main__":
    main()
