"""Logging format (text or JSON, with the context's ids) and Sentry, configured from settings."""

import os

from core import log_context
from core.log_context import log_context_clear, log_context_set

# Tasks whose first argument is an onboarding id or a webhook job id (see crm.tasks).
ONBOARDING_TASK_PREFIXES = ("crm.tasks.welcome_email", "crm.tasks.workspace", "provisioning.tasks.")
JOB_TASK_PREFIXES = ("crm.tasks.webhook_job", "stripe_events.tasks.")


def logging_config(*, log_format: str, level: str) -> dict:
    """settings.LOGGING for LOG_FORMAT `text` (default) or `json` (one JSON object per line)."""
    fields = " ".join(
        f"%({name})s" for name in ("asctime", "levelname", "name", "message", *log_context.FIELDS)
    )
    formatters = {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": fields,
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "core.log_context.LogContextFilter"}},
        "formatters": {"main": formatters["json" if log_format == "json" else "text"]},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "main", "filters": ["context"]}
        },
        "root": {"handlers": ["console"], "level": level},
        # stripe-python logs every request at INFO; its errors still reach us as exceptions.
        "loggers": {
            "django.db.backends": {"level": "INFO"},
            "stripe": {"level": "WARNING"},
            # django-axes logs every login at INFO (with the username masked); lockouts are WARNING.
            "axes": {"level": "WARNING"},
        },
    }


def sentry_init(*, dsn: str, environment: str) -> None:
    """Error reports to Sentry, without personal data (no emails, names, cookies or bodies)."""
    import sentry_sdk
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        integrations=[DjangoIntegration()],
        send_default_pii=False,
        traces_sample_rate=float(os.environ.get("SENTRY_TRACES_SAMPLE_RATE", "0") or 0),
    )


def task_log_context(sender, func, task, **kwargs) -> None:
    """django-q's pre_execute: every line a task logs names the task and the onboarding or job."""
    log_context_clear()
    name = task.get("func") if isinstance(task.get("func"), str) else getattr(func, "__name__", "")
    first = (task.get("args") or [None])[0]
    log_context_set(
        task_id=task.get("id"),
        task=name,
        onboarding_id=first if name.startswith(ONBOARDING_TASK_PREFIXES) else None,
        job_id=first if name.startswith(JOB_TASK_PREFIXES) else None,
    )


def connect() -> None:
    from django_q.signals import pre_execute  # at ready(), not while settings load

    pre_execute.connect(task_log_context, dispatch_uid="onboarding_task_log_context")
