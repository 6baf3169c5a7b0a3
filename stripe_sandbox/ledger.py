"""The sandbox's own ledger: what each customer paid, got back and lost, per currency, in minor units.

This is the truth a benchmark compares the CRM with. Per customer email (lower-cased):

- `currencies[<cur>]`: `paid` (succeeded charges, whether from a checkout or an invoice), `refunded`
  (succeeded refunds only: pending and failed ones are not counted), `disputed` (lost disputes only),
  `net` = paid - refunded - disputed. A no-cost checkout (100% coupon, free trial) adds its currency
  with 0 paid, so the client is known.
- `first_currency`: the currency of the customer's first payment (or no-cost checkout);
  `invoiced_value` is the `net` in that currency (what `Client.invoiced_value` should show).
- `settlement`: sums of every balance transaction of the customer's charges, refunds (and refund
  failures) and disputes, in the account's settlement currency: `amount` (gross), `fee`, `net`.
"""

from collections import defaultdict

from .store import ObjectStore


def _empty_currency() -> dict:
    return {"paid": 0, "refunded": 0, "disputed": 0, "net": 0}


def _email_of(store: ObjectStore, charge: dict) -> str | None:
    customer = store.get("customer", charge["customer"]) if charge.get("customer") else None
    email = (customer or {}).get("email") or (charge.get("billing_details") or {}).get("email")
    return email.lower() if email else None


def ledger(store: ObjectStore, livemode: bool = False) -> dict:
    """Build the report from the stored objects (caller holds the store lock)."""
    customers: dict = defaultdict(
        lambda: {"currencies": defaultdict(_empty_currency), "first": None, "transactions": []}
    )

    def touch(email: str, currency: str, created: int) -> dict:
        entry = customers[email]
        if entry["first"] is None or created < entry["first"][0]:
            entry["first"] = (created, currency)
        return entry["currencies"][currency]

    charge_email = {}
    for charge in store.all("charge"):
        if charge["livemode"] != livemode or charge["status"] != "succeeded":
            continue
        email = _email_of(store, charge)
        if email is None:
            continue
        charge_email[charge["id"]] = email
        touch(email, charge["currency"], charge["created"])["paid"] += charge["amount"]
        customers[email]["transactions"].append(charge["balance_transaction"])
    for session in store.all("checkout.session"):
        if session.get("livemode") != livemode or session.get("payment_status") != "no_payment_required":
            continue
        email = (session.get("customer_details") or {}).get("email")
        if email:
            touch(email.lower(), session["currency"], session["created"])
    for refund in store.all("refund"):
        email = charge_email.get(refund["charge"])
        if email is None:
            continue
        if refund["status"] == "succeeded":
            customers[email]["currencies"][refund["currency"]]["refunded"] += refund["amount"]
        customers[email]["transactions"].append(refund["balance_transaction"])
        if refund.get("failure_balance_transaction"):
            customers[email]["transactions"].append(refund["failure_balance_transaction"])
    for dispute in store.all("dispute"):
        email = charge_email.get(dispute["charge"])
        if email is None:
            continue
        if dispute["status"] == "lost":
            customers[email]["currencies"][dispute["currency"]]["disputed"] += dispute["amount"]
        customers[email]["transactions"] += [t["id"] for t in dispute["balance_transactions"]]

    settlement_currency = store.settlement_currency
    report = {}
    totals = {"currencies": defaultdict(_empty_currency), "settlement": _settlement_sum(store, [])}
    for email in sorted(customers):
        entry = customers[email]
        currencies = {}
        for currency in sorted(entry["currencies"]):
            values = entry["currencies"][currency]
            values["net"] = values["paid"] - values["refunded"] - values["disputed"]
            currencies[currency] = dict(values)
            for key, value in values.items():
                totals["currencies"][currency][key] += value
        settlement = _settlement_sum(store, entry["transactions"])
        for key in ("amount", "fee", "net", "transactions"):
            totals["settlement"][key] += settlement[key]
        first_currency = entry["first"][1]
        report[email] = {
            "currencies": currencies,
            "first_currency": first_currency,
            "invoiced_value": currencies[first_currency]["net"],
            "settlement": settlement,
        }
    return {
        "settlement_currency": settlement_currency,
        "livemode": livemode,
        "customers": report,
        "totals": {
            "currencies": {k: dict(v) for k, v in sorted(totals["currencies"].items())},
            **{"settlement": totals["settlement"]},
        },
    }


def _settlement_sum(store: ObjectStore, transaction_ids: list[str]) -> dict:
    total = {"currency": store.settlement_currency, "amount": 0, "fee": 0, "net": 0, "transactions": 0}
    for transaction_id in transaction_ids:
        transaction = store.get("balance_transaction", transaction_id)
        total["amount"] += transaction["amount"]
        total["fee"] += transaction["fee"]
        total["net"] += transaction["net"]
        total["transactions"] += 1
    return total
