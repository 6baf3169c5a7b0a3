"""Bench-only reference endpoints: what any signed-webhook ingest must pay on this machine.

    /bench/floor/verify/  check the Stripe signature (stripe-python, 300 s tolerance) and parse
                          the JSON body; store nothing.
    /bench/floor/write/   the same, then the smallest durable record: one INSERT of the delivery
                          into a table the bench creates (FLOOR_TABLE, in its own database on
                          the same PostgreSQL), in autocommit: one round trip, one commit.
                          No endpoint lookup, no dj-stripe model, no queue, no ORM.

They bound the real webhook view from below: the ratio the bench reports for /floor/write/ is the
best any ingest that verifies and durably stores the delivery can reach against the trivial
view here. Every other URL is the app's own.
"""

import json

import stripe
from benchlib import FLOOR_TABLE, WEBHOOK_SECRET
from django.db import connections
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from onboarding_project.middleware import StripeWebhookFastPathMiddleware

TOLERANCE = 300


def verified_event(request: HttpRequest) -> dict | None:
    """The delivery's event if its signature is good and its body is a JSON object, else None."""
    try:
        payload = request.body.decode()
        stripe.WebhookSignature.verify_header(
            payload, request.headers.get("stripe-signature", ""), WEBHOOK_SECRET, TOLERANCE
        )
        event = json.loads(payload)
    except (stripe.SignatureVerificationError, ValueError):
        return None
    return event if isinstance(event, dict) else None


@csrf_exempt
def floor_verify(request: HttpRequest) -> HttpResponse:
    if verified_event(request) is None:
        return HttpResponseBadRequest("bad signature or body")
    return HttpResponse("ok", content_type="text/plain")


@csrf_exempt
def floor_write(request: HttpRequest) -> HttpResponse:
    event = verified_event(request)
    if event is None:
        return HttpResponseBadRequest("bad signature or body")
    with connections["floor"].cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {FLOOR_TABLE} (event_id, body, headers) VALUES (%s, %s, %s)",  # noqa: S608
            [str(event.get("id")), request.body.decode(), json.dumps(dict(request.headers))],
        )
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    path("bench/floor/verify/", floor_verify),
    path("bench/floor/write/", floor_write),
    path("", include("onboarding_project.urls")),
]


class FloorFastPathMiddleware(StripeWebhookFastPathMiddleware):
    """The floor endpoints skip the staff middleware exactly as the webhook does
    (ingest_floor_settings puts this next to the app's fast path), so the ratio compares the two
    views, not the webhook's shorter middleware chain against the floor's full one."""

    WEBHOOK_PATH_PREFIX = "/bench/floor/"
