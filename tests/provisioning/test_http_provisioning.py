"""The HTTP provisioning backend against a fake dashboard service at the network edge."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from werkzeug import Request, Response

from core.retry import max_attempts
from core.signing import signature_header, signature_verify
from crm.models import Activity, Client, Onboarding
from crm.reconcile import Fix, reconciliation_run
from crm.services.workspace_step import workspace_step_run
from provisioning.backends import HttpBackend
from provisioning.models import Workspace
from tests.support.money import deliver_shuffled, undelivered
from tests.support.pipeline import run_queued_tasks, run_with_commit_hooks, wait_until

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("service", "anymail_outbox")]

SECRET = "prov_secret_for_tests"
Step = Onboarding.StepStatus


@pytest.fixture
def dashboard(httpserver, settings):
    """The other team's dashboard service: it checks our signature on every request."""
    settings.PROVISIONING_BACKEND = "provisioning.backends.HttpBackend"
    settings.PROVISIONING_URL = httpserver.url_for("/api")
    settings.PROVISIONING_SECRET = SECRET
    settings.PROVISIONING_TIMEOUT = 2
    return httpserver


def verified(request: Request) -> dict:
    signature_verify(request.get_data(), request.headers["Provisioning-Signature"], secret=SECRET)
    return json.loads(request.get_data())


def callback(client, payload: dict, *, secret: str = SECRET):
    body = json.dumps(payload).encode()
    return run_with_commit_hooks(
        client.post,
        "/provisioning/callback/",
        body,
        content_type="application/json",
        HTTP_PROVISIONING_SIGNATURE=signature_header(body, secret=secret),
    )


def test_sync_answer_makes_the_workspace_ready_with_a_signed_request(pipeline, dashboard):
    seen = []

    def create(request: Request) -> Response:
        seen.append((verified(request), request.headers["Idempotency-Key"]))
        return Response(
            json.dumps({"id": "ws_1", "url": "https://dash.example/ws_1", "status": "ready"}), 201
        )

    dashboard.expect_request("/api/workspaces", method="POST").respond_with_handler(create)
    pipeline.pay_and_process(email="ada@example.com", name="Ada")

    workspace = Workspace.objects.get()
    assert (workspace.status, workspace.url, workspace.external_id) == (
        "ready",
        "https://dash.example/ws_1",
        "ws_1",
    )
    body, key = seen[0]
    assert body["client"] == {"id": str(workspace.client_id), "email": "ada@example.com", "name": "Ada"}
    assert body["service"]["service_id"] == "website-care" and body["workspace_id"] == str(workspace.id)
    assert key == f"workspace-{workspace.id}"
    assert Onboarding.objects.get().status == Onboarding.Status.ONBOARDED


def test_async_answer_waits_for_the_signed_callback(pipeline, dashboard, client):
    dashboard.expect_request("/api/workspaces").respond_with_json(
        {"id": "ws_9", "status": "provisioning"}, 202
    )
    pipeline.pay_and_process()
    onboarding = Onboarding.objects.get()
    assert onboarding.workspace_status == Step.RETRYING and Workspace.objects.get().callback_due

    assert (
        callback(client, {"id": "ws_9", "status": "ready", "url": "https://d/9"}, secret="wrong").status_code
        == 400
    )
    assert callback(client, {"id": "ws_unknown", "status": "ready", "url": "x"}).status_code == 400
    assert callback(client, {"id": "ws_9", "status": "ready", "url": "https://d/9"}).status_code == 200
    run_queued_tasks()  # the callback woke the waiting step
    onboarding.refresh_from_db()
    assert (onboarding.workspace_status, onboarding.status) == (Step.DONE, Onboarding.Status.ONBOARDED)
    assert Workspace.objects.get().url == "https://d/9"
    assert len(dashboard.log) == 1  # no second POST while waiting


def test_a_stale_callback_signature_is_refused(pipeline, dashboard, client):
    dashboard.expect_request("/api/workspaces").respond_with_json(
        {"id": "ws_9", "status": "provisioning"}, 202
    )
    pipeline.pay_and_process()
    body = json.dumps({"id": "ws_9", "status": "ready", "url": "u"}).encode()
    old = signature_header(body, secret=SECRET, timestamp=1_000_000_000)
    response = client.post(
        "/provisioning/callback/", body, content_type="application/json", HTTP_PROVISIONING_SIGNATURE=old
    )
    assert response.status_code == 400 and Workspace.objects.get().status == "provisioning"


