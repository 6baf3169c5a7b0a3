"""Settings, all read from the environment, with defaults that make a laptop work.

DJANGO_DEBUG defaults to off, so a server that forgets it fails closed; `make demo` and `make test`
turn it on. Production (DJANGO_DEBUG off) refuses to start without its secrets. Every variable is listed
in README.md's settings table; keep the two in step.
"""

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from onboarding_project.observability import logging_config, sentry_init

# Generic classes in annotations at runtime (ModelAdmin[Payment], QuerySet[Client]), for mypy.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_required(name: str, *, why: str) -> str:
    value = env_str(name)
    if not value:
        raise ImproperlyConfigured(f"{name} must be set when DJANGO_DEBUG is off ({why}).")
    return value


# --- Core -------------------------------------------------------------------------------------
DEBUG = env_bool("DJANGO_DEBUG", False)

if DEBUG:
    SECRET_KEY = env_str("DJANGO_SECRET_KEY") or "django-insecure-laptop-only-key-do-not-deploy"
else:
    SECRET_KEY = env_required("DJANGO_SECRET_KEY", why="it signs sessions and password links")

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = [SITE_URL] if SITE_URL.startswith("https://") else []

INSTALLED_APPS = [
    "onboarding_project.apps.OnboardingAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "djstripe",
    "anymail",
    "django_q",
    "stripe_events",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "crm",
    "provisioning",
]
if DEBUG:
    # The fake Stripe API and its commands (stripe_sandbox, sandbox_checkout, demo): laptops and
    # tests only, never in production.
    INSTALLED_APPS.append("stripe_sandbox")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Stripe's webhook POSTs skip everything below (staff sessions, auth, OTP, CSRF, axes).
    "onboarding_project.middleware.StripeWebhookFastPathMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "onboarding_project.middleware.StaffSessionIdleTimeoutMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a lockout raised by its backend into the lockout response.
    "axes.middleware.AxesMiddleware",
]

if not DEBUG:
    # Static files (the admin's) served by the app itself in production; runserver does it in DEBUG.
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "onboarding_project.urls"
WSGI_APPLICATION = "onboarding_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
# DATABASE_URL selects PostgreSQL (postgres://user@host:5432/name); the default is a SQLite file.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=60,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The demo runs a web server and a worker on one SQLite file: WAL lets readers run beside the
    # writer, IMMEDIATE transactions queue writers instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif not env_bool("DATABASE_JIT", False):
    # PostgreSQL's JIT compiles a query once its estimated cost passes jit_above_cost; the
    # dashboard's conditional aggregates over 100k+ onboardings cross it and spent ~570 of their
    # ~990 ms compiling (EXPLAIN ANALYZE, bench/admin_scale.py). Short OLTP queries never gain from
    # it, so the app's connections turn it off. DATABASE_JIT=1 keeps the server's setting (e.g.
    # behind a pooler that refuses the `options` startup parameter).
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c jit=off"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Welcome-email links to set a portal password expire after this many seconds (3 days).
PASSWORD_RESET_TIMEOUT = int(env_str("PASSWORD_RESET_TIMEOUT", str(3 * 24 * 3600)))

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

LOGIN_URL = "/portal/login/"

# --- Sign-in protection ------------------------------------------------------------------------
# django-axes counts failed logins (portal and admin alike, both go through authenticate()) per
# username and address; after AXES_FAILURE_LIMIT failures that pair is locked out (HTTP 429) for
# AXES_COOLOFF_MINUTES, and the right password does not help meanwhile. Staff unlock in the admin.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(env_str("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(env_str("AXES_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_FORM_FIELD = "username"
AXES_USERNAME_CALLABLE = "core.login_attempts.axes_username"  # cut to the 255 characters axes stores
# Behind a proxy, set AXES_IPWARE_PROXY_COUNT (e.g. 1) so the client's address is read from X-Forwarded-For.
if env_str("AXES_IPWARE_PROXY_COUNT"):
    AXES_IPWARE_PROXY_COUNT = int(env_str("AXES_IPWARE_PROXY_COUNT"))
    AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"]
# Staff two-factor (django-otp, TOTP): required for superusers and the Operations role when DEBUG is
# off (STAFF_OTP_REQUIRED=1 turns it on in DEBUG too). They enrol an authenticator app on first login.
STAFF_OTP_REQUIRED = env_bool("STAFF_OTP_REQUIRED", not DEBUG)
OTP_TOTP_ISSUER = env_str("OTP_TOTP_ISSUER", "Onboarding admin")
# The portal's "forgot password": at most this many requests per address and per IP an hour.
PORTAL_RESET_LIMIT_PER_EMAIL = int(env_str("PORTAL_RESET_LIMIT_PER_EMAIL", "3"))
PORTAL_RESET_LIMIT_PER_IP = int(env_str("PORTAL_RESET_LIMIT_PER_IP", "10"))
# Staff sessions end after this long without a request (4 h); clients keep SESSION_COOKIE_AGE (2 weeks).
STAFF_SESSION_IDLE_SECONDS = int(env_str("STAFF_SESSION_IDLE_SECONDS", str(4 * 3600)))

