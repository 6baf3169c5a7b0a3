"""Enqueue django-q2 tasks only once the current transaction has committed."""

from functools import partial

from django.db import transaction
from django_q.tasks import async_task


def enqueue_on_commit(func: str, *args: int) -> None:
    """Queue `func(*args)` after commit, so the worker never sees rows that do not exist yet."""
    transaction.on_commit(partial(async_task, func, *args))
