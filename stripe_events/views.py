"""Stripe webhook ingest: verify, store, enqueue, answer. No Stripe API call on this path.

dj-stripe's own view verifies and then processes inside the request (retrieving objects from
Stripe), which makes Stripe wait on Stripe and turns any processing error into a 500; its hook
to defer processing (DJSTRIPE_WEBHOOK_EVENT_CALLBACK) is deprecated. So this view keeps
dj-stripe's record (WebhookEventTrigger) and its signature check (`verify_signature`, with the
endpoint's replay tolerance; never the secret-override header dj-stripe honours under DEBUG),
adds the checks it lacks (a signature timestamp in the future, a body that is not a Stripe
event), and hands processing to the worker through a StripeWebhookJob row written in the same
transaction as the trigger (one raw statement for both, stripe_events/ingest.py), with the queued
task. Staff middleware does not run for this path (onboarding_project/middleware.py).
"""

import json
import logging
import re
import time
from typing import Any, cast
from uuid import UUID

from django.core.exceptions import ValidationError
from django.core.validators import validate_ipv46_address
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from djstripe.enums import WebhookEndpointStatus
from djstripe.models import WebhookEndpoint, WebhookEventTrigger
from djstripe.models.webhooks import get_remote_ip
from djstripe.views import ProcessWebhookView

from .ingest import delivery_record, endpoint_for_ingest
from .models import StripeWebhookJob
from .webhook_jobs import PROCESS_TASK

logger = logging.getLogger(__name__)

# A rejected delivery keeps this much of its body (a forged one can be 2.5 MB, Django's limit).
REJECTED_BODY_CHARS = 10_000
# Stripe's ids are letters, digits and underscores (dj-stripe's StripeIdField: 255 characters);
# event types are dotted lowercase names (our StripeWebhookJob.event_type: 250 characters).
EVENT_ID = re.compile(r"evt_[A-Za-z0-9_]{1,251}")
EVENT_TYPE = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)*")
EVENT_TYPE_MAX_LENGTH = cast(int, StripeWebhookJob._meta.get_field("event_type").max_length)


def signature_timestamp(header: str) -> int | None:
    """The `t=` value of a Stripe-Signature header, or None if absent or malformed."""
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def parse_event(body: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """The body as a Stripe event, or why it is not one: (event, None) or (None, problem)."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, "body is not JSON"
    except RecursionError:  # nested deeper than the parser goes
        return None, "body is nested too deeply"
    if not isinstance(payload, dict):
        return None, "body is not a JSON object"
    if payload.get("object") != "event" or not str(payload.get("id", "")).startswith("evt_"):
        return None, "body is not a Stripe event"
    if not isinstance(payload.get("type"), str) or not isinstance(payload.get("livemode"), bool):
        return None, "event has no type or livemode"
    # Both are stored in columns (dj-stripe's Event.id, our job's event_type) that hold no more,
    # and PostgreSQL text holds no NUL: a signed body with anything else must be a 400, not a 500.
    if not EVENT_ID.fullmatch(payload["id"]):
        return None, "event id is not a Stripe id"
    if len(payload["type"]) > EVENT_TYPE_MAX_LENGTH or not EVENT_TYPE.fullmatch(payload["type"]):
        return None, "event type is not a Stripe event type"
    data = payload.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        return None, "event has no data.object"
    return payload, None


def timestamp_problem(request: HttpRequest, *, tolerance: int) -> str | None:
    """A check dj-stripe does not make: stripe-python only rejects old signatures, not future ones."""
    timestamp = signature_timestamp(request.headers["stripe-signature"])
    if timestamp is not None and timestamp > time.time() + tolerance:
        return "signature timestamp is in the future"
    return None


class StripeWebhookView(ProcessWebhookView):  # type: ignore[misc]  # dj-stripe ships no types
    """POST /stripe/webhook/<uuid>/: 400 for anything not a verified Stripe event (410 if the endpoint
    is disabled), else 200."""

    def post(self, request: HttpRequest, uuid: UUID) -> HttpResponse:
        if "stripe-signature" not in request.headers:
            # Like dj-stripe: store nothing for unsigned noise, so it cannot fill the database.
            logger.warning("Stripe webhook without a Stripe-Signature header rejected")
            return HttpResponseBadRequest("Missing Stripe-Signature header.")
        found = endpoint_for_ingest(uuid)
        if found is None:
            raise Http404("No webhook endpoint with this id.")
        endpoint = found.endpoint
        trigger = trigger_from_request(request, endpoint=endpoint)

        problem = None
        if endpoint.status == WebhookEndpointStatus.disabled:
            problem = "the webhook endpoint is disabled"
        # The same window both ways: the endpoint's tolerance (300 s, Stripe's default).
        if problem is None:
            problem = timestamp_problem(request, tolerance=endpoint.djstripe_tolerance)
        if problem is None and not endpoint.secret:
            problem = "the webhook endpoint has no signing secret"
        # dj-stripe's check: HMAC over "<t>.<body>" and t no older than the endpoint's tolerance.
        if problem is None and not trigger.verify_signature(endpoint.secret, endpoint.djstripe_tolerance):
            problem = "signature verification failed"
        event = None
        if problem is None:  # only a verified body reaches the JSON parser
            event, problem = parse_event(request.body)
        if problem:
            logger.warning("Stripe webhook rejected: %s", problem)
            trigger.exception = f"Rejected: {problem}"[:128]
            trigger.body = rejected_body(trigger.body, size=len(request.body))
            trigger.save()  # a visible record for staff; nothing is processed
            status = 410 if endpoint.status == WebhookEndpointStatus.disabled else 400
            return HttpResponse(f"Rejected: {problem}.", status=status, content_type="text/plain")

        trigger_id = delivery_record(
            remote_ip=trigger.remote_ip,
            headers=trigger.headers,
            body=trigger.body,
            endpoint=endpoint,
            event=cast(dict[str, Any], event),  # parsed: no problem
            job_id=found.job_id,
            task=PROCESS_TASK,
        )
        return HttpResponse(str(trigger_id))


def rejected_body(body: str, *, size: int) -> str:
    """What a rejected delivery keeps of its body: the start, and the original size if cut."""
    if len(body) <= REJECTED_BODY_CHARS:
        return body
    return f"{body[:REJECTED_BODY_CHARS]}\n[first {REJECTED_BODY_CHARS} characters of a {size}-byte body]"


def client_ip(request: HttpRequest) -> str:
    """dj-stripe's reading of X-Forwarded-For, falling back to REMOTE_ADDR when it is not an IP.

    The header is whatever the client sent; an invalid value must not make the INSERT fail.
    """
    candidate: str = get_remote_ip(request)
    try:
        validate_ipv46_address(candidate)
    except ValidationError:
        return request.META.get("REMOTE_ADDR") or "0.0.0.0"
    return candidate


def trigger_from_request(request: HttpRequest, *, endpoint: WebhookEndpoint) -> WebhookEventTrigger:
    """dj-stripe's record of a delivery, not yet saved (so a valid one costs a single INSERT)."""
    return WebhookEventTrigger(
        remote_ip=client_ip(request),
        headers=dict(request.headers),
        # PostgreSQL text cannot hold NUL; anything undecodable is stored visibly replaced.
        body=request.body.decode("utf-8", errors="replace").replace("\x00", "\ufffd"),
        webhook_endpoint=endpoint,
        stripe_trigger_account_id=endpoint.djstripe_owner_account_id,
    )