def test_4xx_fails_the_step_for_staff_with_the_body(pipeline, dashboard):
    dashboard.expect_request("/api/workspaces").respond_with_data(
        '{"error": "plan gold unknown"}', status=422
    )
    pipeline.pay_and_process()
    onboarding = Onboarding.objects.get()
    assert (onboarding.workspace_status, onboarding.status) == (Step.FAILED, Onboarding.Status.FAILED)
    assert "422" in onboarding.workspace_last_error and "plan gold unknown" in onboarding.workspace_last_error
    assert len(dashboard.log) == 1


def test_5xx_and_timeouts_are_retried_with_the_same_idempotency_key(pipeline, dashboard):
    keys = []

    def flaky(request: Request) -> Response:
        keys.append(request.headers["Idempotency-Key"])
        if len(keys) < 3:
            return Response("busy", 503)
        return Response(json.dumps({"id": "ws_2", "url": "https://d/2", "status": "ready"}), 200)

    dashboard.expect_request("/api/workspaces").respond_with_handler(flaky)
    pipeline.pay_and_process()
    onboarding = Onboarding.objects.get()
    assert onboarding.workspace_status == Step.RETRYING and "503" in onboarding.workspace_last_error
    for _ in range(2):
        workspace_step_run(onboarding_id=onboarding.id)  # the scheduled retries
    onboarding.refresh_from_db()
    assert onboarding.workspace_status == Step.DONE and onboarding.workspace_attempts == 3 < max_attempts()
    assert len(set(keys)) == 1 and len(keys) == 3


def test_duplicate_tasks_make_one_workspace_and_one_request(pipeline, dashboard):
    dashboard.expect_request("/api/workspaces").respond_with_json(
        {"id": "ws_3", "url": "u", "status": "ready"}, 201
    )
    pipeline.pay_and_process()
    onboarding = Onboarding.objects.get()
    for _ in range(3):
        workspace_step_run(onboarding_id=onboarding.id)
    assert Workspace.objects.count() == 1 and len(dashboard.log) == 1


def test_suspend_and_resume_are_signed_posts(pipeline, dashboard):
    dashboard.expect_request("/api/workspaces").respond_with_json(
        {"id": "ws_4", "url": "u", "status": "ready"}, 201
    )
    dashboard.expect_request("/api/workspaces/ws_4/suspend", method="POST").respond_with_json({}, 200)
    dashboard.expect_request("/api/workspaces/ws_4/resume", method="POST").respond_with_json({}, 200)
    pipeline.pay_and_process()
    workspace = Workspace.objects.get()
    HttpBackend().suspend(workspace)
    HttpBackend().resume(workspace)
    paths = [request.path for request, _ in dashboard.log]
    assert paths[-2:] == ["/api/workspaces/ws_4/suspend", "/api/workspaces/ws_4/resume"]
    for request, _ in dashboard.log:
        verified(request)


def test_callbacks_are_refused_when_no_secret_is_configured(client, settings):
    settings.PROVISIONING_SECRET = ""
    body = json.dumps({"id": "x", "status": "ready"}).encode()
    response = client.post(
        "/provisioning/callback/",
        body,
        content_type="application/json",
        HTTP_PROVISIONING_SIGNATURE=signature_header(body, secret=""),
    )
    assert response.status_code == 400


