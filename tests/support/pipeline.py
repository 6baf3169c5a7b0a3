"""Driving the product as Stripe and the worker would: signed deliveries, the worker's loop, the pipeline."""

import json
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import requests
from django.conf import settings
from django.db import connection, connections
from django.test import Client as HttpClient
from django.test import TestCase
from django.utils.module_loading import import_string
from django_q.brokers import get_broker
from django_q.signing import SignedPackage

from stripe_events import stripe_client
from stripe_sandbox.server import StripeSandbox
from stripe_sandbox.signing import sign_payload

WEBHOOK_SECRET = "whsec_test_secret_for_the_suite"
CHECKOUT_DEFAULTS = {
    "email": "ada@example.com",
    "name": "Ada Lovelace",
    "service_id": "website-care",
    "amount": 49900,
    "currency": "usd",
}


@contextmanager
def stripe_timeout(seconds: float):
    """stripe-python's HTTP timeout set to `seconds` for the block; the configured one back after."""
    configured = settings.STRIPE_API_TIMEOUT
    settings.STRIPE_API_TIMEOUT = seconds
    stripe_client.configure()
    try:
        yield
    finally:
        settings.STRIPE_API_TIMEOUT = configured
        stripe_client.configure()


def signed_post(http: HttpClient, url: str, body: str, *, secret: str = WEBHOOK_SECRET, timestamp=None):
    """POST a body to the webhook view signed as Stripe signs it."""
    return http.post(
        url,
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign_payload(body, secret, timestamp),
    )


def run_queued_tasks(max_rounds: int = 50) -> int:
    """The worker's loop, in this process: take each queued task from the broker and run it.

    Tasks run through the same import path django-q's worker uses; commit hooks fire as they
    would in a worker, so tasks a task enqueues run in a later round. Returns tasks run.
    """
    broker = get_broker()
    ran = 0
    for _ in range(max_rounds):
        batch = broker.dequeue()
        if not batch:
            return ran
        for ack_id, payload in batch:
            run_task_payload(payload)
            broker.acknowledge(ack_id)
            ran += 1
    raise AssertionError("tasks kept enqueueing tasks")


def run_next_task() -> str:
    """Take the next queued task from the broker and run it as the worker would; its name."""
    broker = get_broker()
    [(ack_id, payload)] = broker.dequeue()
    name = run_task_payload(payload)
    broker.acknowledge(ack_id)
    return name


def queued_task_names() -> list[str]:
    """The functions of the tasks waiting in the broker, oldest first."""
    from django_q.models import OrmQ

    payloads = OrmQ.objects.order_by("id").values_list("payload", flat=True)
    return [SignedPackage.loads(payload)["func"] for payload in payloads]


def run_task_payload(payload) -> str:
    task = SignedPackage.loads(payload)
    func = task["func"]
    run_with_commit_hooks(
        import_string(func) if isinstance(func, str) else func,
        *task.get("args", ()),
        **task.get("kwargs", {}),
    )
    return str(func)


def run_with_commit_hooks(func, *args, **kwargs):
    """Run func, then fire the on_commit hooks it registered (the test's transaction never commits)."""
    if connection.in_atomic_block:
        with TestCase.captureOnCommitCallbacks(execute=True):
            return func(*args, **kwargs)
    return func(*args, **kwargs)


class Pipeline:
    """Drives the product as Stripe and the worker would: pay, deliver signed webhooks, work."""

    def __init__(self, sandbox: StripeSandbox, endpoint, http: HttpClient):
        self.sandbox = sandbox
        self.endpoint = endpoint
        self.http = http
        self.path = endpoint.url.removeprefix("http://testserver")

    def checkout(self, **fields) -> dict:
        """A paid (or delayed) checkout in the sandbox, undelivered: {"session": …, "events": […]}."""
        result = self.sandbox.create_checkout(**{**CHECKOUT_DEFAULTS, **fields}, deliver=False)
        result["events"] = [self.sandbox.store.get("event", event_id) for event_id in result["events"]]
        return result

    def deliver(self, event: dict, **sign):
        body = json.dumps(event)
        return run_with_commit_hooks(signed_post, self.http, self.path, body, **sign)

    def work(self) -> int:
        return run_queued_tasks()

    def pay_and_process(self, **fields) -> dict:
        result = self.checkout(**fields)
        for event in result["events"]:
            assert self.deliver(event).status_code == 200
        self.work()
        return result


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def in_own_connection(func, *args, **kwargs):
    """Run func in a worker thread with its own database connection, closed afterwards."""
    try:
        return func(*args, **kwargs)
    finally:
        connections.close_all()


def deliver_concurrently(url: str, body: str, times: int) -> list[int]:
    """POST one signed body `times` times at once over real HTTP, as Stripe's retries can."""

    def deliver(_):
        headers = {"Stripe-Signature": sign_payload(body, WEBHOOK_SECRET), "Content-Type": "application/json"}
        return requests.post(url, data=body, headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(max_workers=times) as pool:
        return list(pool.map(deliver, range(times)))


def paid_event_body(sandbox: StripeSandbox, **fields) -> str:
    """The JSON of a paid checkout's checkout.session.completed event, not yet delivered."""
    defaults = {"email": "dup@example.com", "name": "Dup", "service_id": "website-care", "amount": 1000}
    checkout = sandbox.create_checkout(**{**defaults, "currency": "usd", **fields}, deliver=False)
    return json.dumps(sandbox.store.get("event", checkout["events"][0]))
