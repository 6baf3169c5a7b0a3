"""Bench-only settings: the app's own, plus the reference endpoints of bench/ingest_floor_urls.py.

bench/webhook_ingest.py starts gunicorn with DJANGO_SETTINGS_MODULE=ingest_floor_settings (and
bench/ on the Python path), so the real webhook, the trivial view and the reference endpoints are
served by one server in one run. Nothing in the app imports this.
"""

import os

import dj_database_url

from onboarding_project.settings import *  # noqa: F403 - the app's settings, unchanged

ROOT_URLCONF = "ingest_floor_urls"
# The reference write goes to its own database on the same server (same connection options as
# the app's), so PostgreSQL's per-database statistics of the app's database count only its own.
DATABASES["floor"] = dj_database_url.parse(  # noqa: F405
    os.environ["BENCH_FLOOR_DATABASE_URL"], conn_max_age=60, conn_health_checks=True
)
# The floor endpoints take the same middleware shortcut as the webhook (see FloorFastPathMiddleware).
MIDDLEWARE = list(MIDDLEWARE)  # noqa: F405
MIDDLEWARE.insert(
    MIDDLEWARE.index("onboarding_project.middleware.StripeWebhookFastPathMiddleware") + 1,
    "ingest_floor_urls.FloorFastPathMiddleware",
)
