"""Ids that every log line of the current request or task carries (onboarding, event, task).

A context variable, so each thread (gunicorn) and each worker process (django-q) has its own; the
logging filter below copies it onto every record, where the JSON formatter prints it.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

FIELDS = ("onboarding_id", "event_id", "job_id", "task_id", "task")

_context: ContextVar[dict[str, str] | None] = ContextVar("log_context", default=None)


def log_context_set(**ids: object) -> None:
    """Add ids to the current context (None values are ignored)."""
    current = dict(_context.get() or {})
    current.update({key: str(value) for key, value in ids.items() if value is not None})
    _context.set(current)


def log_context_clear() -> None:
    _context.set(None)


@contextmanager
def log_context(**ids: object) -> Iterator[None]:
    """Ids for the lines logged inside the block."""
    token = _context.set({**(_context.get() or {}), **{k: str(v) for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


class LogContextFilter(logging.Filter):
    """Puts the context's ids on each record (empty strings when unknown), for the formatters."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _context.get() or {}
        for field in FIELDS:
            if not hasattr(record, field):
                setattr(record, field, current.get(field, ""))
        return True
