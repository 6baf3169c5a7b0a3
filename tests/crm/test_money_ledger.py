"""The ledger: every money movement once, whatever the order and repetition of Stripe's deliveries,
and the client's value equal to the sandbox's own ledger (Stripe's truth)."""

import pytest

from crm.models import Activity, Client, MoneyMovement, Onboarding, Payment
from tests.support.money import DAY, T0, assert_matches_sandbox, crm_money, deliver_shuffled, undelivered

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("anymail_outbox")]

Kind = MoneyMovement.Kind


@pytest.mark.parametrize("seed", [1, 2])
def test_payment_refunds_and_failed_refund_delivered_twice_shuffled_match_the_sandbox(
    pipeline, service, seed
):
    sandbox = pipeline.sandbox
    checkout = pipeline.checkout(amount=10000, currency="usd", created=T0)
    session_id = checkout["session"]["id"]
    events = [event["id"] for event in checkout["events"]]
    events += undelivered(sandbox.refund(session_id, amount=2500, created=T0 + DAY, deliver=False))
    events += undelivered(sandbox.refund(session_id, amount=1000, created=T0 + 2 * DAY, deliver=False))
    events += undelivered(
        sandbox.refund(session_id, amount=500, fail=True, created=T0 + 3 * DAY, deliver=False)
    )

    deliver_shuffled(pipeline, events, seed=seed)

    ada = Client.objects.get()
    assert ada.invoiced_value == 10000 - 2500 - 1000
    assert MoneyMovement.objects.filter(kind=Kind.PAYMENT).count() == 1
    assert MoneyMovement.objects.filter(kind=Kind.REFUND).count() == 3
    assert MoneyMovement.objects.get(kind=Kind.REFUND, status="failed").counts is False
    payment = MoneyMovement.objects.get(kind=Kind.PAYMENT)
    assert payment.payment == Payment.objects.get() and payment.stripe_id == session_id
    assert payment.charge_id.startswith("ch_") and payment.settlement_net is not None
    assert Onboarding.objects.get().status == Onboarding.Status.ONBOARDED
    assert_matches_sandbox(sandbox)
    assert ada.lifecycle_status == Client.LifecycleStatus.ACTIVE  # partial refunds do not offboard


def test_refund_that_fails_after_succeeding_restores_the_value(pipeline, service):
    sandbox = pipeline.sandbox
    checkout = pipeline.checkout(amount=8000, currency="usd", created=T0)
    events = [event["id"] for event in checkout["events"]]
    refund = sandbox.refund(checkout["session"]["id"], amount=3000, created=T0 + DAY, deliver=False)
    events += undelivered(refund)
    events += undelivered(sandbox.fail_refund(refund["refund"]["id"], created=T0 + 2 * DAY, deliver=False))

    deliver_shuffled(pipeline, events, seed=3)

    assert Client.objects.get().invoiced_value == 8000
    assert_matches_sandbox(sandbox)


@pytest.mark.parametrize("outcome", ["won", "lost"])
def test_dispute_lost_deducts_won_does_not(pipeline, service, outcome):
    sandbox = pipeline.sandbox
    checkout = pipeline.checkout(amount=6000, currency="usd", created=T0)
    events = [event["id"] for event in checkout["events"]]
    events += undelivered(
        sandbox.dispute(
            checkout["session"]["id"], outcome=outcome, created=T0 + DAY, closed=T0 + 9 * DAY, deliver=False
        )
    )

    deliver_shuffled(pipeline, events, seed=4)

    ada = Client.objects.get()
    assert ada.invoiced_value == (0 if outcome == "lost" else 6000)
    dispute = MoneyMovement.objects.get(kind=Kind.DISPUTE)
    assert dispute.status == outcome and dispute.settlement_transactions == (1 if outcome == "lost" else 2)
    assert_matches_sandbox(sandbox)


def test_open_dispute_puts_the_client_at_risk(pipeline, service):
    sandbox = pipeline.sandbox
    checkout = pipeline.checkout(amount=6000, currency="usd", created=T0)
    events = [event["id"] for event in checkout["events"]]
    events += undelivered(sandbox.dispute(checkout["session"]["id"], created=T0 + DAY, deliver=False))

    deliver_shuffled(pipeline, events, seed=5)

    ada = Client.objects.get()
    assert ada.lifecycle_status == Client.LifecycleStatus.AT_RISK and "dispute" in ada.lifecycle_reason
    assert ada.invoiced_value == 6000
    assert_matches_sandbox(sandbox)


def test_second_currency_is_its_own_column_and_not_held(pipeline, service):
    sandbox = pipeline.sandbox
    first = pipeline.checkout(amount=10000, currency="usd", created=T0)
    second = pipeline.checkout(amount=9000, currency="eur", created=T0 + DAY)
    events = [event["id"] for event in first["events"] + second["events"]]
    events += undelivered(
        sandbox.refund(second["session"]["id"], amount=4000, created=T0 + 2 * DAY, deliver=False)
    )

    deliver_shuffled(pipeline, events, seed=6)

    assert not Onboarding.objects.filter(status=Onboarding.Status.HELD).exists()
    money = crm_money("ada@example.com")
    assert money["first_currency"] == "usd" and money["invoiced_value"] == 10000
    assert money["currencies"]["eur"] == {"paid": 9000, "refunded": 4000, "disputed": 0, "net": 5000}
    assert_matches_sandbox(sandbox)


def test_timeline_records_refunds_once(pipeline, service):
    sandbox = pipeline.sandbox
    checkout = pipeline.checkout(amount=10000, currency="usd", created=T0)
    events = [event["id"] for event in checkout["events"]]
    events += undelivered(
        sandbox.refund(checkout["session"]["id"], amount=2500, created=T0 + DAY, deliver=False)
    )
    deliver_shuffled(pipeline, events, seed=7)
    summaries = list(Activity.objects.filter(kind="payment").values_list("summary", flat=True))
    assert summaries.count("Payment of $100.00 recorded") == 1
    assert summaries.count("Refund of $25.00 succeeded") == 1
