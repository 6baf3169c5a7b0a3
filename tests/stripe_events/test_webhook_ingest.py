"""Webhook ingest: signed deliveries are stored and queued fast; everything else gets a 400."""

import json
import time

import pytest
from django.urls import resolve, reverse
from django_q.models import OrmQ, Schedule
from djstripe.models import Customer, Event, PaymentIntent, Session, WebhookEventTrigger

from core.retry import max_attempts
from stripe_events.models import StripeWebhookJob
from stripe_events.views import StripeWebhookView
from stripe_events.webhook_jobs import webhook_job_retry_now, webhook_job_run
from stripe_sandbox.signing import sign_payload
from tests.support.pipeline import run_queued_tasks, signed_post, stripe_timeout

pytestmark = pytest.mark.django_db


def test_signed_event_is_stored_and_queued_without_calling_stripe(pipeline, sandbox):
    event = pipeline.checkout()["events"][0]
    sandbox.reset_request_counts()

    response = pipeline.deliver(event)

    assert response.status_code == 200
    trigger = WebhookEventTrigger.objects.get()
    assert trigger.valid and not trigger.processed
    job = StripeWebhookJob.objects.get()
    assert (job.trigger_id, job.event_id, job.status) == (trigger.id, event["id"], "queued")
    assert OrmQ.objects.count() == 1
    assert sandbox.request_counts().get("total", 0) == 0


def test_worker_processes_event_and_syncs_dj_stripe_mirror(pipeline):
    checkout = pipeline.checkout()
    event = checkout["events"][0]
    pipeline.deliver(event)

    assert pipeline.work() >= 1

    trigger = WebhookEventTrigger.objects.get()
    assert trigger.processed and trigger.event_id == event["id"]
    assert StripeWebhookJob.objects.get().status == "succeeded"
    assert Event.objects.get(id=event["id"]).type == "checkout.session.completed"
    session = Session.objects.get(id=checkout["session"]["id"])
    assert session.stripe_data["payment_status"] == "paid"
    assert Customer.objects.filter(id=checkout["session"]["customer"]).exists()
    assert PaymentIntent.objects.filter(id=checkout["session"]["payment_intent"]).exists()


def tampered(body: str) -> str:
    return body.replace('"livemode": false', '"livemode": true', 1)


REJECTIONS = {
    "wrong secret": dict(secret="whsec_forged"),
    "timestamp 301 s old": dict(age=301),
    "timestamp 301 s in the future": dict(age=-301),
}


@pytest.mark.parametrize("case", REJECTIONS)
def test_bad_signature_or_replay_window_is_rejected_and_recorded(pipeline, client, case):
    event = pipeline.checkout()["events"][0]
    body = json.dumps(event)
    opts = REJECTIONS[case]
    timestamp = int(time.time()) - opts["age"] if "age" in opts else None

    response = signed_post(
        client, pipeline.path, body, secret=opts.get("secret", pipeline.endpoint.secret), timestamp=timestamp
    )

    assert response.status_code == 400
    trigger = WebhookEventTrigger.objects.get()
    assert not trigger.valid and trigger.exception.startswith("Rejected")
    assert not StripeWebhookJob.objects.exists() and not OrmQ.objects.exists()


def test_timestamp_inside_the_window_is_accepted(pipeline, client):
    event = pipeline.checkout()["events"][0]
    response = signed_post(client, pipeline.path, json.dumps(event), timestamp=int(time.time()) - 290)
    assert response.status_code == 200


def test_body_changed_after_signing_is_rejected(pipeline, client):
    body = json.dumps(pipeline.checkout()["events"][0])
    header = sign_payload(body, pipeline.endpoint.secret)

    response = client.post(
        pipeline.path, data=tampered(body), content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )

    assert response.status_code == 400
    assert not WebhookEventTrigger.objects.get().valid
    assert not StripeWebhookJob.objects.exists()


