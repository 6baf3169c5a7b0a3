"""Injected faults and request counters, observed through stripe-python's own retry logic."""

import time

import pytest
import requests
import stripe

from tests.stripe_sandbox.helpers import API_KEY

SESSION_ENDPOINT = "GET /v1/checkout/sessions/{id}"


@pytest.fixture
def session_id(sandbox):
    checkout = sandbox.create_checkout(email="a@example.com", name="A", service_id="s", amount=100)
    sandbox.reset_request_counts()
    return checkout["session"]["id"]


def client(sandbox, retries=0, timeout=10):
    """A StripeClient with explicit retries and timeout (public stripe-python configuration)."""
    return stripe.StripeClient(
        API_KEY,
        base_addresses={"api": sandbox.url},
        http_client=stripe.RequestsClient(timeout=timeout),
        max_network_retries=retries,
    )


def test_http_500_with_count_is_retried_by_stripe_python_then_succeeds(sandbox, session_id):
    sandbox.set_fault(endpoint=SESSION_ENDPOINT, kind="http_500", rate=1, count=2)
    session = client(sandbox, retries=2).v1.checkout.sessions.retrieve(session_id)
    assert session.id == session_id
    assert sandbox.request_counts()[SESSION_ENDPOINT] == 3


def test_http_500_without_retries_raises_api_error(sandbox, session_id):
    sandbox.set_fault(endpoint="*", kind="http_500", count=1)
    with pytest.raises(stripe.APIError) as error:
        client(sandbox).v1.checkout.sessions.retrieve(session_id)
    assert error.value.http_status == 500 and error.value.error.type == "api_error"


def test_http_429_is_a_rate_limit_error_and_not_retried(sandbox, session_id):
    sandbox.set_fault(endpoint=SESSION_ENDPOINT, kind="http_429", count=1)
    with pytest.raises(stripe.RateLimitError) as error:
        client(sandbox, retries=2).v1.checkout.sessions.retrieve(session_id)
    assert error.value.http_status == 429 and error.value.error.code == "rate_limit"
    assert sandbox.request_counts()[SESSION_ENDPOINT] == 1  # 429 is not retried without Stripe-Should-Retry


def test_http_429_with_should_retry_header_is_retried(sandbox, session_id):
    sandbox.set_fault(endpoint=SESSION_ENDPOINT, kind="http_429", count=1, should_retry=True)
    assert client(sandbox, retries=1).v1.checkout.sessions.retrieve(session_id).id == session_id
    assert sandbox.request_counts()[SESSION_ENDPOINT] == 2


def test_latency(sandbox, session_id):
    sandbox.set_fault(endpoint=SESSION_ENDPOINT, kind="latency", latency_ms=300)
    began = time.perf_counter()
    client(sandbox).v1.checkout.sessions.retrieve(session_id)
    assert time.perf_counter() - began >= 0.3


def test_reset_closes_connection_without_response(sandbox, session_id):
    sandbox.set_fault(endpoint=SESSION_ENDPOINT, kind="reset", count=1)
    with pytest.raises(stripe.APIConnectionError):
        client(sandbox).v1.checkout.sessions.retrieve(session_id)
    assert client(sandbox).v1.checkout.sessions.retrieve(session_id).id == session_id


def test_timeout_holds_request_past_client_timeout(sandbox, session_id):
    sandbox.set_fault(endpoint=SESSION_ENDPOINT, kind="timeout", seconds=2, count=1)
    began = time.perf_counter()
    with pytest.raises(stripe.APIConnectionError):
        client(sandbox, timeout=0.3).v1.checkout.sessions.retrieve(session_id)
    assert time.perf_counter() - began < 1.5
    assert client(sandbox, timeout=5).v1.checkout.sessions.retrieve(session_id).id == session_id


def test_rate_is_seeded_and_repeatable(sandbox, session_id):
    def outcomes():
        sandbox.clear_faults()
        sandbox.set_fault(endpoint=SESSION_ENDPOINT, kind="http_500", rate=0.5, seed=7)
        results = []
        for _ in range(12):
            try:
                client(sandbox).v1.checkout.sessions.retrieve(session_id)
                results.append("ok")
            except stripe.APIError:
                results.append("500")
        return results

    first = outcomes()
    assert first == outcomes() and {"ok", "500"} == set(first)


def test_faults_only_hit_their_endpoint(sandbox, session_id):
    sandbox.set_fault(endpoint="GET /v1/customers/{id}", kind="http_500")
    session = client(sandbox).v1.checkout.sessions.retrieve(session_id)
    assert session.id == session_id
    with pytest.raises(stripe.APIError):  # the faulted endpoint does fail
        client(sandbox).v1.customers.retrieve(session.customer)
    counts = sandbox.request_counts()
    assert (counts[SESSION_ENDPOINT], counts["GET /v1/customers/{id}"]) == (1, 1)


def test_request_counters_and_control_endpoints(sandbox, session_id, raw):
    stripe.checkout.Session.retrieve(session_id, api_key=API_KEY)
    stripe.checkout.Session.list(api_key=API_KEY)
    stripe.checkout.Session.list(api_key=API_KEY)
    counts = requests.get(f"{sandbox.url}/_sandbox/requests", timeout=5).json()
    assert counts == {SESSION_ENDPOINT: 1, "GET /v1/checkout/sessions": 2, "total": 3}
    assert requests.delete(f"{sandbox.url}/_sandbox/requests", timeout=5).json() == {"total": 0}

    added = requests.post(
        f"{sandbox.url}/_sandbox/faults", json={"endpoint": "*", "kind": "http_500", "count": 1}, timeout=5
    ).json()
    assert added["kind"] == "http_500" and raw("GET", "/v1/account").status_code == 500
    assert raw("GET", "/v1/account").status_code == 200  # count exhausted
    assert requests.delete(f"{sandbox.url}/_sandbox/faults", timeout=5).json() == {"faults": []}
    bad = requests.post(f"{sandbox.url}/_sandbox/faults", json={"kind": "explode"}, timeout=5)
    assert bad.status_code == 400
    assert requests.get(f"{sandbox.url}/_sandbox/health", timeout=5).status_code == 200
    assert requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5).json() == {"status": "reset"}
    with pytest.raises(stripe.InvalidRequestError):
        stripe.checkout.Session.retrieve(session_id, api_key=API_KEY)


def test_the_rate_limit_answers_429_like_stripe_above_the_limit_and_counts_each_second(sandbox, session_id):
    requests.post(f"{sandbox.url}/_sandbox/rate_limit", json={"per_second": 3}, timeout=5).raise_for_status()
    # Start at the beginning of a second, so the burst below falls in one.
    time.sleep(1 - time.time() % 1 + 0.01)
    api = client(sandbox, retries=2)  # stripe-python does not retry a plain 429
    for _ in range(3):
        api.v1.checkout.sessions.retrieve(session_id)
    with pytest.raises(stripe.RateLimitError) as error:
        api.v1.checkout.sessions.retrieve(session_id)
    assert error.value.http_status == 429 and error.value.error.code == "rate_limit"
    assert error.value.error.type == "invalid_request_error"
    report = requests.get(f"{sandbox.url}/_sandbox/rate_limit", timeout=5).json()
    assert report["rate_limited"] == 1 and report["max_in_one_second"] == 4
    assert sandbox.request_counts()[SESSION_ENDPOINT] == 4
