"""The durable record of a verified delivery: dj-stripe's trigger, our job and the queued task.

The ORM cost about a third of a webhook's CPU for the two rows (bench/profile_webhook.py: two
model saves, each compiling an INSERT and running pre_save for every field). Nothing hooks these
saves (no signals on either model; dj-stripe's WebhookEventTrigger has no save()), so they are
written with raw INSERTs in a CTE: the same columns and values the ORM writes (created/updated
from the application's clock, dj-stripe's version, valid=True).

On PostgreSQL with the ORM broker (the default) the task's row joins the same statement: one
INSERT of trigger, job and django-q2's queue row, atomic on its own, so the request makes two
round trips (the endpoint's SELECT, this INSERT) instead of five (SELECT, BEGIN, INSERT, INSERT,
COMMIT). The task names the job, so the job's id is taken from its sequence by the endpoint's
SELECT (`endpoint_for_ingest`); django-q2 builds and signs the task (core.queue.task_package).
A rejected delivery leaves a gap in the job ids, nothing else. Elsewhere (SQLite, the Redis
broker) the two rows are written in a transaction that also queues the task (`delivery_record`
chooses).
"""

import json
from typing import Any, NamedTuple
from uuid import UUID

from django.db import connection, transaction
from django.utils import timezone
from django_q.models import OrmQ
from djstripe.models import WebhookEndpoint, WebhookEventTrigger
from djstripe.models.webhooks import _get_version

from core.queue import enqueue_transactionally, orm_queue_in_default_database, task_package

from .models import StripeWebhookJob

TRIGGER_TABLE = WebhookEventTrigger._meta.db_table
JOB_TABLE = StripeWebhookJob._meta.db_table
QUEUE_TABLE = OrmQ._meta.db_table

# The valid trigger, as the ORM writes it; each statement below starts with it.
TRIGGER_CTE = f"""trigger AS (
    INSERT INTO {TRIGGER_TABLE} (remote_ip, headers, body, valid, processed, exception, traceback,
        djstripe_version, created, updated, stripe_trigger_account_id, webhook_endpoint_id)
    VALUES (%(remote_ip)s, %(headers)s::jsonb, %(body)s, true, false, '', '',
        %(version)s, %(now)s, %(now)s, %(account)s, %(endpoint)s)
    RETURNING id
)"""  # noqa: S608 - table names from the models' _meta, values as parameters
JOB_COLUMNS = "trigger_id, event_id, event_type, status, attempts, last_error, created, updated"
JOB_VALUES = "id, %(event_id)s, %(event_type)s, %(status)s, 0, '', %(now)s, %(now)s"

# Trigger and job; the caller's transaction queues the task.
STORE_SQL = f"""
WITH {TRIGGER_CTE}
INSERT INTO {JOB_TABLE} ({JOB_COLUMNS}) SELECT {JOB_VALUES} FROM trigger
RETURNING trigger_id, id
"""  # noqa: S608 - as above

# Trigger, job (its id reserved by the endpoint's SELECT) and the task's queue row, as OrmBroker
# writes it (key, signed payload, lock = the time it becomes visible: now).
STORE_AND_QUEUE_SQL = f"""
WITH {TRIGGER_CTE}, job AS (
    INSERT INTO {JOB_TABLE} (id, {JOB_COLUMNS}) SELECT %(job_id)s, {JOB_VALUES} FROM trigger
    RETURNING trigger_id, id
), task AS (
    INSERT INTO {QUEUE_TABLE} (key, payload, lock) VALUES (%(queue)s, %(payload)s, %(now)s)
    RETURNING id
)
SELECT job.trigger_id, job.id FROM job, task
"""  # noqa: S608 - as above


def _row_values(
    *, remote_ip: str, headers: dict[str, str], body: str, endpoint: WebhookEndpoint, event: dict[str, Any]
) -> dict[str, Any]:
    """The trigger's and job's values, one clock reading for both (as one ORM save would take)."""
    return {
        "remote_ip": remote_ip,
        "headers": json.dumps(headers),
        "body": body,
        "version": _get_version(),
        "now": timezone.now(),
        "account": endpoint.djstripe_owner_account_id,
        "endpoint": endpoint.id,
        "event_id": event["id"],
        "event_type": event["type"],
        "status": StripeWebhookJob.Status.QUEUED.value,
    }


