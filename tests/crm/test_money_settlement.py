"""What the agency received: each movement's settlement comes from its own balance transactions.

The sandbox's account settles in USD with a deterministic FX table whose rate moves every day
(stripe_sandbox/fx.py), so a refund or dispute of a EUR payment settles at the rate of its own day,
not the payment's. A balance transaction Stripe has not made yet is said to be missing, never
guessed, and `reconcile_onboarding --fix` settles the movement once Stripe has it.
"""

from datetime import timedelta

import pytest
from django.utils import timezone
from djstripe.models import Event

from crm.models import Client, MoneyMovement
from crm.selectors.ledger import client_settlement_total
from stripe_sandbox import fx
from tests.support.commands import reconcile
from tests.support.money import DAY, T0, assert_matches_sandbox, deliver_shuffled, undelivered, work_all
from tests.support.staff import staff_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("anymail_outbox")]

Kind = MoneyMovement.Kind


def settled_at(amount: int, when: int) -> tuple[int, float]:
    """USD cents the sandbox's table gives for EUR cents on that day, and the rate."""
    rate = fx.rate("eur", "usd", when)
    return fx.convert_at(amount, "eur", "usd", rate), float(rate)


def test_refund_and_dispute_of_a_converted_payment_settle_at_their_own_days_rate(pipeline, service):
    sandbox = pipeline.sandbox
    paid = pipeline.checkout(amount=10000, currency="eur", created=T0)
    disputed = pipeline.checkout(amount=6000, currency="eur", created=T0 + DAY)
    events = [event["id"] for event in paid["events"] + disputed["events"]]
    events += undelivered(
        sandbox.refund(paid["session"]["id"], amount=2500, created=T0 + 3 * DAY, deliver=False)
    )
    events += undelivered(
        sandbox.dispute(disputed["session"]["id"], outcome="lost", created=T0 + 5 * DAY, deliver=False)
    )

    deliver_shuffled(pipeline, events, seed=11)

    ledger = {
        m.kind + (m.stripe_id if m.kind == Kind.PAYMENT else ""): m for m in MoneyMovement.objects.all()
    }
    payment = ledger[Kind.PAYMENT + paid["session"]["id"]]
    refund, dispute = ledger[Kind.REFUND], ledger[Kind.DISPUTE]
    assert (payment.settlement_currency, payment.settlement_amount) == ("usd", settled_at(10000, T0)[0])
    assert float(payment.exchange_rate) == settled_at(10000, T0)[1]
    assert (refund.settlement_amount, float(refund.exchange_rate)) == (
        -settled_at(2500, T0 + 3 * DAY)[0],
        settled_at(2500, T0 + 3 * DAY)[1],
    )
    assert refund.exchange_rate != payment.exchange_rate  # the refund's own day, not the payment's
    assert (dispute.settlement_amount, dispute.settlement_fee) == (-settled_at(6000, T0 + 5 * DAY)[0], 1500)

    ada = Client.objects.get()
    total = client_settlement_total(client=ada)
    assert (total.currencies, total.transactions, total.unknown) == (("usd",), 4, 0)
    # Not the payment's rate applied to the presentment net: that guess is off by the rate's moves.
    guess = settled_at(10000 - 2500, T0)[0] + settled_at(6000 - 6000, T0 + DAY)[0]
    assert total.amount != guess
    assert_matches_sandbox(sandbox)


def test_adaptive_pricing_checkout_is_valued_in_the_currency_paid_and_settled_in_the_account_currency(
    pipeline, service
):
    sandbox = pipeline.sandbox
    checkout = pipeline.checkout(amount=10000, currency="usd", presentment_currency="eur", created=T0)
    session = checkout["session"]
    assert session["currency"] == "eur" and session["currency_conversion"]["source_currency"] == "usd"
    events = [event["id"] for event in checkout["events"]]
    events += undelivered(sandbox.refund(session["id"], amount=1000, created=T0 + 2 * DAY, deliver=False))

    deliver_shuffled(pipeline, events, seed=12)

    ada = Client.objects.get()
    assert (ada.currency, ada.invoiced_value) == ("eur", session["amount_total"] - 1000)
    assert client_settlement_total(client=ada).currencies == ("usd",)
    # The webhook's event is stored with the rate as Stripe sent it (a string), not a Decimal.
    completed = Event.objects.get(type="checkout.session.completed")
    assert (
        completed.data["object"]["currency_conversion"]["fx_rate"]
        == session["currency_conversion"]["fx_rate"]
    )
    assert_matches_sandbox(sandbox)


def test_settlement_not_made_yet_is_said_not_guessed_and_reconcile_settles_it_later(
    pipeline, service, client
):
    sandbox = pipeline.sandbox
    checkout = pipeline.checkout(amount=10000, currency="eur", created=T0)
    charge = sandbox.find_charge(checkout["session"]["id"])
    # Stripe has not made the charge's balance transaction yet when the worker reads the charge.
    made_later, charge["balance_transaction"] = charge["balance_transaction"], None
    deliver_shuffled(pipeline, [event["id"] for event in checkout["events"]], seed=13)

    ada = Client.objects.get()
    payment = MoneyMovement.objects.get()
    assert (payment.counts, payment.settlement_net, payment.exchange_rate) == (True, None, None)
    total = client_settlement_total(client=ada)
    assert (total.amount, total.net, total.transactions, total.unknown) == (0, 0, 0, 1)
    assert ada.invoiced_value == 10000  # the presentment value does not wait for the settlement
    client.force_login(staff_user("Support"))
    page = client.get(f"/admin/crm/client/{ada.id}/change/").content.decode()
    assert "not available yet" in page[page.index('id="ledger"') :]
    assert "1 movement not settled yet" in page[page.index('id="settlement-total"') :]

    charge["balance_transaction"] = made_later
    MoneyMovement.objects.update(updated=timezone.now() - timedelta(hours=2))
    assert [f["ref"] for f in reconcile()["findings"]] == [f"settlement {payment.stripe_id}"]
    [finding] = reconcile("--fix")["findings"]
    assert finding["state"] == "repaired", finding
    work_all()

    payment.refresh_from_db()
    assert payment.settlement_net is not None and payment.balance_transaction_id == made_later
    assert client_settlement_total(client=ada).unknown == 0
    assert_matches_sandbox(sandbox)
    assert reconcile()["findings"] == []
