"""Shared fixtures: the Stripe sandbox at the network edge, mail outboxes, the pipeline.

Helpers that are not fixtures live in tests/support/."""

import pytest
import stripe
from django.conf import settings

from stripe_events.webhook_endpoints import webhook_endpoint_register
from stripe_sandbox.server import StripeSandbox
from tests.factories import ServiceFactory
from tests.support.pipeline import WEBHOOK_SECRET, Pipeline
from tests.support.postmark import Postmark


@pytest.fixture(scope="session")
def stripe_sandbox():
    """One in-process Stripe sandbox for the session; stripe-python talks to it over HTTP."""
    sandbox = StripeSandbox()
    url = sandbox.start()
    # What dj-stripe does with STRIPE_API_HOST when its settings load (before this fixture runs).
    settings.STRIPE_API_HOST = stripe.api_base = url
    yield sandbox
    sandbox.stop()


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
def retainer(db):
    """A subscription service (the money tests' renewals, invoices and cancellations)."""
    return ServiceFactory(service_id="retainer", name="Monthly retainer")


@pytest.fixture
def webhook_endpoint(db):
    endpoint, _ = webhook_endpoint_register(secret=WEBHOOK_SECRET, base_url="http://testserver")
    return endpoint


@pytest.fixture
def pipeline(sandbox, webhook_endpoint, client):
    return Pipeline(sandbox, webhook_endpoint, client)


@pytest.fixture
def postmark(httpserver, settings):
    """Postmark at the network edge (tests/support/postmark.py), sent to by Anymail's real backend."""
    fake = Postmark(httpserver)
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = fake.anymail_settings
    return fake