def test_missing_signature_is_rejected_and_nothing_stored(pipeline, client):
    body = json.dumps(pipeline.checkout()["events"][0])
    response = client.post(pipeline.path, data=body, content_type="application/json")
    assert response.status_code == 400
    assert not WebhookEventTrigger.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        "not json at all",
        "",
        "[]",
        "42",
        '"evt_string"',
        "null",
        '{"id": "evt_1", "livemode": false}',
        '{"id": "evt_1", "object": "event", "type": "x", "livemode": false, "data": []}',
        '{"id": "cus_1", "object": "customer", "livemode": false}',
        '{"id": 5, "object": "event", "type": 7, "livemode": "no", "data": {"object": 1}}',
    ],
)
def test_a_signed_body_that_is_not_a_stripe_event_gets_400_never_500(webhook_endpoint, client, body):
    response = signed_post(client, webhook_endpoint.url.removeprefix("http://testserver"), body)
    assert response.status_code == 400
    assert not StripeWebhookJob.objects.exists()
    assert WebhookEventTrigger.objects.filter(valid=False).count() == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "evt_" + "a" * 252),  # longer than dj-stripe's Event.id column
        ("id", "evt_\x00abc"),  # PostgreSQL text cannot hold NUL (sent as \u0000 in the JSON)
        ("id", "evt_ spaced"),
        ("type", "checkout.session." + "x" * 240),  # longer than StripeWebhookJob.event_type
        ("type", "checkout.\x00session"),
        ("type", ""),
    ],
)
def test_a_signed_event_with_an_id_or_type_stripe_never_sends_gets_400(pipeline, client, field, value):
    event = dict(pipeline.checkout()["events"][0], **{field: value})

    response = signed_post(client, pipeline.path, json.dumps(event))

    assert response.status_code == 400
    trigger = WebhookEventTrigger.objects.get()
    assert not trigger.valid and trigger.exception.startswith("Rejected: event")
    assert not StripeWebhookJob.objects.exists() and not OrmQ.objects.exists()


def test_the_replay_window_is_the_endpoints_tolerance_both_ways(pipeline, client):
    pipeline.endpoint.djstripe_tolerance = 600
    pipeline.endpoint.save()
    event = pipeline.checkout()["events"][0]
    for age in (590, -590):
        response = signed_post(client, pipeline.path, json.dumps(event), timestamp=int(time.time()) - age)
        assert response.status_code == 200, age
    response = signed_post(client, pipeline.path, json.dumps(event), timestamp=int(time.time()) + 610)
    assert response.status_code == 400


def test_a_body_that_is_not_utf8_gets_400(webhook_endpoint, client):
    path = webhook_endpoint.url.removeprefix("http://testserver")
    response = client.post(
        path, data=b"\xff\xfe{}", content_type="application/json", HTTP_STRIPE_SIGNATURE="t=1,v1=00"
    )
    assert response.status_code == 400
    assert not StripeWebhookJob.objects.exists()


def test_nul_bytes_and_a_forged_forwarded_for_header_still_get_a_clear_400(webhook_endpoint, client):
    path = webhook_endpoint.url.removeprefix("http://testserver")
    response = client.post(
        path,
        data=b'{"id": "evt_\x00"}',
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE="t=1,v1=00",
        HTTP_X_FORWARDED_FOR="not-an-ip, 10.0.0.1",
    )
    assert response.status_code == 400
    trigger = WebhookEventTrigger.objects.get()
    assert trigger.remote_ip == "127.0.0.1" and "\x00" not in trigger.body


def test_a_valid_delivery_behind_a_proxy_records_the_forwarded_ip(pipeline, client):
    body = json.dumps(pipeline.checkout()["events"][0])
    header = sign_payload(body, pipeline.endpoint.secret)
    response = client.post(
        pipeline.path,
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=header,
        HTTP_X_FORWARDED_FOR="203.0.113.9",
    )
    assert response.status_code == 200
    assert WebhookEventTrigger.objects.get().remote_ip == "203.0.113.9"


def test_dj_stripe_url_name_reverses_to_our_view(pipeline):
    """dj-stripe's `stripe_listen` command and endpoint forms reverse its own URL name."""
    path = reverse("djstripe:djstripe_webhook_by_uuid", kwargs={"uuid": pipeline.endpoint.djstripe_uuid})
    assert path == pipeline.path
    assert resolve(path).func.view_class is StripeWebhookView


def test_unknown_endpoint_is_404(client, db):
    response = signed_post(client, "/stripe/webhook/00000000-0000-0000-0000-000000000000/", "{}")
    assert response.status_code == 404


@pytest.fixture
def short_stripe_timeout():
    with stripe_timeout(1):
        yield


