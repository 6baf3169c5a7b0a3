"""The durable record of a verified delivery: dj-stripe's trigger and our job, in one statement.

The ORM cost about a third of a webhook's CPU for these two rows (bench/profile_webhook.py:
two model saves, each compiling an INSERT and running pre_save for every field). Nothing hooks
these saves (no signals on either model; dj-stripe's WebhookEventTrigger has no save()), so the
view writes both rows with one raw `INSERT ... RETURNING` in a CTE: the same columns and values
the ORM writes (created/updated from the application's clock, dj-stripe's version, valid=True),
one round trip instead of two. The caller's transaction also queues the task (core/queue.py),
so trigger, job and task still commit or roll back together.
"""

import json
from typing import Any
from uuid import UUID

from django.db import connection
from django.utils import timezone
from djstripe.models import WebhookEndpoint, WebhookEventTrigger
from djstripe.models.webhooks import _get_version

from .models import StripeWebhookJob

TRIGGER_TABLE = WebhookEventTrigger._meta.db_table
JOB_TABLE = StripeWebhookJob._meta.db_table

STORE_SQL = f"""
WITH trigger AS (
    INSERT INTO {TRIGGER_TABLE} (remote_ip, headers, body, valid, processed, exception, traceback,
        djstripe_version, created, updated, stripe_trigger_account_id, webhook_endpoint_id)
    VALUES (%(remote_ip)s, %(headers)s::jsonb, %(body)s, true, false, '', '',
        %(version)s, %(now)s, %(now)s, %(account)s, %(endpoint)s)
    RETURNING id
)
INSERT INTO {JOB_TABLE} (trigger_id, event_id, event_type, status, attempts, last_error, created, updated)
SELECT id, %(event_id)s, %(event_type)s, %(status)s, 0, '', %(now)s, %(now)s FROM trigger
RETURNING trigger_id, id
"""  # noqa: S608 - table names from the models' _meta, values as parameters


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
    with connection.cursor() as cursor:
        cursor.execute(
            STORE_SQL,
            {
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
            },
        )
        trigger_id, job_id = cursor.fetchone()
    return trigger_id, job_id


ENDPOINT_SQL = (
    f"SELECT djstripe_id, id, secret, status, djstripe_tolerance, djstripe_owner_account_id "  # noqa: S608
    f"FROM {WebhookEndpoint._meta.db_table} WHERE djstripe_uuid = %s"
)


def endpoint_for_ingest(uuid: UUID) -> WebhookEndpoint | None:
    """What ingest reads of the endpoint, by its URL's uuid (one SELECT, no ORM query building).

    Only these columns: the whole row also holds Stripe's JSON (stripe_data, metadata), whose
    decoding cost about a sixth of a webhook's CPU.
    """
    # The column's own form of the value (a uuid on PostgreSQL, 32 hex characters on SQLite).
    value = WebhookEndpoint._meta.get_field("djstripe_uuid").get_db_prep_value(uuid, connection)
    with connection.cursor() as cursor:
        cursor.execute(ENDPOINT_SQL, [value])
        row = cursor.fetchone()
    if row is None:
        return None
    djstripe_id, stripe_id, secret, status, tolerance, account_id = row
    return WebhookEndpoint(
        djstripe_id=djstripe_id,
        id=stripe_id,
        secret=secret,
        status=status,
        djstripe_tolerance=tolerance,
        djstripe_owner_account_id=account_id,
    )
