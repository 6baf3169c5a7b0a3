"""The staff cockpit in a real browser: log in, find a client, read its timeline, work the queues.

Data arrives through the real pipeline (sandbox checkout, signed webhooks over HTTP to the live
server, the worker's loop); work that admin actions enqueue runs when the test calls
run_queued_tasks(), as the worker would.
"""

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from crm.models import Onboarding
from tests.factories import ServiceFactory
from tests.support.pipeline import run_queued_tasks
from tests.support.staff import STAFF_PASSWORD, staff_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("anymail_outbox"),
]


def log_in(page: Page, live_server, user, next_path: str = "/admin/") -> None:
    """Through the real admin login form."""
    page.goto(f"{live_server.url}/admin/login/?next={next_path}")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(STAFF_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#user-tools")).to_contain_text(user.username)


def run_action(page: Page, label: str, *rows: str) -> None:
    """Tick the changelist rows containing each text, choose the action, click Go."""
    for text in rows:
        page.locator("#result_list tbody tr", has_text=text).locator("input[name=_selected_action]").check()
    page.locator("select[name=action]").select_option(label=label)
    page.get_by_role("button", name="Go").click()


def find_client(page: Page, live_server, search_term: str, email: str) -> None:
    """Search the client list as staff do (Stripe ids work) and open the one result."""
    page.goto(f"{live_server.url}/admin/crm/client/")
    search = page.locator("#changelist-search input[name=q]")
    search.fill(search_term)
    search.press("Enter")
    results = page.locator("#result_list tbody tr")
    expect(results).to_have_count(1)
    results.get_by_role("link", name=email).click()
    expect(page.locator("#client-summary")).to_contain_text(email)


def timeline_lines(page: Page) -> list[str]:
    return page.locator("#timeline li").all_inner_texts()


def position(lines: list[str], text: str) -> int:
    return next(i for i, line in enumerate(lines) if text in line)


def test_operations_finds_a_client_by_payment_intent_and_approves_a_held_onboarding(
    page, live_server, live_pipeline
):
    ServiceFactory(service_id="website-care", name="Website Care Plan")
    ada = live_pipeline.pay(email="ada@example.com", name="Ada Lovelace")
    grace = live_pipeline.pay(email="grace@example.com", name="Grace Hopper", service_id="brand-new")
    run_queued_tasks()
    assert Onboarding.objects.get(customer_email="grace@example.com").status == Onboarding.Status.HELD
    assert len(mail.outbox) == 1
    operations = staff_user("Operations")

    log_in(page, live_server, operations)
    find_client(page, live_server, ada["payment_intent"], "ada@example.com")
    expect(page.locator("#client-summary")).to_contain_text("Ada Lovelace")
    lines = timeline_lines(page)
    expected = [
        "Stripe checkout.session.completed",
        "Payment of $499.00 recorded",
        "Welcome email sent to ada@example.com",
        "Workspace ready",
    ]
    positions = [position(lines, text) for text in expected]
    assert positions == sorted(positions), lines

    # The queue says why Grace is held; Operations adds the missing service, then approves.
    page.goto(f"{live_server.url}/admin/")
    page.get_by_role("link", name="Needs review").first.click()
    held_row = page.locator("#result_list tbody tr", has_text="grace@example.com")
    expect(held_row).to_contain_text("Unknown service")

    page.goto(f"{live_server.url}/admin/crm/service/add/")
    page.locator("input[name=service_id]").fill("brand-new")
    page.locator("input[name=name]").fill("Brand New Site")
    page.locator("input[name=_save]").click()
    expect(page.locator(".messagelist .success")).to_contain_text("Brand New Site")

    page.goto(f"{live_server.url}/admin/crm/heldonboarding/")
    run_action(page, "Approve and resume (with the service / email given, if any)", "grace@example.com")
    expect(page.locator(".messagelist li")).to_contain_text(f"Approved {grace['id']}: onboarding resumed.")
    expect(page.locator("#result_list")).to_have_count(0)  # the queue is empty now

    # Grace is a client now; her welcome email and workspace wait for the worker.
    find_client(page, live_server, grace["payment_intent"], "grace@example.com")
    assert not any("Welcome email sent" in line for line in timeline_lines(page))
    assert run_queued_tasks() > 0
    page.reload()
    lines = timeline_lines(page)
    approved = position(lines, "Approved; onboarding resumed")
    welcome = position(lines, "Welcome email sent to grace@example.com")
    assert approved < welcome < position(lines, "Workspace ready"), lines
    assert [message.to for message in mail.outbox] == [["ada@example.com"], ["grace@example.com"]]


def test_support_resends_a_welcome_email_but_cannot_retry_provisioning(page, live_server, live_pipeline):
    ServiceFactory(service_id="website-care", name="Website Care Plan")
    live_pipeline.pay(email="ada@example.com")
    live_pipeline.pay(email="alan@example.com", name="Alan Turing")
    run_queued_tasks()
    assert len(mail.outbox) == 2
    support = staff_user("Support")

    log_in(page, live_server, support, next_path="/admin/crm/client/")
    actions = page.locator("select[name=action] option").all_inner_texts()
    assert "Resend welcome email (fresh link)" in actions
    assert "Retry workspace provisioning" not in actions

    run_action(page, "Resend welcome email (fresh link)", "ada@example.com")
    expect(page.locator(".messagelist .success")).to_have_text("Welcome emails queued: 1 of 1.")

    assert run_queued_tasks() > 0
    assert [message.to for message in mail.outbox[2:]] == [["ada@example.com"]]


def test_dashboard_draws_weekly_revenue_bars_per_service(page, live_server, live_pipeline):
    ServiceFactory(service_id="website-care", name="Website Care Plan")
    ServiceFactory(service_id="seo-audit", name="SEO Audit")
    live_pipeline.pay(email="ada@example.com", amount=49900)
    live_pipeline.pay(email="alan@example.com", amount=19900)
    live_pipeline.pay(email="grace@example.com", service_id="seo-audit", amount=29900)
    run_queued_tasks()

    log_in(page, live_server, staff_user("Operations"))
    chart = page.locator("#revenue-chart")
    expect(chart).to_be_visible()
    # This week's stacked bar: one segment per service that earned in it.
    bars = chart.locator("svg rect.bar")
    expect(bars).to_have_count(2)
    for bar in bars.all():
        expect(bar).to_be_visible()
        assert float(bar.get_attribute("height")) > 0
    expect(chart.locator(".chart-legend")).to_contain_text("Website Care Plan")
    expect(chart.locator(".chart-legend")).to_contain_text("SEO Audit")
    page.screenshot(path="/tmp/dashboard.png", full_page=True)