@pytest.mark.parametrize("fault", ["http_500", "http_429", "timeout"])
def test_stripe_failing_during_processing_is_recorded_then_retried(
    pipeline, sandbox, short_stripe_timeout, fault
):
    event = pipeline.checkout()["events"][0]
    pipeline.deliver(event)
    sandbox.set_fault("*", fault, seconds=3)

    pipeline.work()

    job = StripeWebhookJob.objects.get()
    assert job.status == "retrying" and job.attempts == 1
    assert job.last_error and job.next_attempt_at
    trigger = job.trigger
    assert not trigger.processed and trigger.exception
    assert Schedule.objects.filter(
        func="stripe_events.tasks.webhook_job_process", args=repr((job.id,))
    ).exists()
    assert not Event.objects.exists()

    sandbox.clear_faults()
    assert webhook_job_run(job_id=job.id) == "succeeded"  # what the scheduled retry runs
    job.refresh_from_db()
    assert job.attempts == 2 and Event.objects.filter(id=event["id"]).exists()


def test_job_gives_up_after_the_retry_window_and_staff_can_retry(pipeline, sandbox, settings):
    settings.RETRY_WINDOW_HOURS = 0.1  # 30 s doubling: 5 attempts
    MAX_ATTEMPTS = max_attempts()
    event = pipeline.checkout()["events"][0]
    pipeline.deliver(event)
    job = StripeWebhookJob.objects.get()
    sandbox.set_fault("*", "http_500")

    for _ in range(MAX_ATTEMPTS):
        StripeWebhookJob.objects.filter(id=job.id).update(status="retrying")
        webhook_job_run(job_id=job.id)
    job.refresh_from_db()
    assert job.status == "failed" and job.attempts == MAX_ATTEMPTS
    assert webhook_job_run(job_id=job.id) == "failed"  # never retried forever

    sandbox.clear_faults()
    assert webhook_job_retry_now(job=job)
    run_queued_tasks()
    job.refresh_from_db()
    assert job.status == "succeeded"


def test_a_deeply_nested_body_with_a_made_up_signature_gets_400_and_a_record(webhook_endpoint, client):
    path = webhook_endpoint.url.removeprefix("http://testserver")
    body = "[" * 100_000 + "]" * 100_000  # deeper than Python's JSON parser recurses

    response = client.post(
        path, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE="t=1,v1=00"
    )

    assert response.status_code == 400
    trigger = WebhookEventTrigger.objects.get()
    assert not trigger.valid and trigger.exception == "Rejected: signature verification failed"


def test_a_deeply_nested_body_with_a_valid_signature_gets_400(webhook_endpoint, client):
    body = '{"a": ' * 100_000 + "1" + "}" * 100_000

    response = signed_post(client, webhook_endpoint.url.removeprefix("http://testserver"), body)

    assert response.status_code == 400
    assert WebhookEventTrigger.objects.get().exception == "Rejected: body is nested too deeply"
    assert not StripeWebhookJob.objects.exists()


def test_a_made_up_signature_keeps_the_record_but_only_the_start_of_a_big_body(pipeline, client):
    event = pipeline.checkout()["events"][0]
    body = json.dumps(dict(event, padding="x" * 2_000_000))

    response = signed_post(client, pipeline.path, body, secret="whsec_forged")

    assert response.status_code == 400
    trigger = WebhookEventTrigger.objects.get()
    assert not trigger.valid and trigger.exception == "Rejected: signature verification failed"
    assert trigger.body.startswith(body[:10_000])
    assert len(trigger.body) < 10_100 and f"of a {len(body)}-byte body" in trigger.body


def test_a_valid_delivery_keeps_its_whole_body(pipeline, client):
    body = json.dumps(dict(pipeline.checkout()["events"][0], padding="x" * 20_000))
    assert signed_post(client, pipeline.path, body).status_code == 200
    assert WebhookEventTrigger.objects.get().body == body


def test_a_disabled_endpoint_refuses_deliveries_with_a_visible_record(pipeline, client):
    pipeline.endpoint.status = "disabled"
    pipeline.endpoint.save()
    body = json.dumps(pipeline.checkout()["events"][0])

    response = signed_post(client, pipeline.path, body)

    assert response.status_code == 410
    trigger = WebhookEventTrigger.objects.get()
    assert not trigger.valid and trigger.exception == "Rejected: the webhook endpoint is disabled"
    assert not StripeWebhookJob.objects.exists() and not OrmQ.objects.exists()

    pipeline.endpoint.status = "enabled"
    pipeline.endpoint.save()
    assert signed_post(client, pipeline.path, body).status_code == 200
