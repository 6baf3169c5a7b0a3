"""Where an onboarding's worker CPU goes: N paid checkouts worked in-process, profiled by part.

    DATABASE_URL=postgres://... /work/main/.venv/bin/python bench/profile_onboarding.py [--n 200]

Uses the production settings (like the other benches), its own database `onboarding_profile`
unless DATABASE_URL is given (migrated), the Stripe sandbox in this process (its HTTP API on a
thread; only the main thread's CPU is counted, so the sandbox's own work is not), one endpoint and
the service "website-care". The checkouts' events are delivered signed through Django's WSGI
handler (the real view, as gunicorn would), then the queued tasks are taken from django-q's broker
and run as django-q's worker runs them (webhook job, welcome email, workspace step, settle), round
after round until the queue is empty. Measures the main thread's CPU per onboarding without a
profiler, then again under cProfile, and prints the cumulative CPU milliseconds per onboarding of
the parts (the webhook job and inside it the mirror sync and the onboarding service, the email,
the workspace, the settle task, SQL round trips). `--verbose` also prints the top functions by
own time. The last line is one JSON object.
"""

import argparse
import cProfile
import os
import pstats
import re
import sys
import time
import traceback
import uuid

import benchlib
from benchlib import log, rounded

DEFAULT_DATABASE_URL = "postgres://root@127.0.0.1:5432/onboarding_profile"
SERVICE = ("website-care", "Website Care Plan")

# (label, substring of the file name, function name): cumulative CPU per onboarding.
PARTS = [
    ("tasks, total", "bench/profile_onboarding.py", "run_task"),
    (
        "webhook job (stripe_events.tasks.webhook_job_process)",
        "stripe_events/tasks.py",
        "webhook_job_process",
    ),
    ("  dj-stripe Event.process", "djstripe/models/core.py", "process"),
    ("    session mirror (retrieve + sync)", "stripe_events/session_sync.py", "checkout_session_sync"),
    ("      Stripe HTTP request (stripe-python)", "stripe/_http_client.py", "request_with_retries"),
    ("      dj-stripe sync_from_stripe_data", "djstripe/models/base.py", "sync_from_stripe_data"),
    ("      owner account lookups", "djstripe/models/base.py", "_find_owner_account"),
    ("    onboarding service", "crm/services/onboarding.py", "onboarding_sync_from_session"),
    ("      client upsert", "crm/services/onboarding.py", "client_upsert"),
    ("      payment + ledger", "crm/services/onboarding.py", "payment_record"),
    ("        client value recompute", "crm/services/ledger.py", "client_value_recompute"),
    ("        lifecycle evaluate", "crm/services/lifecycle.py", "client_lifecycle_evaluate"),
    ("      activity rows", "crm/services/activity.py", "activity_record"),
    ("welcome email (crm.tasks.welcome_email_run)", "crm/tasks.py", "welcome_email_run"),
    ("  template render", "django/template/loader.py", "render_to_string"),
    ("  send (EmailMessage.send)", "django/core/mail/message.py", "send"),
    ("workspace step (crm.tasks.workspace_step_run)", "crm/tasks.py", "workspace_step_run"),
    ("settle (crm.tasks.money_movement_settle)", "crm/tasks.py", "money_movement_settle"),
    ("onboarding finish", "crm/services/onboarding.py", "onboarding_finish_if_done"),
    ("task enqueue (django-q async_task)", "core/queue.py", "enqueue_transactionally"),
    ("broker dequeue + ack (ORM)", "django_q/brokers/orm.py", "dequeue"),
    ("django-q SignedPackage.loads", "django_q/signing.py", "loads"),
    ("database round trips (cursor.execute)", "psycopg/cursor.py", "execute"),
    ("ORM: SQL compile", "django/db/models/sql/compiler.py", "as_sql"),
    ("model __init__", "django/db/models/base.py", "__init__"),
    ("logging", "logging/__init__.py", "_log"),
]


def run_task(func, args, kwargs):
    """One task as django-q's worker runs it (the worker calls the function, nothing around it)."""
    return func(*args, **kwargs)


