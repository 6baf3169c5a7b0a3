"""Offboarding and reactivation: a cancelled subscription, a full refund or a lost dispute suspends
the service's workspace; a new payment resumes it; staff can offboard, reactivate, keep active."""

import pytest
from django_q.models import Schedule

from crm.models import Activity, Client, Onboarding
from crm.services.lifecycle import client_keep_active, client_offboard, client_reactivate
from crm.services.onboarding import WORKSPACE_TASK
from provisioning.models import Workspace
from tests.support.money import DAY, T0, assert_matches_sandbox, deliver_shuffled, undelivered, work_all

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("anymail_outbox")]

Life = Client.LifecycleStatus
WS = Workspace.Status


def events_of(checkout) -> list[str]:
    return [event["id"] for event in checkout["events"]]


def lifecycle(email="ada@example.com"):
    client = Client.objects.get(email=email)
    return client.lifecycle_status, Workspace.objects.get(client=client).status


@pytest.mark.parametrize("seed", [1, 2])
def test_cancelled_subscription_offboards_and_a_new_checkout_reactivates(pipeline, retainer, seed):
    sandbox = pipeline.sandbox
    checkout = pipeline.checkout(
        service_id="retainer", amount=50000, currency="eur", mode="subscription", created=T0
    )
    events = events_of(checkout)
    events += undelivered(
        sandbox.cancel_subscription(checkout["session"]["subscription"], created=T0 + 5 * DAY, deliver=False)
    )

    deliver_shuffled(pipeline, events, seed=seed)

    assert lifecycle() == (Life.CHURNED, WS.SUSPENDED)
    client = Client.objects.get()
    assert "cancelled" in client.lifecycle_reason
    summaries = set(Activity.objects.filter(client=client).values_list("summary", flat=True))
    assert {
        "Subscription cancelled",
        "Client churned",
        "Workspace for Monthly retainer suspended",
    } <= summaries

    again = pipeline.checkout(
        service_id="retainer", amount=50000, currency="eur", mode="subscription", created=T0 + 9 * DAY
    )
    deliver_shuffled(pipeline, events_of(again), seed=seed)
    assert lifecycle() == (Life.ACTIVE, WS.READY)
    assert Activity.objects.filter(client=client, summary="Workspace for Monthly retainer resumed").exists()
    assert_matches_sandbox(sandbox)


def test_full_refund_offboards_and_the_portal_shows_the_workspace_suspended(pipeline, service, client):
    sandbox = pipeline.sandbox
    checkout = pipeline.checkout(amount=10000, currency="usd", created=T0)
    events = events_of(checkout)
    events += undelivered(
        sandbox.refund(checkout["session"]["id"], amount=4000, created=T0 + DAY, deliver=False)
    )
    events += undelivered(sandbox.refund(checkout["session"]["id"], created=T0 + 2 * DAY, deliver=False))

    deliver_shuffled(pipeline, events, seed=3)

    assert lifecycle() == (Life.CHURNED, WS.SUSPENDED)
    ada = Client.objects.get()
    assert ada.invoiced_value == 0 and "fully refunded" in ada.lifecycle_reason
    assert_matches_sandbox(sandbox)
    client.force_login(ada.user)
    assert "Suspended" in client.get("/portal/").content.decode()
    workspace = Workspace.objects.get()
    assert "suspended" in client.get(f"/portal/workspaces/{workspace.id}/").content.decode()


def test_lost_dispute_offboards(pipeline, service):
    sandbox = pipeline.sandbox
    checkout = pipeline.checkout(amount=10000, currency="usd", created=T0)
    events = events_of(checkout)
    events += undelivered(
        sandbox.dispute(checkout["session"]["id"], outcome="lost", created=T0 + DAY, deliver=False)
    )
    deliver_shuffled(pipeline, events, seed=4)
    assert lifecycle() == (Life.CHURNED, WS.SUSPENDED)
    assert "lost" in Client.objects.get().lifecycle_reason


def test_kept_active_client_is_not_offboarded_by_a_full_refund(pipeline, service):
    sandbox = pipeline.sandbox
    pipeline.pay_and_process(amount=10000, currency="usd", created=T0)
    ada = Client.objects.get()
    client_keep_active(client_id=ada.id)
    refund = sandbox.refund(
        pipeline.sandbox.store.all("checkout.session")[0]["id"], created=T0 + DAY, deliver=False
    )
    deliver_shuffled(pipeline, undelivered(refund), seed=5)
    assert lifecycle() == (Life.ACTIVE, WS.READY)
    assert Client.objects.get().invoiced_value == 0


def test_staff_offboard_and_reactivate_by_hand(pipeline, service):
    pipeline.pay_and_process(amount=10000, currency="usd", created=T0)
    ada = Client.objects.get()

    client_offboard(client_id=ada.id, reason="Asked to leave")
    pipeline.work()
    assert lifecycle() == (Life.CHURNED, WS.SUSPENDED)

    client_reactivate(client_id=ada.id)
    pipeline.work()
    assert lifecycle() == (Life.ACTIVE, WS.READY)
    staff_lines = Activity.objects.filter(client=ada, kind="staff").values_list("summary", flat=True)
    assert list(staff_lines) == ["Offboarded by staff", "Reactivated by staff"]