def test_the_reference_receiver_answers_202_once_per_key_and_calls_back_signed(httpserver):
    import threading
    from http.server import ThreadingHTTPServer

    import requests

    from provisioning.reference_receiver import make_handler

    httpserver.expect_request("/provisioning/callback/", method="POST").respond_with_data("ok")
    handler = make_handler(
        secret=SECRET, callback_url=httpserver.url_for("/provisioning/callback/"), base_url="b"
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/workspaces"
        body = json.dumps({"workspace_id": "7"}).encode()
        headers = {
            "Idempotency-Key": "workspace-7",
            "Provisioning-Signature": signature_header(body, secret=SECRET),
        }
        first = requests.post(url, data=body, headers=headers, timeout=5)
        again = requests.post(url, data=body, headers=headers, timeout=5)
        forged = requests.post(url, data=body, headers={"Provisioning-Signature": "t=1,v1=00"}, timeout=5)
        assert (first.status_code, first.json()) == (202, {"id": "ws_7", "status": "provisioning"})
        assert again.json() == first.json() and forged.status_code == 400
        wait_until(lambda: httpserver.log, timeout=10)
        request, _ = httpserver.log[0]
        signature_verify(request.get_data(), request.headers["Provisioning-Signature"], secret=SECRET)
        assert json.loads(request.get_data())["status"] == "ready"
    finally:
        server.shutdown()


def test_offboarding_suspends_through_the_http_backend_and_reconcile_retries_a_failed_suspend(
    pipeline, dashboard
):
    """A full refund offboards: the dashboard service gets a signed suspend. It answers 503 while
    it is down; the client is churned, the timeline says the suspension failed, and once it is
    back the daily reconciliation (its safe repairs) asks again. A new payment resumes it."""
    suspends, down = [], [True]

    def suspend(request: Request) -> Response:
        verified(request)
        suspends.append(request.headers["Idempotency-Key"])
        return Response("{}", 503 if down[0] else 200, content_type="application/json")

    dashboard.expect_request("/api/workspaces", method="POST").respond_with_json(
        {"id": "ws_5", "url": "u", "status": "ready"}, 201
    )
    dashboard.expect_request("/api/workspaces/ws_5/suspend", method="POST").respond_with_handler(suspend)
    dashboard.expect_request("/api/workspaces/ws_5/resume", method="POST").respond_with_json({}, 200)
    checkout = pipeline.pay_and_process(email="ada@example.com")
    refund = pipeline.sandbox.refund(checkout["session"]["id"], deliver=False)
    deliver_shuffled(pipeline, undelivered(refund), seed=1)

    ada = Client.objects.get()
    assert ada.lifecycle_status == Client.LifecycleStatus.CHURNED and suspends
    assert Workspace.objects.get().status == Workspace.Status.READY
    failed = Activity.objects.filter(client=ada, summary__endswith="could not be suspended")
    assert failed.count() == len(suspends) and "503" in failed.first().detail
    down[0], tried = False, len(suspends)
    Workspace.objects.update(updated=timezone.now() - timedelta(hours=2))

    _, report = run_with_commit_hooks(reconciliation_run, days=7, fix=Fix.SAFE)
    [finding] = [f for f in report.findings if f.ref.endswith("workspaces")]
    assert finding.state == "repaired" and "should be suspended" in finding.detail
    run_queued_tasks()
    assert Workspace.objects.get().status == Workspace.Status.SUSPENDED and len(suspends) == tried + 1
    assert [f for f in reconciliation_run(days=7)[1].findings if f.ref.endswith("workspaces")] == []

    pipeline.pay_and_process(email="ada@example.com", amount=5000)
    assert Workspace.objects.get().status == Workspace.Status.READY
    assert [request.path for request, _ in dashboard.log][-1] == "/api/workspaces/ws_5/resume"
    # Every retry of the one suspension repeated its key.
    assert len(set(suspends)) == 1


def test_each_suspension_and_resumption_has_its_own_idempotency_key(pipeline, dashboard):
    """A backend that answers a repeated Idempotency-Key from its cache must still see the second
    suspension after a resume as new work."""
    dashboard.expect_request("/api/workspaces", method="POST").respond_with_json(
        {"id": "ws_6", "url": "u", "status": "ready"}, 201
    )
    dashboard.expect_request("/api/workspaces/ws_6/suspend", method="POST").respond_with_json({}, 200)
    dashboard.expect_request("/api/workspaces/ws_6/resume", method="POST").respond_with_json({}, 200)
    first = pipeline.pay_and_process(email="ada@example.com")
    deliver_shuffled(pipeline, undelivered(pipeline.sandbox.refund(first["session"]["id"], deliver=False)))
    second = pipeline.pay_and_process(email="ada@example.com", amount=5000)  # reactivates
    deliver_shuffled(pipeline, undelivered(pipeline.sandbox.refund(second["session"]["id"], deliver=False)))

    assert Workspace.objects.get().status == Workspace.Status.SUSPENDED
    calls = [(r.path.rsplit("/", 1)[-1], r.headers["Idempotency-Key"]) for r, _ in dashboard.log[1:]]
    assert [action for action, _ in calls] == ["suspend", "resume", "suspend"]
    assert len({key for _, key in calls}) == 3, calls
