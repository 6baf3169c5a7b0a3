"""Backfill throughput and memory: `onboarding_backfill` over 1,000 and 10,000 Stripe sessions.

    /work/venv/bin/python bench/backfill.py [--sizes 1000,10000] [--mode auto|prod|debug]
        [--baseline GIT_REF] [--sql-profile] [--cprofile FILE]

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

`--baseline REF` also runs REF's code (`git archive REF`, unpacked in a temporary directory, with the
same interpreter and database) on the same seeded sandbox right before this code, for each size, so
the two are measured on the same machine in the same minutes; the JSON then has `baseline_sizes`
and, per size and for the second size at the top level, `sessions_per_second_ratio` (this /
baseline). `--sql-profile` adds the most frequent statements (their first 100 characters) to the
output, to see which ones repeat per session.

The last line is one JSON object with all figures.
"""

import argparse
import cProfile
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

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
    parser.add_argument("--baseline", help="git ref whose code is measured too, in the same run")
    parser.add_argument("--sql-profile", action="store_true", help="print the most repeated statements")
    parser.add_argument("--cprofile", help="write this code's cProfile stats to this file (slower)")
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
    profile = os.environ.get("BENCH_SQL_PROFILE") == "1"
    shapes: Counter = Counter()
    shape_seconds: Counter = Counter()

    def count(execute, sql, params, many, context):
        nonlocal queries
        queries += 1
        if not profile:
            return execute(sql, params, many, context)
        shape = re.sub(r'"s\d+_x\d+"', '"s…"', sql)[:100]  # savepoint names vary
        shapes[shape] += 1
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            shape_seconds[shape] += time.perf_counter() - started

    rss_before = maxrss_mb()
    started = time.perf_counter()
    profiler = cProfile.Profile() if os.environ.get("BENCH_CPROFILE") else None
    with connection.execute_wrapper(count):
        if profiler is not None:
            profiler.enable()
        summary = onboarding_backfill(since=SINCE, until=UNTIL, no_email=True, rate=0)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(os.environ["BENCH_CPROFILE"])
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
                "sql_profile": [(sql, n, shape_seconds[sql]) for sql, n in shapes.most_common(40)],
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


def child_run(size: int, url: str, env: dict, repo: Path) -> dict:
    """One backfill of the seeded sandbox by the code in `repo`, in a fresh process."""
    run = subprocess.run(
        [sys.executable, str(repo / "bench" / "backfill.py"), "--child", str(size), "--sandbox-url", url],
        env={**env, "STRIPE_API_HOST": url},
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if run.returncode != 0:
        raise RuntimeError(f"child for {size} ({repo}) failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def measure(
    size: int, env: dict, children: benchlib.Children, baseline_repo: Path | None
) -> tuple[dict, dict | None]:
    """(this code's figures, the baseline's or None), both from one sandbox seeded once."""
    port = benchlib.free_port()
    sandbox = children.sandbox(f"sandbox-{size}", port, env)
    url = f"http://127.0.0.1:{port}"
    try:
        benchlib.wait_http(f"{url}/_sandbox/health", children)
        started = time.perf_counter()
        seed(url, size)
        log(f"  seeded {size} sessions in {time.perf_counter() - started:.1f} s")
        # Each child starts by emptying the tables, so both backfill the same history from nothing.
        baseline = child_run(size, url, env, baseline_repo) if baseline_repo else None
        return child_run(size, url, env, benchlib.REPO), baseline
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

    if args.sql_profile:
        env["BENCH_SQL_PROFILE"] = "1"
    if args.cprofile:
        env["BENCH_CPROFILE"] = os.path.abspath(args.cprofile)
    baseline_dir = tempfile.TemporaryDirectory(prefix="bench-backfill-baseline-")
    baseline_repo = None
    if args.baseline:
        baseline_repo = baseline_unpack(args.baseline, baseline_dir.name)
        log(f"baseline {args.baseline} unpacked in {baseline_repo}")

    results, baselines = [], []
    with baseline_dir, benchlib.Children("bench-backfill-") as children:
        for size in [int(s) for s in args.sizes.split(",")]:
            log(f"size {size}:")
            figures, baseline = measure(size, env, children, baseline_repo)
            row = size_row(size, figures, "this code", args.sql_profile)
            if baseline is not None:
                base_row = size_row(size, baseline, f"baseline {args.baseline}", args.sql_profile)
                baselines.append(base_row)
                row["sessions_per_second_ratio"] = rounded(
                    figures["sessions_per_second"] / baseline["sessions_per_second"], 2
                )
                log(f"  sessions/s this / baseline: {row['sessions_per_second_ratio']}")
            results.append(row)

    figures = {"bench": "backfill", "mode": mode, "rate_limit": "lifted (rate=0)", "no_email": True}
    figures["sizes"] = results
    if baselines:
        figures["baseline"] = args.baseline
        figures["baseline_sizes"] = baselines
        at = results[1] if len(results) > 1 else results[0]
        figures["sessions_per_second_ratio"] = at["sessions_per_second_ratio"]
        figures["sql_queries_per_session"] = {
            "this": at["sql_queries_per_session"],
            "baseline": (baselines[1] if len(baselines) > 1 else baselines[0])["sql_queries_per_session"],
        }
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


def baseline_unpack(ref: str, directory: str) -> Path:
    """REF's tree (`git archive`) in `directory`; the same venv and database serve it."""
    target = Path(directory) / "repo"
    target.mkdir()
    archive = subprocess.run(["git", "archive", ref], cwd=benchlib.REPO, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def size_row(size: int, figures: dict, label: str, sql_profile: bool) -> dict:
    """The figures of one child, rounded, logged under `label`."""
    if sql_profile:
        log(f"  {label}: statements by count ({size} sessions)")
        for sql, count, seconds in figures.get("sql_profile") or []:
            log(f"    {count / size:7.2f}/session {1000 * seconds / size:6.2f} ms/session  {sql}")
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
    log(
        f"  {label}: {row['sessions_per_second']} sessions/s, {row['stripe_requests_per_session']} Stripe "
        f"requests/session ({total_requests} total), {row['sql_queries_per_session']} SQL "
        f"queries/session, peak RSS {row['peak_rss_mb']} MB "
        f"(before the backfill {row['rss_before_mb']} MB)"
    )
    return row


if __name__ == "__main__":
    main()