def test_new_payment_reactivates_a_client_staff_offboarded(pipeline, service):
    pipeline.pay_and_process(amount=10000, currency="usd", created=T0)
    ada = Client.objects.get()
    client_offboard(client_id=ada.id)
    pipeline.work()
    pipeline.pay_and_process(amount=5000, currency="usd", created=T0 + DAY)
    assert lifecycle() == (Life.ACTIVE, WS.READY)


def test_staff_reactivation_after_a_full_refund_keeps_the_client_active(pipeline, service):
    sandbox = pipeline.sandbox
    checkout = pipeline.pay_and_process(amount=10000, currency="usd", created=T0)
    deliver_shuffled(
        pipeline, undelivered(sandbox.refund(checkout["session"]["id"], created=T0 + DAY, deliver=False))
    )
    assert lifecycle() == (Life.CHURNED, WS.SUSPENDED)
    client_reactivate(client_id=Client.objects.get().id)
    pipeline.work()
    assert lifecycle() == (Life.ACTIVE, WS.READY)
    assert Client.objects.get().keep_active


@pytest.fixture
def alert_channel(settings):
    settings.STAFF_ALERT_EMAILS, settings.SLACK_WEBHOOK_URL = ["ops@agency.example"], ""


@pytest.mark.usefixtures("alert_channel")
def test_an_open_dispute_then_its_loss_alert_staff_once_each(pipeline, service):
    from crm.models import StaffAlert

    sandbox = pipeline.sandbox
    checkout = pipeline.checkout(amount=10000, currency="usd", created=T0)
    deliver_shuffled(pipeline, events_of(checkout), seed=1)
    dispute = sandbox.dispute(checkout["session"]["id"], created=T0 + DAY, deliver=False)
    deliver_shuffled(pipeline, undelivered(dispute), seed=2)  # opened (each event delivered twice)
    assert list(StaffAlert.objects.values_list("kind", flat=True)) == [StaffAlert.Kind.DISPUTE_OPENED]

    closed = sandbox.close_dispute(dispute["dispute"]["id"], "lost", created=T0 + 2 * DAY, deliver=False)
    deliver_shuffled(pipeline, undelivered(closed), seed=3)
    kinds = list(StaffAlert.objects.order_by("id").values_list("kind", flat=True))
    assert kinds == [StaffAlert.Kind.DISPUTE_OPENED, StaffAlert.Kind.CLIENT_CHURNED]
    client = Client.objects.get()
    assert StaffAlert.objects.last().url.endswith(f"/admin/crm/client/{client.id}/change/")


@pytest.mark.usefixtures("alert_channel")
def test_staff_offboarding_does_not_alert_staff(pipeline, service):
    from crm.models import StaffAlert

    checkout = pipeline.checkout(amount=10000, currency="usd", created=T0)
    deliver_shuffled(pipeline, events_of(checkout), seed=1)
    client_offboard(client_id=Client.objects.get().id, actor=None, reason="asked to stop")
    assert not StaffAlert.objects.exists()


def test_an_onboarding_whose_payment_was_refunded_before_its_workspace_step_finishes_suspended(
    pipeline, service
):
    """Found by bench/ledger_truth.py: a returning client's refund is processed before the
    checkout that onboards the refunded payment, so its workspace step meets the workspace already
    suspended (the service has ended). The step is done (the workspace exists; whether it runs is
    the client's lifecycle's business) instead of waiting a day for a provisioning nobody does."""
    sandbox = pipeline.sandbox
    first = pipeline.checkout(amount=10000, currency="usd", created=T0)
    events = events_of(first) + undelivered(
        sandbox.refund(first["session"]["id"], created=T0 + DAY, deliver=False)
    )
    deliver_shuffled(pipeline, events, seed=5)
    assert lifecycle() == (Life.CHURNED, WS.SUSPENDED)

    again = pipeline.checkout(amount=7000, currency="usd", created=T0 + 5 * DAY)
    refunded = undelivered(sandbox.refund(again["session"]["id"], created=T0 + 6 * DAY, deliver=False))
    for event_id in [*refunded, *events_of(again)]:  # the refund's events first, the checkout last
        assert pipeline.deliver(sandbox.store.get("event", event_id)).status_code == 200
    work_all()

    onboarding = Onboarding.objects.get(checkout_session_id=again["session"]["id"])
    assert (onboarding.status, onboarding.workspace_status) == ("onboarded", "done")
    assert lifecycle() == (Life.CHURNED, WS.SUSPENDED)
    assert not Schedule.objects.filter(func=WORKSPACE_TASK).exists()  # no retry waiting
    assert_matches_sandbox(sandbox)
