"""The client page shows Stripe's ledger; staff offboard, reactivate and keep active from the admin."""

import re

import pytest

from crm.models import Client
from provisioning.models import Workspace
from tests.support.money import DAY, T0, deliver_shuffled, undelivered
from tests.support.pipeline import run_with_commit_hooks
from tests.support.staff import staff_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("service", "anymail_outbox")]

Life = Client.LifecycleStatus


def paid_then_partly_refunded(pipeline):
    checkout = pipeline.checkout(amount=10000, currency="usd", created=T0)
    events = [event["id"] for event in checkout["events"]]
    events += undelivered(
        pipeline.sandbox.refund(checkout["session"]["id"], 2500, created=T0 + DAY, deliver=False)
    )
    deliver_shuffled(pipeline, events, seed=5)
    return Client.objects.get()


def test_client_page_shows_the_ledger_per_currency_totals_and_settlement(pipeline, client):
    ada = paid_then_partly_refunded(pipeline)
    client.force_login(staff_user("Support"))
    page = client.get(f"/admin/crm/client/{ada.id}/change/").content.decode()

    ledger = page[page.index('id="ledger"') : page.index('id="timeline"')]
    assert "Payment" in ledger and "Refund" in ledger and "$100.00" in ledger and "$25.00" in ledger
    totals = ledger[ledger.index('id="ledger-totals"') :]
    assert re.search(r"USD</td><td>\$100.00</td><td>\$25.00</td><td>\$0.00</td><td>\$75.00", totals), totals
    assert 'id="settlement-total"' in totals and "$" in totals.split('id="settlement-total"')[1]
    assert "Active" in page[page.index('id="client-lifecycle"') :][:200]


def actions(client, name, ids):
    data = {"action": name, "_selected_action": [str(i) for i in ids]}
    return run_with_commit_hooks(client.post, "/admin/crm/client/", data, follow=True)


def test_operations_offboard_and_reactivate_a_client_from_the_admin(pipeline, client):
    ada = paid_then_partly_refunded(pipeline)
    client.force_login(staff_user("Operations"))

    actions(client, "offboard", [ada.id])
    pipeline.work()
    ada.refresh_from_db()
    assert ada.lifecycle_status == Life.CHURNED
    assert Workspace.objects.get(client=ada).status == Workspace.Status.SUSPENDED
    churned = client.get("/admin/crm/client/", {"lifecycle_status__exact": "churned"}).content.decode()
    assert ada.email in churned

    actions(client, "reactivate", [ada.id])
    pipeline.work()
    ada.refresh_from_db()
    assert ada.lifecycle_status == Life.ACTIVE
    assert Workspace.objects.get(client=ada).status == Workspace.Status.READY
    active = client.get("/admin/crm/client/", {"lifecycle_status__exact": "churned"}).content.decode()
    assert ada.email not in active


def test_support_cannot_offboard(pipeline, client):
    ada = paid_then_partly_refunded(pipeline)
    client.force_login(staff_user("Support"))
    listing = client.get("/admin/crm/client/").content.decode()
    assert 'value="offboard"' not in listing and 'value="keep_active"' not in listing
    actions(client, "offboard", [ada.id])
    ada.refresh_from_db()
    assert ada.lifecycle_status == Life.ACTIVE


def test_keep_active_survives_a_full_refund(pipeline, client):
    ada = paid_then_partly_refunded(pipeline)
    client.force_login(staff_user("Operations"))
    actions(client, "keep_active", [ada.id])
    payment = ada.money_movements.get(kind="payment")
    deliver_shuffled(
        pipeline,
        undelivered(
            pipeline.sandbox.refund(payment.checkout_session_id, 7500, created=T0 + 2 * DAY, deliver=False)
        ),
        seed=6,
    )
    ada.refresh_from_db()
    assert (ada.lifecycle_status, ada.invoiced_value) == (Life.ACTIVE, 0)
    assert Workspace.objects.get(client=ada).status == Workspace.Status.READY