def delivery_record(
    *,
    remote_ip: str,
    headers: dict[str, str],
    body: str,
    endpoint: WebhookEndpoint,
    event: dict[str, Any],
    job_id: int | None,
    task: str,
) -> int:
    """Store a verified delivery and queue `task(job id)`, all or nothing; the trigger's id.

    `job_id` reserved by `endpoint_for_ingest`: one statement (PostgreSQL, ORM broker); None: the
    two rows in a transaction that also queues the task (SQLite; Redis sends it after the commit).
    """
    values = {"remote_ip": remote_ip, "headers": headers, "body": body, "endpoint": endpoint, "event": event}
    if job_id is not None:
        trigger_id, _ = delivery_store_and_queue(**values, job_id=job_id, task=task)
        return trigger_id
    with transaction.atomic():
        trigger_id, stored_job_id = delivery_store(**values)
        enqueue_transactionally(task, stored_job_id)
    return trigger_id


def delivery_store_and_queue(
    *,
    remote_ip: str,
    headers: dict[str, str],
    body: str,
    endpoint: WebhookEndpoint,
    event: dict[str, Any],
    job_id: int,
    task: str,
) -> tuple[int, int]:
    """One statement (PostgreSQL, ORM broker): the valid trigger, its job `job_id` (reserved by
    `endpoint_for_ingest`) and the queued task `task(job_id)`; (trigger id, job id)."""
    queue, payload = task_package(task, job_id)
    values = _row_values(remote_ip=remote_ip, headers=headers, body=body, endpoint=endpoint, event=event)
    with connection.cursor() as cursor:
        cursor.execute(STORE_AND_QUEUE_SQL, {**values, "job_id": job_id, "queue": queue, "payload": payload})
        trigger_id, stored_job_id = cursor.fetchone()
    return trigger_id, stored_job_id


def delivery_store(
    *, remote_ip: str, headers: dict[str, str], body: str, endpoint: WebhookEndpoint, event: dict[str, Any]
) -> tuple[int, int]:
    """Insert the valid trigger and its queued job; (trigger id, job id). Call inside a transaction."""
    if connection.vendor != "postgresql":
        # The laptop demo's SQLite has no data-modifying CTE: the two rows through the ORM.
        trigger = WebhookEventTrigger.objects.create(
            remote_ip=remote_ip,
            headers=headers,
            body=body,
            valid=True,
            webhook_endpoint=endpoint,
            stripe_trigger_account_id=endpoint.djstripe_owner_account_id,
        )
        job = StripeWebhookJob.objects.create(trigger=trigger, event_id=event["id"], event_type=event["type"])
        return trigger.id, job.id
    values = _row_values(remote_ip=remote_ip, headers=headers, body=body, endpoint=endpoint, event=event)
    with connection.cursor() as cursor:
        cursor.execute(STORE_SQL, values)
        trigger_id, job_id = cursor.fetchone()
    return trigger_id, job_id


ENDPOINT_COLUMNS = "djstripe_id, id, secret, status, djstripe_tolerance, djstripe_owner_account_id"
ENDPOINT_SQL = f"SELECT {ENDPOINT_COLUMNS} FROM {WebhookEndpoint._meta.db_table} WHERE djstripe_uuid = %s"  # noqa: S608
ENDPOINT_AND_JOB_ID_SQL = (
    f"SELECT {ENDPOINT_COLUMNS}, nextval(pg_get_serial_sequence('{JOB_TABLE}', 'id')) "  # noqa: S608
    f"FROM {WebhookEndpoint._meta.db_table} WHERE djstripe_uuid = %s"
)


class IngestEndpoint(NamedTuple):
    endpoint: WebhookEndpoint
    job_id: int | None  # reserved for this delivery's job when it is stored in one statement


def endpoint_for_ingest(uuid: UUID) -> IngestEndpoint | None:
    """What ingest reads of the endpoint, by its URL's uuid (one SELECT, no ORM query building),
    and where trigger, job and task are stored in one statement, the job's id from its sequence.

    Only these columns: the whole row also holds Stripe's JSON (stripe_data, metadata), whose
    decoding cost about a sixth of a webhook's CPU.
    """
    one_statement = connection.vendor == "postgresql" and orm_queue_in_default_database()
    # The column's own form of the value (a uuid on PostgreSQL, 32 hex characters on SQLite).
    value = WebhookEndpoint._meta.get_field("djstripe_uuid").get_db_prep_value(uuid, connection)
    with connection.cursor() as cursor:
        cursor.execute(ENDPOINT_AND_JOB_ID_SQL if one_statement else ENDPOINT_SQL, [value])
        row = cursor.fetchone()
    if row is None:
        return None
    djstripe_id, stripe_id, secret, status, tolerance, account_id, *job_id = row
    endpoint = WebhookEndpoint(
        djstripe_id=djstripe_id,
        id=stripe_id,
        secret=secret,
        status=status,
        djstripe_tolerance=tolerance,
        djstripe_owner_account_id=account_id,
    )
    return IngestEndpoint(endpoint, job_id[0] if job_id else None)
