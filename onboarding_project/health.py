"""Health probes: `/healthz/` says the process answers (liveness); `/readyz/` says it can do its job
(readiness): the database answers and the worker is taking tasks off the queue."""

from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.signing import BadSignature, SignedPackage


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness probe for load balancers (and the trivial baseline of bench/webhook_ingest.py)."""
    return HttpResponse("ok", content_type="text/plain")


def oldest_queued_task_enqueued_at() -> datetime | None:
    """When the oldest task still waiting for a worker was queued (None: the queue is empty).

    django-q keeps no enqueue time beside the task, but each signed task package carries `started`
    (set by async_task); the broker (core/brokers.py) knows where its oldest waiting tasks are.
    """
    started = []
    for row in get_broker().oldest_waiting():  # core/brokers.py
        try:
            started.append(SignedPackage.loads(row)["started"])
        except (BadSignature, KeyError, TypeError):
            continue
    return min(started, default=None)


def readyz(request: HttpRequest) -> JsonResponse:
    """503 when the database is unreachable or the oldest queued task has waited longer than
    READINESS_MAX_QUEUE_AGE_SECONDS (no worker is running), 200 otherwise."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except DatabaseError as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
        return JsonResponse({"ready": False, "checks": checks}, status=503)
    try:
        enqueued_at = oldest_queued_task_enqueued_at()
    except Exception as exc:  # noqa: BLE001 - the broker (Redis) down is "not ready", never a 500
        checks["queue"] = f"unreachable: {type(exc).__name__}"
        return JsonResponse({"ready": False, "checks": checks}, status=503)
    age = (timezone.now() - enqueued_at).total_seconds() if enqueued_at else 0.0
    limit = settings.READINESS_MAX_QUEUE_AGE_SECONDS
    checks["queue"] = f"oldest task waiting {age:.0f} s (limit {limit} s)"
    ready = age <= limit
    return JsonResponse({"ready": ready, "checks": checks}, status=200 if ready else 503)