# --- Production hardening (kept on whenever DEBUG is off, so `check --deploy` is clean) -------
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(env_str("DJANGO_SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# --- Stripe (dj-stripe) ------------------------------------------------------------------------
STRIPE_LIVE_MODE = env_bool("STRIPE_LIVE_MODE", False)
STRIPE_TEST_SECRET_KEY = env_str("STRIPE_TEST_SECRET_KEY") or (
    "sk_test_offlineSandboxKeyForLaptopsOnly000000" if DEBUG else ""
)
STRIPE_LIVE_SECRET_KEY = env_str("STRIPE_LIVE_SECRET_KEY")
if not DEBUG:
    env_required(
        "STRIPE_LIVE_SECRET_KEY" if STRIPE_LIVE_MODE else "STRIPE_TEST_SECRET_KEY",
        why="the worker retrieves every webhook's objects from Stripe",
    )
# dj-stripe's own setting: point stripe-python at another Stripe-compatible server (the sandbox).
# Only defined when set, because dj-stripe warns (djstripe.W002) whenever it exists outside DEBUG.
if env_str("STRIPE_API_HOST"):
    STRIPE_API_HOST = env_str("STRIPE_API_HOST").rstrip("/")
STRIPE_API_VERSION = "2026-05-27.dahlia"
# Seconds before a Stripe API call gives up (stripe-python's default is 80 s, far too long
# for a worker that retries on its own).
STRIPE_API_TIMEOUT = float(env_str("STRIPE_API_TIMEOUT", "20"))
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
# Replay window: each endpoint's djstripe_tolerance (Stripe's 300 s unless changed), applied both
# ways: stripe-python rejects older signatures, stripe_events.views also rejects ones from the future.

# Webhook deliveries' bodies and headers (personal data) are emptied after this many days (daily).
WEBHOOK_RETENTION_DAYS = int(env_str("WEBHOOK_RETENTION_DAYS", "30"))

# --- Onboarding --------------------------------------------------------------------------------
ONBOARDING_CURRENCIES = [c.lower() for c in env_list("ONBOARDING_CURRENCIES", "usd,eur,gbp,jpy")]

# --- Email (Anymail) ---------------------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(BASE_DIR / "var" / "mail"))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Onboarding <onboarding@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Backends that never deliver anything: in production a welcome email "sent" through one of them is
# lost, so they are refused unless EMAIL_ALLOW_LOCAL_BACKEND=1 says it is meant (a staging box).
LOCAL_EMAIL_BACKENDS = {
    f"django.core.mail.backends.{name}.EmailBackend" for name in ("filebased", "console", "locmem", "dummy")
}
if not DEBUG and EMAIL_BACKEND in LOCAL_EMAIL_BACKENDS and not env_bool("EMAIL_ALLOW_LOCAL_BACKEND", False):
    raise ImproperlyConfigured(
        f"EMAIL_BACKEND is {EMAIL_BACKEND}, which delivers no email: set an Anymail backend (e.g. "
        "anymail.backends.postmark.EmailBackend), or EMAIL_ALLOW_LOCAL_BACKEND=1 if that is intended."
    )
# Every ANYMAIL_* variable becomes an Anymail setting: ANYMAIL_POSTMARK_SERVER_TOKEN=… sets
# ANYMAIL["POSTMARK_SERVER_TOKEN"], so any ESP is configured by environment alone.
ANYMAIL = {
    name.removeprefix("ANYMAIL_"): value for name, value in os.environ.items() if name.startswith("ANYMAIL_")
}
# Tracking webhooks (/anymail/<esp>/tracking/) report delivered, bounced, opened…; their only
# protection is HTTP basic auth with ANYMAIL_WEBHOOK_SECRET ("user:password"). Anymail accepts
# unauthenticated posts when it is unset (with a warning), and a forged bounce would hold an
# onboarding, so outside DEBUG the webhooks are only mounted when the secret is set (urls.py).
if ANYMAIL.get("WEBHOOK_SECRET") and ":" not in ANYMAIL["WEBHOOK_SECRET"]:
    raise ImproperlyConfigured("ANYMAIL_WEBHOOK_SECRET must be user:password (HTTP basic auth).")
EMAIL_TRACKING_WEBHOOKS = DEBUG or bool(ANYMAIL.get("WEBHOOK_SECRET"))

# --- Task queue (django-q2) --------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
Q_CLUSTER: dict[str, Any] = {
    "name": "onboarding",
    # Tasks mostly wait on Stripe's API or the email provider, so more workers than cores pay off.
    "workers": int(env_str("Q_WORKERS", "4")),
    # A task that runs longer than this is killed: Stripe calls time out at 20 s, emails at 30 s.
    # Work still "running" after it belongs to a dead worker and is taken over (crm.retry).
    "timeout": int(env_str("Q_TIMEOUT", "120")),
    # Must exceed timeout, or a task still running would be handed to a second worker.
    "retry": int(env_str("Q_RETRY", "180")),
    # django-q's own re-delivery (worker crashed or timed out). Business failures are retried by
    # our tasks with backoff (core/retry.py), so a poison task is not re-run more than this.
    "max_attempts": 3,
    # Successful results are not stored: our own status rows record outcomes, and the default
    # (250, pruned on every save under a lock) costs about 5x worker throughput. Failures are kept.
    "save_limit": -1,
    # Each worker picks one task at a time, so a slow Stripe call does not hold others back.
    "bulk": 1,
    "catch_up": False,
    "label": "Task queue",
}
if Q_CLUSTER["retry"] <= Q_CLUSTER["timeout"]:
    raise ImproperlyConfigured(
        "Q_RETRY must exceed Q_TIMEOUT, or a running task is handed to a second worker."
    )
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
    Q_CLUSTER["broker_class"] = "core.brokers.RedisBroker"  # django-q2's, plus a head of queue
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["broker_class"] = "core.brokers.OrmBroker"
    # How often the ORM broker polls for tasks; the default 0.2 s keeps webhook latency low.
    Q_CLUSTER["poll"] = 0.2

# --- Staff alerts ------------------------------------------------------------------------------
# Held onboardings, steps that gave up, disputes, churn and webhooks that gave up reach staff here,
# at most one message per kind per STAFF_ALERT_WINDOW seconds (crm.services.alerts).
STAFF_ALERT_EMAILS = env_list("STAFF_ALERT_EMAILS", "")
SLACK_WEBHOOK_URL = env_str("SLACK_WEBHOOK_URL")
STAFF_ALERT_WINDOW = int(env_str("STAFF_ALERT_WINDOW", "300"))

# Our own retries of work that failed on something outside the machine (Stripe, the email
# provider, the provisioning API): 30 s doubling to at most 1 h between attempts, for as many
# attempts as span RETRY_WINDOW_HOURS (31 over a day), then the step is left failed for staff.
# Drills and tests compress the delays; django-q's scheduler fires due retries every 30 s.
RETRY_BASE_DELAY_SECONDS = float(env_str("RETRY_BASE_DELAY_SECONDS", "30"))
RETRY_MAX_DELAY_SECONDS = float(env_str("RETRY_MAX_DELAY_SECONDS", "3600"))
RETRY_WINDOW_HOURS = float(env_str("RETRY_WINDOW_HOURS", "24"))
if not 0 < RETRY_BASE_DELAY_SECONDS <= RETRY_MAX_DELAY_SECONDS:
    raise ImproperlyConfigured(
        "RETRY_BASE_DELAY_SECONDS must be above 0 and at most RETRY_MAX_DELAY_SECONDS."
    )

# --- Provisioning ------------------------------------------------------------------------------
PROVISIONING_BACKEND = env_str("PROVISIONING_BACKEND", "provisioning.backends.LocalBackend")
# The HTTP backend (provisioning.backends.HttpBackend): the dashboard service's base URL, the shared
# secret that signs requests both ways, the request timeout, and how long a 202 waits for a callback.
PROVISIONING_URL = env_str("PROVISIONING_URL")
PROVISIONING_SECRET = env_str("PROVISIONING_SECRET")
PROVISIONING_TIMEOUT = float(env_str("PROVISIONING_TIMEOUT", "10"))
PROVISIONING_CALLBACK_TIMEOUT = int(env_str("PROVISIONING_CALLBACK_TIMEOUT", "900"))
if PROVISIONING_BACKEND.endswith(".HttpBackend") and not (PROVISIONING_URL and PROVISIONING_SECRET):
    raise ImproperlyConfigured(
        "The HTTP provisioning backend needs PROVISIONING_URL and PROVISIONING_SECRET."
    )

# --- Logging and errors -------------------------------------------------------------------------
# LOG_FORMAT=json: one JSON object per line, with the onboarding, event, job and task ids of the
# request or task that logged it (core.log_context). Lines carry ids, never emails or names.
LOG_FORMAT = env_str("LOG_FORMAT", "text").lower()
LOGGING = logging_config(log_format=LOG_FORMAT, level=env_str("LOG_LEVEL", "INFO"))
# SENTRY_DSN turns on error reporting through sentry-sdk, with personal data off.
SENTRY_DSN = env_str("SENTRY_DSN")
if SENTRY_DSN:
    sentry_init(
        dsn=SENTRY_DSN, environment=env_str("SENTRY_ENVIRONMENT", "development" if DEBUG else "production")
    )

# --- Operations --------------------------------------------------------------------------------
# /readyz/ answers 503 once the oldest queued task has waited longer than this (no worker running).
READINESS_MAX_QUEUE_AGE_SECONDS = int(env_str("READINESS_MAX_QUEUE_AGE_SECONDS", "300"))
