"""The sandbox's ledger (the benchmark's truth) and the FX-converted balance transactions behind it."""

from decimal import Decimal

import stripe

from stripe_sandbox import fx
from stripe_sandbox.server import StripeSandbox
from tests.stripe_sandbox.helpers import API_KEY

DAY = 86400
START = 1_767_225_600  # 2026-01-01 00:00 UTC


def checkout(sandbox, email, amount, currency="eur", created=START, **options):
    return sandbox.create_checkout(
        email=email, name="X", service_id="svc", amount=amount, currency=currency, created=created, **options
    )["session"]


def test_ledger_counts_succeeded_refunds_and_lost_disputes_only(sandbox):
    paid = checkout(sandbox, "ada@example.com", 10000)
    sandbox.refund(paid["id"], 1000, created=START + DAY)
    sandbox.refund(paid["id"], 500, created=START + DAY)
    sandbox.refund(paid["id"], 2000, fail=True, created=START + 2 * DAY)
    subscription = checkout(sandbox, "ada@example.com", 3000, mode="subscription", created=START + 3 * DAY)
    renewal = sandbox.renew_subscription(subscription["subscription"])
    sandbox.dispute(renewal["invoice"]["id"], outcome="lost")
    won = checkout(sandbox, "ADA@example.com", 700, created=START + 4 * DAY)  # same client, other case
    sandbox.dispute(won["id"], outcome="won")
    sandbox.renew_subscription(subscription["subscription"], fail=True)  # declined: nothing paid

    ada = sandbox.ledger()["customers"]["ada@example.com"]
    assert ada["currencies"] == {"eur": {"paid": 16700, "refunded": 1500, "disputed": 3000, "net": 12200}}
    assert ada["first_currency"] == "eur" and ada["invoiced_value"] == 12200


def test_ledger_per_currency_first_currency_and_zero_decimal(sandbox):
    checkout(sandbox, "kai@example.com", 4900, "usd", created=START)
    checkout(sandbox, "kai@example.com", 5000, "jpy", created=START + DAY)
    sandbox.create_invoice(
        email="kai@example.com", amount=777, currency="jpy", service_id="x", created=START + 2 * DAY
    )
    sandbox.refund(
        sandbox.find_charge(checkout(sandbox, "kai@example.com", 300, "jpy", created=START + 3 * DAY)["id"])[
            "id"
        ],
        1,
    )
    kai = sandbox.ledger()["customers"]["kai@example.com"]
    assert kai["currencies"] == {
        "jpy": {"paid": 6077, "refunded": 1, "disputed": 0, "net": 6076},
        "usd": {"paid": 4900, "refunded": 0, "disputed": 0, "net": 4900},
    }
    assert kai["first_currency"] == "usd" and kai["invoiced_value"] == 4900


def test_jpy_charge_settles_in_usd_with_zero_decimal_arithmetic(sandbox):
    session = checkout(sandbox, "jp@example.com", 5000, "jpy")
    charge = stripe.Charge.retrieve(
        sandbox.find_charge(session["id"])["id"], expand=["balance_transaction"], api_key=API_KEY
    )
    assert charge.amount == 5000 and charge.currency == "jpy"  # ¥5,000, not ¥50.00
    txn = charge.balance_transaction
    rate = Decimal(str(txn.exchange_rate))
    assert txn.currency == "usd" and txn.amount == int(
        (Decimal(5000) * rate * 100).to_integral_value("ROUND_HALF_UP")
    )
    assert 2000 < txn.amount < 5000  # about $33, in cents
    assert txn.net == txn.amount - txn.fee and txn.type == "charge" and txn.source == charge.id


def test_refund_of_a_converted_charge_uses_its_own_days_rate(sandbox):
    session = checkout(sandbox, "fx@example.com", 10000, "eur", created=START)
    charge_id = sandbox.find_charge(session["id"])["id"]
    refund = sandbox.refund(charge_id, 10000, created=START + 3 * DAY)["refund"]
    charge_txn = stripe.BalanceTransaction.retrieve(
        sandbox.store.get("charge", charge_id)["balance_transaction"], api_key=API_KEY
    )
    refund_txn = stripe.BalanceTransaction.retrieve(refund["balance_transaction"], api_key=API_KEY)
    assert charge_txn.exchange_rate == float(fx.rate("eur", "usd", START))
    assert refund_txn.exchange_rate == float(fx.rate("eur", "usd", START + 3 * DAY))
    assert refund_txn.exchange_rate != charge_txn.exchange_rate
    assert refund_txn.amount != -charge_txn.amount  # a full refund does not settle to zero across days
    report = sandbox.ledger()["customers"]["fx@example.com"]
    assert report["currencies"]["eur"]["net"] == 0
    assert report["settlement"]["amount"] == charge_txn.amount + refund_txn.amount
    assert report["settlement"]["net"] == charge_txn.net + refund_txn.net


