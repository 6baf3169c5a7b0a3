"""Fixtures for the Stripe sandbox tests: plain pytest, no database, no Django settings."""

import json
from pathlib import Path

import pytest
import requests
import stripe

from stripe_sandbox import shapes
from stripe_sandbox.server import StripeSandbox
from tests.stripe_sandbox.helpers import API_KEY, WebhookReceiver

REFERENCE_SHAPES = Path(shapes.__file__).with_name("reference_shapes.json")


@pytest.fixture(scope="session")
def running_sandbox():
    sandbox = StripeSandbox()
    sandbox.start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def sandbox(running_sandbox, monkeypatch):
    """A clean sandbox with stripe-python's public `api_base` pointed at it."""
    running_sandbox.reset()
    monkeypatch.setattr(stripe, "api_base", running_sandbox.url)
    yield running_sandbox
    running_sandbox.reset()


@pytest.fixture
def raw(sandbox):
    """Plain HTTP access to the sandbox (to see exact JSON, status codes and headers)."""

    def call(method, path, key=API_KEY, **kwargs):
        headers = kwargs.pop("headers", {})
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return requests.request(method, sandbox.url + path, headers=headers, timeout=10, **kwargs)

    return call


@pytest.fixture(scope="session")
def reference_shapes():
    """The one copy of Stripe's reference shapes, the file the sandbox builds its objects from."""
    return json.loads(REFERENCE_SHAPES.read_text())


@pytest.fixture
def receiver(httpserver):
    return WebhookReceiver(httpserver)
