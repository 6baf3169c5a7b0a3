"""The client page's ledger and an offboard / reactivate round trip, in a real browser.

Money arrives through the real pipeline: the sandbox builds a history (two currencies, a partial
refund, a lost dispute), its signed events go over HTTP to the live server, the worker's loop runs.
"""

import json

import pytest
import requests
from playwright.sync_api import expect

from crm.models import Client
from provisioning.models import Workspace
from stripe_sandbox.signing import sign_payload
from tests.e2e.test_cockpit import find_client, log_in, run_action
from tests.factories import ServiceFactory
from tests.support.money import DAY, T0
from tests.support.pipeline import WEBHOOK_SECRET, run_queued_tasks
from tests.support.staff import staff_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("anymail_outbox"),
]

EMAIL = "ada@example.com"


def deliver(live_pipeline, result: dict) -> None:
    for event_id in result["events"]:
        body = json.dumps(live_pipeline.sandbox.store.get("event", event_id))
        headers = {"Stripe-Signature": sign_payload(body, WEBHOOK_SECRET), "Content-Type": "application/json"}
        response = requests.post(live_pipeline.endpoint.url, data=body, headers=headers, timeout=30)
        assert response.status_code == 200, response.text


def money_history(live_pipeline) -> None:
    """$100 paid, $25 refunded; then €50 paid and lost in a dispute."""
    sandbox = live_pipeline.sandbox
    ServiceFactory(service_id="website-care", name="Website Care Plan")
    usd = live_pipeline.pay(email=EMAIL, name="Ada Lovelace", amount=10000, currency="usd", created=T0)
    run_queued_tasks()
    deliver(live_pipeline, sandbox.refund(usd["id"], 2500, created=T0 + DAY, deliver=False))
    eur = sandbox.create_checkout(
        email=EMAIL, name="Ada Lovelace", service_id="website-care", amount=5000, currency="eur",
        created=T0 + 2 * DAY, deliver=False,
    )  # fmt: skip
    deliver(live_pipeline, eur)
    deliver(
        live_pipeline,
        sandbox.dispute(eur["session"]["id"], outcome="lost", created=T0 + 3 * DAY, deliver=False),
    )
    run_queued_tasks(max_rounds=200)


def test_client_page_shows_payments_refunds_disputes_per_currency_and_settlement(
    page, live_server, live_pipeline
):
    money_history(live_pipeline)
    log_in(page, live_server, staff_user("Support"))
    find_client(page, live_server, EMAIL, EMAIL)

    ledger = page.locator("#ledger")
    rows = ledger.locator("table").first.locator("tbody tr")
    expect(rows.filter(has_text="Payment")).to_have_count(2)
    expect(rows.filter(has_text="Refund")).to_contain_text("$25.00")
    expect(rows.filter(has_text="Dispute")).to_contain_text("€50.00")
    totals = page.locator("#ledger-totals tbody tr")
    cells = totals.filter(has_text="USD").locator("td")
    expect(cells).to_have_text(["USD", "$100.00", "$25.00", "$0.00", "$75.00"])
    cells = totals.filter(has_text="EUR").locator("td")
    expect(cells).to_have_text(["EUR", "€50.00", "€0.00", "€50.00", "€0.00"])
    settled = page.locator("#settlement-total")
    expect(settled).to_contain_text("fees")
    expect(settled).not_to_contain_text("not settled yet")
    assert page.locator("#settlement-total td").last.inner_text().strip() not in ("", "—")


def test_operations_offboard_then_reactivate_from_the_admin(page, live_server, live_pipeline):
    ServiceFactory(service_id="website-care", name="Website Care Plan")
    live_pipeline.pay(email=EMAIL, name="Ada Lovelace", amount=10000, currency="usd", created=T0)
    run_queued_tasks()
    ada = Client.objects.get(email=EMAIL)
    assert Workspace.objects.get(client=ada).status == Workspace.Status.READY
    log_in(page, live_server, staff_user("Operations"))

    page.goto(f"{live_server.url}/admin/crm/client/")
    run_action(page, "Offboard (suspend their workspaces)", EMAIL)
    expect(page.locator(".messagelist")).to_be_visible()
    run_queued_tasks()
    assert Workspace.objects.get(client=ada).status == Workspace.Status.SUSPENDED
    find_client(page, live_server, EMAIL, EMAIL)
    status = page.locator("#client-lifecycle")
    expect(status).to_contain_text("Churned")
    expect(status.locator(".detail")).not_to_be_empty()
    page.goto(f"{live_server.url}/admin/crm/client/?lifecycle_status__exact=churned")
    expect(page.locator("#result_list tbody tr", has_text=EMAIL)).to_have_count(1)

    run_action(page, "Reactivate (resume their workspaces)", EMAIL)
    expect(page.locator(".messagelist")).to_be_visible()
    run_queued_tasks()
    assert Workspace.objects.get(client=ada).status == Workspace.Status.READY
    find_client(page, live_server, EMAIL, EMAIL)
    expect(page.locator("#client-lifecycle")).to_contain_text("Active")