class SqlCounter:
    """Counts statements per task and per statement shape (literals removed), as they run."""

    def __init__(self):
        self.task = "broker"
        self.per_task: dict = {}
        self.shapes: dict = {}
        self.savepoints: dict = {}
        self.postgres_cpu: dict = {}

    def __call__(self, execute, sql, params, many, context):
        shape = re.sub(r"'[^']*'|\b\d+\b|\bs\d+_x\d+\b", "?", " ".join(sql.split()))[:150]
        self.per_task[self.task] = self.per_task.get(self.task, 0) + 1
        key = (self.task, shape)
        self.shapes[key] = self.shapes.get(key, 0) + 1
        if shape.startswith("SAVEPOINT"):
            caller = self.atomic_caller()
            self.savepoints[caller] = self.savepoints.get(caller, 0) + 1
        return execute(sql, params, many, context)

    @staticmethod
    def atomic_caller() -> str:
        """The code that opened the atomic block (the frame that called Atomic.__enter__'s caller)."""
        frames = traceback.extract_stack()
        for index, frame in enumerate(frames):
            if frame.filename.endswith("django/db/transaction.py") and frame.name == "__enter__":
                outer = frames[index - 1]
                if outer.filename.endswith("contextlib.py") or outer.name == "inner":
                    outer = frames[index - 2]
                return f"{outer.filename.split('site-packages/')[-1].split('/work/main/')[-1]}:{outer.name}"
        return "?"


def work_queue(sql: SqlCounter | None = None) -> tuple[int, dict]:
    """Run every queued task, round after round, as the worker would; returns (tasks, per func)."""
    from django.utils.module_loading import import_string
    from django_q.brokers import get_broker
    from django_q.signing import SignedPackage

    broker = get_broker()
    ran, per_func = 0, {}
    while True:
        batch = broker.dequeue()
        if not batch:
            return ran, per_func
        for ack_id, payload in batch:
            task = SignedPackage.loads(payload)
            name = task["func"]
            func = import_string(name) if isinstance(name, str) else name
            if sql:
                sql.task = str(name).rsplit(".", 1)[-1]
                backend_before = postgres_backend_cpu()
            run_task(func, task.get("args", ()), task.get("kwargs", {}))
            if sql:
                if backend_before is not None:
                    spent = (postgres_backend_cpu() or 0.0) - backend_before
                    sql.postgres_cpu[sql.task] = sql.postgres_cpu.get(sql.task, 0.0) + spent
                sql.task = "broker"
            broker.acknowledge(ack_id)
            ran += 1
            per_func[str(name)] = per_func.get(str(name), 0) + 1


def package_of(filename: str) -> str:
    """site-packages/<pkg>/… -> pkg (django split by db/other), the project's apps, or the stdlib."""
    if "site-packages/" in filename:
        parts = filename.split("site-packages/", 1)[1].split("/")
        if parts[0] == "django" and len(parts) > 1:
            return "django/db" if parts[1] == "db" else "django (other)"
        return parts[0]
    for app in ("crm", "stripe_events", "provisioning", "core", "bench", "stripe_sandbox"):
        if f"/{app}/" in filename:
            return f"project: {app}"
    return "python stdlib / builtins"


