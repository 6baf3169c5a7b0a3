"""Refunds (partial, repeated, full, failed) and disputes (won, lost): objects, events and balances."""

import pytest
import stripe

from stripe_sandbox.refund_flow import RefundError
from tests.stripe_sandbox.helpers import API_KEY, event_objects, event_types

DAY = 86400
START = 1_767_225_600  # 2026-01-01 00:00 UTC


@pytest.fixture
def charge(sandbox):
    session = sandbox.create_checkout(
        email="ada@example.com", name="Ada", service_id="s", amount=10000, currency="eur", created=START
    )["session"]
    return sandbox.find_charge(session["id"])["id"]


def test_partial_then_repeated_then_full_refunds_keep_amount_refunded_right(sandbox, charge):
    first = sandbox.refund(charge, 2500, created=START + DAY)
    assert event_types(sandbox, first["events"]) == ["charge.refunded", "refund.created", "refund.updated"]
    charge_snapshot, refund_snapshot, _ = event_objects(sandbox, first["events"])
    assert charge_snapshot["amount_refunded"] == 2500 and charge_snapshot["refunded"] is False
    assert refund_snapshot["status"] == "succeeded" and refund_snapshot["amount"] == 2500
    assert refund_snapshot["charge"] == charge and refund_snapshot["payment_intent"].startswith("pi_")
    sandbox.refund(charge, 2500, created=START + 2 * DAY)
    last = sandbox.refund(charge, created=START + 3 * DAY)  # the rest
    assert last["refund"]["amount"] == 5000
    final = stripe.Charge.retrieve(charge, api_key=API_KEY)
    assert final.amount_refunded == 10000 and final.refunded is True
    assert [r.amount for r in final.refunds.data] == [5000, 2500, 2500]
    assert [r.amount for r in stripe.Refund.list(charge=charge, api_key=API_KEY).data] == [5000, 2500, 2500]
    with pytest.raises(RefundError) as error:
        sandbox.refund(charge, 1)
    assert error.value.code == "charge_already_refunded"


def test_refund_larger_than_what_is_left_is_refused_before_anything_changes(sandbox, charge):
    sandbox.refund(charge, 9000)
    with pytest.raises(RefundError, match=r"greater than unrefunded amount on charge \(1000\)"):
        sandbox.refund(charge, 1001)
    assert stripe.Charge.retrieve(charge, api_key=API_KEY).amount_refunded == 9000
    assert len(stripe.Refund.list(api_key=API_KEY).data) == 1


def test_failed_refund_is_counted_then_given_back(sandbox, charge):
    result = sandbox.refund(charge, 4000, fail=True, created=START + DAY)
    assert event_types(sandbox, result["events"]) == [
        "charge.refunded",
        "refund.created",
        "refund.updated",
        "refund.failed",
    ]
    charge_snapshot, created, updated, failed = event_objects(sandbox, result["events"])
    assert charge_snapshot["amount_refunded"] == 4000  # as Stripe shows it while the refund is pending
    assert created["status"] == "pending" and updated["status"] == failed["status"] == "failed"
    assert failed["failure_reason"] == "expired_or_canceled_card"
    refund = stripe.Refund.retrieve(
        result["refund"]["id"], expand=["balance_transaction", "failure_balance_transaction"], api_key=API_KEY
    )
    assert refund.balance_transaction.type == "refund" and refund.balance_transaction.amount < 0
    assert refund.failure_balance_transaction.type == "refund_failure"
    assert (
        refund.failure_balance_transaction.amount == -refund.balance_transaction.amount
    )  # same day, same rate
    assert stripe.Charge.retrieve(charge, api_key=API_KEY).amount_refunded == 0


def test_a_succeeded_refund_can_fail_later(sandbox, charge):
    refund = sandbox.refund(charge, 3000, created=START + DAY)["refund"]
    later = sandbox.fail_refund(refund["id"], created=START + 5 * DAY)
    assert event_types(sandbox, later["events"]) == ["refund.updated", "refund.failed"]
    assert later["charge"]["amount_refunded"] == 0 and later["refund"]["status"] == "failed"
    with pytest.raises(ValueError, match="already failed"):
        sandbox.fail_refund(refund["id"])


def test_post_refunds_through_stripe_python(sandbox, charge):
    refund = stripe.Refund.create(charge=charge, amount=1500, reason="requested_by_customer", api_key=API_KEY)
    assert refund.status == "succeeded" and refund.amount == 1500 and refund.reason == "requested_by_customer"
    intent = stripe.Charge.retrieve(charge, api_key=API_KEY).payment_intent
    rest = stripe.Refund.create(payment_intent=intent, api_key=API_KEY)
    assert rest.amount == 8500
    with pytest.raises(stripe.InvalidRequestError) as error:
        stripe.Refund.create(charge=charge, amount=1, api_key=API_KEY)
    assert error.value.code == "charge_already_refunded" and error.value.http_status == 400


def test_dispute_lost(sandbox, charge):
    result = sandbox.dispute(charge, outcome="lost", created=START + 10 * DAY, closed=START + 40 * DAY)
    assert event_types(sandbox, result["events"]) == [
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.closed",
    ]
    created, withdrawn, closed = event_objects(sandbox, result["events"])
    assert created["status"] == "needs_response" and created["balance_transactions"] == []
    assert [t["amount"] < 0 for t in withdrawn["balance_transactions"]] == [True]
    assert withdrawn["balance_transactions"][0]["fee"] == 1500
    assert closed["status"] == "lost" and closed["amount"] == 10000
    assert stripe.Charge.retrieve(charge, api_key=API_KEY).disputed is True
    with pytest.raises(RefundError) as error:
        sandbox.refund(charge, 100)
    assert error.value.code == "charge_disputed"


def test_dispute_opened_then_won(sandbox, charge):
    opened = sandbox.dispute(charge, created=START + 10 * DAY)
    assert opened["dispute"]["status"] == "needs_response"
    dispute_id = opened["dispute"]["id"]
    assert [d.id for d in stripe.Dispute.list(charge=charge, api_key=API_KEY).data] == [dispute_id]
    won = sandbox.close_dispute(dispute_id, "won", created=START + 40 * DAY)
    assert event_types(sandbox, won["events"]) == ["charge.dispute.funds_reinstated", "charge.dispute.closed"]
    dispute = stripe.Dispute.retrieve(dispute_id, api_key=API_KEY)
    withdrawal, reinstatement = dispute.balance_transactions
    assert dispute.status == "won" and reinstatement.amount > 0 and reinstatement.fee == -1500
    assert (
        reinstatement.reporting_category == "dispute_reversal" and withdrawal.reporting_category == "dispute"
    )
    assert withdrawal.exchange_rate != reinstatement.exchange_rate  # each at its own day's rate
    with pytest.raises(ValueError, match="already closed"):
        sandbox.close_dispute(dispute_id, "lost")
    assert sandbox.refund(charge, 100)["refund"]["status"] == "succeeded"  # a won charge is refundable


def test_disputes_are_listed_and_expand_their_charge(sandbox, charge):
    sandbox.dispute(charge)
    dispute = stripe.Dispute.list(expand=["data.charge"], api_key=API_KEY).data[0]
    assert dispute.charge.id == charge and dispute.charge.disputed is True
    with pytest.raises(ValueError, match="already disputed"):
        sandbox.dispute(charge)
