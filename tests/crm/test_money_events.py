"""Each money event type of the money issue on its own, on PostgreSQL.

A history is built in the sandbox (a refund, a dispute, a renewal, a cancellation, ...), but of its
later money events only those of one type are delivered: each of them twice, before the payment they
belong to (the worker runs in between), then the checkout's own events twice, shuffled. So every type
must carry its movement by itself; a test fails as soon as that type's handling breaks, which the
tests that deliver whole histories cannot show (a sibling event, or the settle task's read of Stripe,
would cover for it). At the end the client's money equals the sandbox's own ledger.
"""

import pytest
from django.core import mail

from crm.models import Client, MoneyMovement, Onboarding
from provisioning.models import Workspace
from tests.factories import ServiceFactory
from tests.support.money import DAY, T0, assert_matches_sandbox, deliver_shuffled

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("anymail_outbox")]

Kind = MoneyMovement.Kind
Life = Client.LifecycleStatus
PRICE = 10000


def refunded(sandbox, charge):
    return sandbox.refund(charge, amount=2500, created=T0 + DAY, deliver=False)["events"]


def refund_failed_later(sandbox, charge):
    refund = sandbox.refund(charge, amount=2500, created=T0 + DAY, deliver=False)
    later = sandbox.fail_refund(refund["refund"]["id"], created=T0 + 2 * DAY, deliver=False)
    return refund["events"] + later["events"]


def dispute(outcome):
    def history(sandbox, charge):
        closed = T0 + 9 * DAY if outcome else None
        return sandbox.dispute(charge, outcome=outcome, created=T0 + DAY, closed=closed, deliver=False)[
            "events"
        ]

    return history


def renewed(sandbox, subscription):
    return sandbox.renew_subscription(subscription, created=T0 + 31 * DAY, deliver=False)["events"]


def renewal_declined(sandbox, subscription):
    return sandbox.renew_subscription(subscription, fail=True, created=T0 + 31 * DAY, deliver=False)["events"]


def cancelled(sandbox, subscription):
    return sandbox.cancel_subscription(subscription, created=T0 + 5 * DAY, deliver=False)["events"]


REFUNDED, REFUND_FAILED = (Kind.REFUND, "succeeded"), (Kind.REFUND, "failed")
OPEN, LOST, WON = (Kind.DISPUTE, "needs_response"), (Kind.DISPUTE, "lost"), (Kind.DISPUTE, "won")
RENEWED, PAST_DUE = (Kind.PAYMENT, "paid"), (Kind.PAYMENT, "payment_failed")
PAY, SUB = "payment", "subscription"

# case: (history, the one event type delivered, checkout mode, invoiced_value, lifecycle, its movement)
CASES = {
    "charge.refunded": (refunded, "charge.refunded", PAY, 7500, Life.ACTIVE, REFUNDED),
    "refund.created": (refunded, "refund.created", PAY, 7500, Life.ACTIVE, REFUNDED),
    "refund.updated": (refunded, "refund.updated", PAY, 7500, Life.ACTIVE, REFUNDED),
    "refund.updated (failed)": (
        refund_failed_later, "refund.updated", PAY, PRICE, Life.ACTIVE, REFUND_FAILED,
    ),
    "refund.failed": (refund_failed_later, "refund.failed", PAY, PRICE, Life.ACTIVE, REFUND_FAILED),
    "charge.refunded (failed later)": (
        refund_failed_later, "charge.refunded", PAY, PRICE, Life.ACTIVE, REFUND_FAILED,
    ),
    "charge.dispute.created (open)": (
        dispute(None), "charge.dispute.created", PAY, PRICE, Life.AT_RISK, OPEN,
    ),
    "charge.dispute.funds_withdrawn (open)": (
        dispute(None), "charge.dispute.funds_withdrawn", PAY, PRICE, Life.AT_RISK, OPEN,
    ),
    "charge.dispute.created (lost)": (dispute("lost"), "charge.dispute.created", PAY, 0, Life.CHURNED, LOST),
    "charge.dispute.funds_withdrawn (lost)": (
        dispute("lost"), "charge.dispute.funds_withdrawn", PAY, 0, Life.CHURNED, LOST,
    ),
    "charge.dispute.closed (lost)": (dispute("lost"), "charge.dispute.closed", PAY, 0, Life.CHURNED, LOST),
    "charge.dispute.funds_reinstated (won)": (
        dispute("won"), "charge.dispute.funds_reinstated", PAY, PRICE, Life.ACTIVE, WON,
    ),
    "charge.dispute.closed (won)": (dispute("won"), "charge.dispute.closed", PAY, PRICE, Life.ACTIVE, WON),
    "invoice.paid (renewal)": (renewed, "invoice.paid", SUB, 2 * PRICE, Life.ACTIVE, RENEWED),
    "invoice.payment_failed (renewal)": (
        renewal_declined, "invoice.payment_failed", SUB, PRICE, Life.AT_RISK, PAST_DUE,
    ),
    "customer.subscription.deleted": (
        cancelled, "customer.subscription.deleted", SUB, PRICE, Life.CHURNED, (Kind.CANCELLATION, "canceled"),
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_each_money_event_type_alone_delivered_twice_before_its_payment(pipeline, case):
    history, event_type, mode, value, status, (kind, movement_status) = CASES[case]
    ServiceFactory(service_id="retainer", name="Monthly retainer")
    sandbox = pipeline.sandbox
    checkout = pipeline.checkout(service_id="retainer", amount=PRICE, currency="usd", mode=mode, created=T0)
    session = checkout["session"]
    later = history(sandbox, session["subscription"] if mode == "subscription" else session["id"])
    only = [e for e in later if sandbox.store.get("event", e)["type"] == event_type]
    assert only, f"{event_type} is not in the history"

    deliver_shuffled(pipeline, only, seed=1)  # twice, before the checkout that made the payment
    deliver_shuffled(pipeline, [event["id"] for event in checkout["events"]], seed=2)

    client = Client.objects.get()
    assert (client.invoiced_value, client.lifecycle_status) == (value, status), client.lifecycle_reason
    first_payment = session["invoice"] or session["id"]
    later_movements = MoneyMovement.objects.filter(client=client, kind=kind).exclude(stripe_id=first_payment)
    assert list(later_movements.values_list("status", flat=True)) == [movement_status]
    assert MoneyMovement.objects.filter(client__isnull=True).count() == 0
    assert Onboarding.objects.get().status == Onboarding.Status.ONBOARDED and len(mail.outbox) == 1
    workspace = Workspace.objects.get(client=client)
    suspended = status == Life.CHURNED
    assert workspace.status == (Workspace.Status.SUSPENDED if suspended else Workspace.Status.READY)
    assert_matches_sandbox(sandbox)
