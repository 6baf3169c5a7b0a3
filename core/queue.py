"""Enqueue django-q2 tasks so that a task exists if, and only if, the transaction commits."""

from functools import partial

from django.conf import settings
from django.db import transaction
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.tasks import async_task

from .brokers import HeadOfQueue, OrmBroker, PackageOnly


def enqueue_transactionally(func: str, *args: int, first: bool = False) -> None:
    """Queue `func(*args)` for the worker as part of the current transaction's outcome.

    With the ORM broker the queue is a table in the same database, so the task row is written in
    the transaction itself (django-q supports this): it commits or rolls back with the data, and
    the worker cannot see it before the commit. A Redis broker is outside the transaction, so the
    task is sent after the commit.

    `first`: work that continues something already under way (an onboarding's steps) goes to the
    head of the queue, ahead of new deliveries (core/brokers.py says why).
    """
    if "orm" in settings.Q_CLUSTER and transaction.get_connection().in_atomic_block:
        _enqueue(func, args, first)
    else:
        transaction.on_commit(partial(_enqueue, func, args, first))


def _enqueue(func: str, args: tuple[int, ...], first: bool) -> None:
    if first:
        async_task(func, *args, broker=HeadOfQueue(get_broker()))
    else:
        async_task(func, *args)


def orm_queue_in_default_database() -> bool:
    """Whether queued tasks are rows of the default database's django_q_ormq (our ORM broker)."""
    return (
        settings.Q_CLUSTER.get("orm") == "default"
        and settings.Q_CLUSTER.get("broker_class") == f"{OrmBroker.__module__}.{OrmBroker.__qualname__}"
        and not Conf.SYNC
    )


def task_package(func: str, *args: int) -> tuple[str, str]:
    """(queue name, signed package) of the task `func(*args)`, for a caller that writes the ORM
    broker's row itself (see OrmBroker._insert for the row); django-q2 builds and signs it."""
    capture = PackageOnly(Conf.CLUSTER_NAME)  # the list_key django-q2's brokers default to
    async_task(func, *args, broker=capture)
    if capture.package is None:
        raise RuntimeError("django-q2 did not hand the task to the broker")
    return capture.list_key, capture.package
