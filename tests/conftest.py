"""Shared fixtures: the Stripe sandbox at the network edge, signed deliveries, the worker's loop."""

import importlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import requests
import stripe
from django.apps import apps as django_apps
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import connection, connections
from django.test import Client as HttpClient
from django.test import TestCase
from django.utils.module_loading import import_string
from django_q.brokers import get_broker
from django_q.signing import SignedPackage

from stripe_events import stripe_client
from stripe_events.webhook_endpoints import webhook_endpoint_register
from stripe_sandbox.server import StripeSandbox
from stripe_sandbox.signing import sign_payload
from tests.factories import ServiceFactory

WEBHOOK_SECRET = "whsec_test_secret_for_the_suite"
CHECKOUT_DEFAULTS = {
    "email": "ada@example.com",
    "name": "Ada Lovelace",
    "service_id": "website-care",
    "amount": 49900,
    "currency": "usd",
}


@pytest.fixture(scope="session")
def stripe_sandbox():
    """One in-process Stripe sandbox for the session; stripe-python talks to it over HTTP."""
    sandbox = StripeSandbox()
    url = sandbox.start()
    # What dj-stripe does with STRIPE_API_HOST when its settings load (before this fixture runs).
    settings.STRIPE_API_HOST = stripe.api_base = url
    yield sandbox
    sandbox.stop()


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


@pytest.fixture
def sandbox(stripe_sandbox):
    """The sandbox, emptied (objects, faults, counters) before each test."""
    stripe_sandbox.reset()
    yield stripe_sandbox
    stripe_sandbox.clear_faults()


@pytest.fixture
def anymail_outbox(settings):
    """Anymail's own test backend: sent messages land in mail.outbox with tags, metadata and
    anymail_status; links in them start with http://testserver, the test client's host."""
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    settings.SITE_URL = "http://testserver"


@pytest.fixture
def service(db):
    """The service the sandbox's checkouts sell by default (CHECKOUT_DEFAULTS)."""
    return ServiceFactory()


@pytest.fixture
def webhook_endpoint(db):
    endpoint, _ = webhook_endpoint_register(secret=WEBHOOK_SECRET, base_url="http://testserver")
    return endpoint


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
            task = SignedPackage.loads(payload)
            func = task["func"]
            if isinstance(func, str):
                func = import_string(func)
            run_with_commit_hooks(func, *task.get("args", ()), **task.get("kwargs", {}))
            broker.acknowledge(ack_id)
            ran += 1
    raise AssertionError("tasks kept enqueueing tasks")


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


@pytest.fixture
def pipeline(sandbox, webhook_endpoint, client):
    return Pipeline(sandbox, webhook_endpoint, client)


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


STAFF_PASSWORD = "pw-for-tests-123"


def staff_user(role: str, *, username: str = "") -> User:
    """A staff user in the "Support" or "Operations" group made by crm/migrations/0004_staff_roles.py
    (restated in 0011).

    A transaction=True test ends by flushing every table, groups included, and a reused test
    database does not rerun data migrations, so the migration's own code recreates the groups.
    """
    importlib.import_module("crm.migrations.0011_stripewebhookjob_to_stripe_events").assign_roles(django_apps)
    username = username or f"{role.lower()}@agency.example"
    user = User.objects.create_user(username, password=STAFF_PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user
