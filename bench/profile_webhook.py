"""Where a webhook's CPU goes: signed deliveries through Django's WSGI handler, in-process, profiled.

    DATABASE_URL=postgres://... /work/main/.venv/bin/python bench/profile_webhook.py [--requests 400]

Uses the production settings (as bench/webhook_ingest.py does), the database of DATABASE_URL
(migrated), one registered endpoint and a real checkout.session.completed body. Measures the
process CPU time per delivery without a profiler (median of 5 batches), then runs the same deliveries
under cProfile and prints the cumulative milliseconds per delivery of the parts of the ingest
(middleware, endpoint lookup, signature check, JSON parsing, the trigger and job INSERTs, the
queued task). The rows it creates are deleted. The last line is one JSON object.
"""

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
import uuid

import benchlib
from benchlib import log, rounded

# (label, substring of "file:line(function)" in pstats) - cumulative time per delivery.
PARTS = [
    ("wsgi handler, total", "handlers/wsgi.py", "__call__"),
    ("middleware chain (everything around the view)", "handlers/base.py", "get_response"),
    ("view: StripeWebhookView.post", "stripe_events/views.py", "post"),
    ("ingest: webhook_ingest (one transaction)", "stripe_events/views.py", "webhook_ingest"),
    ("endpoint lookup (SELECT)", "django/shortcuts.py", "get_object_or_404"),
    ("endpoint lookup (SELECT, raw)", "stripe_events/ingest.py", "endpoint_for_ingest"),
    ("trigger built (headers, body, remote ip)", "stripe_events/views.py", "trigger_from_request"),
    ("signature check (dj-stripe/stripe-python)", "djstripe/models/webhooks.py", "verify_signature"),
    ("signature check (stripe-python)", "stripe/_webhook.py", "verify_header"),
    ("JSON parse of the body", "stripe_events/views.py", "parse_event"),
    ("trigger INSERT (ORM save)", "django/db/models/base.py", "save"),
    ("trigger + job INSERT (raw)", "stripe_events/ingest.py", "delivery_store"),
    ("trigger + job + task INSERT (one statement)", "stripe_events/ingest.py", "delivery_store_and_queue"),
    ("  task package (django-q async_task, not sent)", "core/queue.py", "task_package"),
    ("job create (ORM)", "stripe_events/webhook_jobs.py", "webhook_job_create"),
    ("task enqueue (django-q async_task)", "core/queue.py", "enqueue_transactionally"),
    ("  django-q signing + pickling", "django_q/signing.py", "dumps"),
    ("  django-q broker INSERT (OrmQ)", "django_q/brokers/orm.py", "enqueue"),
    ("close_old_connections (request signals)", "django/db/__init__.py", "close_old_connections"),
    ("database round trips (cursor.execute)", "psycopg/cursor.py", "execute"),
    ("logging", "logging/__init__.py", "_log"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--verbose", action="store_true", help="also print the top functions by own time")
    args = parser.parse_args()
    database_url = os.environ.get("DATABASE_URL") or benchlib.DEFAULT_DATABASE_URL
    mode, mode_env = benchlib.choose_mode("auto", database_url, {})
    benchlib.django_setup({**os.environ, **mode_env, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"})

    from django.core.wsgi import get_wsgi_application
    from django.db.models import Max
    from django_q.models import OrmQ
    from djstripe.models import WebhookEventTrigger
    from webhook_ingest import WebhookBodies, cleanup_rows, real_event

    from stripe_events.webhook_endpoints import webhook_endpoint_register

    endpoint, _ = webhook_endpoint_register(secret=benchlib.WEBHOOK_SECRET, base_url="http://127.0.0.1:80")
    path = endpoint.url.removeprefix("http://127.0.0.1:80")
    bodies = WebhookBodies(real_event(), benchlib.WEBHOOK_SECRET, uuid.uuid4().hex[:8])
    first_trigger = WebhookEventTrigger.objects.aggregate(m=Max("id"))["m"] or 0
    first_ormq = OrmQ.objects.aggregate(m=Max("id"))["m"] or 0
    app = get_wsgi_application()
    figures: dict = {"bench": "profile_webhook", "mode": mode, "requests": args.requests}
    try:
        for _ in range(20):  # warm-up: imports, connection, prepared caches
            assert benchlib.wsgi_post(app, path, *bodies.next()) == 200
        batch = max(1, args.requests // 5)
        per_request = []
        for _ in range(5):
            signed = [bodies.next() for _ in range(batch)]
            started = time.process_time()
            for body, signature in signed:
                assert benchlib.wsgi_post(app, path, body, signature) == 200
            per_request.append((time.process_time() - started) / batch * 1000)
        figures["cpu_ms_per_webhook"] = rounded(statistics.median(per_request), 3)
        figures["cpu_ms_batches"] = [rounded(x, 3) for x in per_request]
        log(f"CPU per webhook (no profiler, in-process): {figures['cpu_ms_per_webhook']} ms {per_request}")

        signed = [bodies.next() for _ in range(args.requests)]
        profiler = cProfile.Profile(time.process_time)  # CPU time: the database's waits are not ours
        profiler.enable()
        for body, signature in signed:
            benchlib.wsgi_post(app, path, body, signature)
        profiler.disable()
        stats = pstats.Stats(profiler)
        log(f"\nunder cProfile (CPU time), cumulative ms per webhook ({args.requests} deliveries):")
        parts = benchlib.cumulative_ms(stats, PARTS, args.requests)
        for label, ms in parts.items():
            log(f"  {label:<50} {ms:7.3f}")
        figures["profiled_ms_per_webhook"] = {label.strip(): rounded(ms, 3) for label, ms in parts.items()}
        if "--verbose" in sys.argv:
            stats.sort_stats("tottime").print_stats(30)
    finally:
        triggers, tasks = cleanup_rows(first_trigger, bodies.id_prefix, first_ormq)
        log(f"cleanup: {triggers} triggers, {tasks} tasks")
    benchlib.emit_json(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