def postgres_backend_cpu() -> float | None:
    """CPU seconds used so far by this connection's PostgreSQL backend (same machine), or None."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:  # another machine, or not allowed
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def deliver_checkouts(sandbox, app, path: str, n: int, run: str) -> list[str]:
    """N paid checkouts in the sandbox, their events POSTed signed to the view; the session ids."""
    import json

    from stripe_sandbox.signing import sign_payload

    sessions = []
    for i in range(n):
        result = sandbox.create_checkout(
            email=f"profile-{run}-{i}@example.com",
            name=f"Profile {i}",
            service_id=SERVICE[0],
            amount=49_900,
            currency="usd",
            deliver=False,
        )
        for event_id in result["events"]:
            body = json.dumps(sandbox.store.get("event", event_id))
            status = benchlib.wsgi_post(app, path, body, sign_payload(body, benchlib.WEBHOOK_SECRET))
            assert status == 200, status
        sessions.append(result["session"]["id"])
    return sessions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="checkouts per measured batch (200)")
    parser.add_argument("--verbose", action="store_true", help="also print the top functions by own time")
    parser.add_argument("--queries", action="store_true", help="also print the SQL statements per task")
    parser.add_argument("--callees", help="also print what the functions matching this regex call")
    parser.add_argument("--packages", action="store_true", help="also print own CPU time by package")
    args = parser.parse_args()
    database_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    benchlib.ensure_database(database_url)
    mode, mode_env = benchlib.choose_mode("auto", database_url, {})

    from stripe_sandbox.server import StripeSandbox

    sandbox = StripeSandbox()
    sandbox_url = sandbox.start()
    benchlib.django_setup(
        {
            **os.environ,
            **mode_env,
            "DATABASE_URL": database_url,
            "STRIPE_API_HOST": sandbox_url,
            "LOG_LEVEL": "WARNING",
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        }
    )
    log(f"settings: {mode}; migrate: {benchlib.migrate():.1f} s")

    from django.core.wsgi import get_wsgi_application

    from crm.models import Onboarding
    from stripe_events.webhook_endpoints import webhook_endpoint_register

    benchlib.bench_database_ready([SERVICE])
    endpoint, _ = webhook_endpoint_register(secret=benchlib.WEBHOOK_SECRET, base_url="http://127.0.0.1:80")
    path = endpoint.url.removeprefix("http://127.0.0.1:80")
    app = get_wsgi_application()
    run = uuid.uuid4().hex[:8]
    figures: dict = {"bench": "profile_onboarding", "mode": mode, "n": args.n}

    def batch(label: str, n: int, profiler: cProfile.Profile | None = None) -> float:
        sessions = deliver_checkouts(sandbox, app, path, n, f"{run}-{label}")
        backend = postgres_backend_cpu()
        started = time.thread_time()
        if profiler:
            profiler.enable()
        tasks, per_func = work_queue()
        if profiler:
            profiler.disable()
        cpu_ms = (time.thread_time() - started) * 1000 / n
        if backend is not None and not profiler:
            pg_ms = (postgres_backend_cpu() - backend) * 1000 / n
            figures["postgres_cpu_ms_per_onboarding"] = rounded(pg_ms, 2)
            log(f"{label}: PostgreSQL backend CPU {pg_ms:.1f} ms per onboarding")
        onboarded = Onboarding.objects.filter(
            checkout_session_id__in=sessions, status=Onboarding.Status.ONBOARDED
        ).count()
        assert onboarded == n, f"{label}: {onboarded}/{n} onboarded"
        log(f"{label}: {n} onboarded, {tasks} tasks {per_func}; worker CPU {cpu_ms:.1f} ms per onboarding")
        figures.setdefault("tasks_per_onboarding", rounded(tasks / n, 2))
        return cpu_ms

    batch("warm-up", 20)
    figures["cpu_ms_per_onboarding"] = rounded(batch("measured", args.n), 2)
    profiler = cProfile.Profile(time.thread_time)  # this thread's CPU: not the sandbox's, not the waits
    batch("profiled", args.n, profiler)
    stats = pstats.Stats(profiler)
    log(f"\nunder cProfile (this thread's CPU), cumulative ms per onboarding ({args.n} onboardings):")
    parts = benchlib.cumulative_ms(stats, PARTS, args.n)
    for label, ms in parts.items():
        log(f"  {label:<60} {ms:8.2f}")
    figures["profiled_ms_per_onboarding"] = {label.strip(): rounded(ms, 2) for label, ms in parts.items()}
    if args.queries:
        from django.db import connection

        counter = SqlCounter()
        deliver_checkouts(sandbox, app, path, args.n, f"{run}-sql")
        with connection.execute_wrapper(counter):
            work_queue(counter)
        figures["sql_per_onboarding"] = {t: rounded(c / args.n, 1) for t, c in counter.per_task.items()}
        log(f"\nSQL statements per onboarding by task: {figures['sql_per_onboarding']}")
        pg_ms = {task: rounded(1000 * spent / args.n, 2) for task, spent in counter.postgres_cpu.items()}
        figures["postgres_cpu_ms_per_onboarding_by_task"] = pg_ms
        log(f"PostgreSQL backend CPU ms per onboarding by task (incl. its SQL): {pg_ms}")
        for (task, shape), count in sorted(counter.shapes.items(), key=lambda kv: -kv[1])[:70]:
            log(f"  {count / args.n:5.2f} {task:<24} {shape}")
        log("savepoints per onboarding by the code that opened them:")
        for caller, count in sorted(counter.savepoints.items(), key=lambda kv: -kv[1]):
            log(f"  {count / args.n:5.2f} {caller}")
    if args.verbose:
        stats.sort_stats("tottime").print_stats(40)
        stats.sort_stats("cumulative").print_stats(80)
    if args.packages:
        own: dict[str, float] = {}
        for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
            package = package_of(filename)
            own[package] = own.get(package, 0.0) + tottime
        log("own CPU time by package, ms per onboarding (under cProfile):")
        for package, seconds in sorted(own.items(), key=lambda kv: -kv[1]):
            log(f"  {1000 * seconds / args.n:8.2f}  {package}")
    if args.callees:
        stats.sort_stats("cumulative").print_callees(args.callees)
    sandbox.stop()
    benchlib.emit_json(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
