"""django-q2's ORM and Redis brokers, able to put a task at the head of the queue.

django-q2 queues first in, first out. During a burst (a launch, a promotion) that makes every
client wait for the whole burst: the follow-up steps of the first onboarding (its welcome email,
its workspace) queue behind every delivery that arrived while its webhook was processed, so the
first payer is onboarded last. Work that continues something already under way goes to the head
instead (core.queue.enqueue_transactionally(..., first=True)), so each onboarding finishes soon
after it starts and new deliveries wait their turn. django-q2 has no priorities (one list per
cluster), but takes a broker class (Q_CLUSTER["broker_class"]): these add `enqueue_first` and
`oldest_waiting` (for the readiness check) and keep everything else as django-q2 does it.
"""

from datetime import datetime, timedelta
from time import sleep

from django.db import connections
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.brokers.redis_broker import Redis
from django_q.conf import Conf
from django_q.models import OrmQ

# The ORM broker's `lock` is a task's visibility time: the enqueue time while it waits, the end of
# its lease once a worker holds it. A head-of-queue task is written as visible this much earlier,
# and the dequeue takes the lowest lock first: it goes before every task queued in the last hour,
# but never before older ones (a backlog of stale work is not starved for ever).
HEAD_START = timedelta(hours=1)
TABLE = OrmQ._meta.db_table
INSERT_SQL = f"INSERT INTO {TABLE} (key, payload, lock) VALUES (%s, %s, %s) RETURNING id"  # noqa: S608
DELETE_SQL = f"DELETE FROM {TABLE} WHERE id = %s"  # noqa: S608
# The lock returned is the one the task had (its queue position), read before the update.
CLAIM_SQL = f"""
WITH next AS (
    SELECT id, lock FROM {TABLE} WHERE key = %s AND lock < %s ORDER BY lock, id LIMIT %s
    FOR UPDATE SKIP LOCKED
)
UPDATE {TABLE} AS task SET lock = %s FROM next WHERE task.id = next.id
RETURNING task.id, task.payload, next.lock
"""  # noqa: S608


class OrmBroker(ORM):  # type: ignore[misc]  # django-q2 ships no type hints
    """The ORM broker, dequeuing the earliest-visible task first (not in the table's order)."""

    def enqueue(self, task: str) -> int:
        return self._insert(task, lock=timezone.now())

    def enqueue_first(self, task: str) -> int:
        return self._insert(task, lock=timezone.now() - HEAD_START)

    def _insert(self, task: str, *, lock: datetime) -> int:
        """The row django-q2's ORM.enqueue writes, with one raw INSERT: every webhook delivery
        queues a task in its request, and the ORM's create() was about a fifth of the view's CPU
        (bench/profile_webhook.py)."""
        self.get_connection()  # as django-q2 does: outside a transaction it drops stale connections
        connection = connections[Conf.ORM]
        # The column's own form of the time (SQLite keeps naive UTC text, as the ORM writes it).
        lock_value = OrmQ._meta.get_field("lock").get_db_prep_value(lock, connection)
        with connection.cursor() as cursor:
            cursor.execute(INSERT_SQL, [self.list_key, task, lock_value])
            return int(cursor.fetchone()[0])

    def dequeue(self) -> list[tuple[int, str]] | None:
        """As django-q2's ORM.dequeue, ordered (its own query has none): the earliest-visible tasks.

        On PostgreSQL one statement takes them (an UPDATE of the rows a SELECT ... FOR UPDATE SKIP
        LOCKED picked, RETURNING them): one round trip instead of a SELECT and an UPDATE per task,
        and two clusters never take the same task.
        """
        now = timezone.now()
        if connections[Conf.ORM].vendor == "postgresql":
            self.get_connection()  # as django-q2 does: outside a transaction it drops stale connections
            with connections[Conf.ORM].cursor() as cursor:
                lease_until = now + timedelta(seconds=Conf.RETRY)
                cursor.execute(CLAIM_SQL, [self.list_key, now, Conf.BULK, lease_until])
                claimed = sorted(cursor.fetchall(), key=lambda row: (row[2], row[0]))
            tasks = [(task_id, payload) for task_id, payload, _ in claimed]
        else:
            tasks = self._dequeue_orm(now)
        if not tasks:
            sleep(Conf.POLL)  # an empty queue: spare the CPU
            return None
        return tasks

    def _dequeue_orm(self, now: datetime) -> list[tuple[int, str]]:
        waiting = self.get_connection().filter(key=self.list_key, lock__lt=now)
        claimed = []
        for task in waiting.order_by("lock", "id")[: Conf.BULK]:
            # Another cluster may have been faster: only a lock still as read is ours.
            lease = self.get_connection().filter(id=task.id, lock=task.lock)
            if lease.update(lock=self.timeout(task)):
                claimed.append((task.pk, task.payload))
        return claimed

    def acknowledge(self, task_id: int) -> None:
        """django-q2 deletes a finished task's row (here with one raw DELETE, as often as tasks run)."""
        self.get_connection()  # as django-q2 does: outside a transaction it drops stale connections
        with connections[Conf.ORM].cursor() as cursor:
            cursor.execute(DELETE_SQL, [task_id])

    def oldest_waiting(self) -> list[bytes]:
        """The first-queued task not held by a worker (its lock is not in the future)."""
        waiting = self.get_connection().filter(key=self.list_key, lock__lte=timezone.now())
        return list(waiting.order_by("id").values_list("payload", flat=True)[:1])


class RedisBroker(Redis):  # type: ignore[misc]  # django-q2 ships no type hints
    """The Redis broker with a second list for the head of the queue, popped before the first:
    BLPOP on several lists takes from the first non-empty one, so each stays first in, first out."""

    @property
    def head_key(self) -> str:
        return f"{self.list_key}:first"

    def enqueue_first(self, task: str) -> int:
        return int(self.connection.rpush(self.head_key, task))

    def dequeue(self) -> list[tuple[None, bytes]] | None:
        task = self.connection.blpop([self.head_key, self.list_key], 1)
        return [(None, task[1])] if task else None

    def queue_size(self) -> int:
        return int(self.connection.llen(self.head_key)) + int(self.connection.llen(self.list_key))

    def delete_queue(self) -> int:
        return int(self.connection.delete(self.head_key, self.list_key))

    def purge_queue(self) -> None:
        self.connection.ltrim(self.head_key, 1, 0)
        self.connection.ltrim(self.list_key, 1, 0)

    def oldest_waiting(self) -> list[bytes]:
        """The first task of each list: one of them is the oldest waiting (health checks)."""
        return [row for key in (self.head_key, self.list_key) if (row := self.connection.lindex(key, 0))]


class HeadOfQueue:
    """What async_task(broker=...) needs of a broker, enqueuing at the head of the real one."""

    def __init__(self, broker: OrmBroker | RedisBroker):
        self.list_key = broker.list_key
        self.enqueue = broker.enqueue_first


class PackageOnly:
    """What async_task(broker=...) needs of a broker, keeping the signed task instead of sending it.

    For a caller that writes the queue row itself in a statement of its own (the webhook ingest
    writes trigger, job and task in one INSERT): django-q2 still builds and signs the package.
    """

    def __init__(self, list_key: str):
        self.list_key = list_key
        self.package: str | None = None

    def enqueue(self, task: str) -> str:
        self.package = task
        return "(written with the caller's rows)"  # async_task logs "Enqueued [<queue>] <this>"