def test_settlement_totals_are_the_sum_of_every_balance_transaction(sandbox):
    first = checkout(sandbox, "a@example.com", 2000, "gbp")
    sandbox.refund(first["id"], 500, fail=True, created=START + DAY)
    sandbox.dispute(first["id"], outcome="won", created=START + 2 * DAY, closed=START + 9 * DAY)
    second = checkout(sandbox, "b@example.com", 1000, "usd", mode="subscription")
    sandbox.dispute(second["id"], outcome="lost")
    report = sandbox.ledger()
    transactions = stripe.BalanceTransaction.list(limit=100, api_key=API_KEY).data
    assert len(transactions) == 7  # 2 charges, a refund and its failure, 2 withdrawals, 1 reinstatement
    assert report["totals"]["settlement"] == {
        "currency": "usd",
        "amount": sum(t.amount for t in transactions),
        "fee": sum(t.fee for t in transactions),
        "net": sum(t.net for t in transactions),
        "transactions": 7,
    }
    usd_only = report["customers"]["b@example.com"]["settlement"]
    charge_txn = next(t for t in transactions if t.type == "charge" and t.exchange_rate is None)
    assert usd_only["amount"] == 0 and usd_only["fee"] == charge_txn.fee + 1500
    assert report["totals"]["currencies"]["usd"] == {"paid": 1000, "refunded": 0, "disputed": 1000, "net": 0}


def test_no_cost_checkout_is_in_the_ledger_with_zero(sandbox):
    checkout(sandbox, "free@example.com", 4000, "chf", percent_off=100)
    entry = sandbox.ledger()["customers"]["free@example.com"]
    assert entry["currencies"] == {"chf": {"paid": 0, "refunded": 0, "disputed": 0, "net": 0}}
    assert entry["settlement"]["transactions"] == 0


def test_balance_transaction_list_filters_and_expands_sources(sandbox):
    session = checkout(sandbox, "a@example.com", 2000)
    sandbox.refund(session["id"], 100)
    sandbox.dispute(session["id"])
    by_type = {
        t: stripe.BalanceTransaction.list(type=t, expand=["data.source"], api_key=API_KEY).data
        for t in ("charge", "refund", "adjustment")
    }
    assert [t.source.object for t in by_type["charge"]] == ["charge"]
    assert [t.source.object for t in by_type["refund"]] == ["refund"]
    assert [t.source.object for t in by_type["adjustment"]] == ["dispute"]
    charge_id = by_type["charge"][0].source.id
    assert [t.id for t in stripe.BalanceTransaction.list(source=charge_id, api_key=API_KEY).data] == [
        by_type["charge"][0].id
    ]
    page = stripe.BalanceTransaction.list(limit=2, api_key=API_KEY)
    assert (
        page.has_more
        and len(stripe.BalanceTransaction.list(starting_after=page.data[-1].id, api_key=API_KEY).data) == 1
    )


def test_fx_table_is_deterministic_and_varies_by_day():
    rates = [fx.rate("eur", "usd", START + day * DAY) for day in range(10)]
    assert rates == [fx.rate("eur", "usd", START + day * DAY + 3600) for day in range(10)]  # per day
    assert len(set(rates)) > 5 and all(Decimal("1.0") < r < Decimal("1.15") for r in rates)
    assert fx.rate("usd", "usd", START) is None and fx.convert(123, "usd", "usd", START) == (123, None)
    assert fx.convert_at(5000, "jpy", "usd", Decimal("0.0067")) == 3350
    assert fx.convert_at(3350, "usd", "jpy", Decimal("149.253731")) == 5000


def test_settlement_currency_is_configurable(sandbox):
    eur_account = StripeSandbox(settlement_currency="EUR")
    assert eur_account.account["default_currency"] == "eur"
    session = eur_account.create_checkout(
        email="e@example.com", name="E", service_id="s", amount=1000, currency="eur"
    )
    txn = eur_account.store.get(
        "balance_transaction", eur_account.find_charge(session["session"]["id"])["balance_transaction"]
    )
    assert txn["currency"] == "eur" and txn["amount"] == 1000 and txn["exchange_rate"] is None
    assert eur_account.ledger()["settlement_currency"] == "eur"


def test_ledger_control_endpoint(sandbox, raw):
    checkout(sandbox, "a@example.com", 2000)
    report = raw("GET", "/_sandbox/ledger", key=None).json()
    assert report["customers"]["a@example.com"]["currencies"]["eur"]["net"] == 2000
