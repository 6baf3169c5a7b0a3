"""Checkout options beyond a plain card payment: discounts, Adaptive Pricing and Payment Links."""

from . import fx, money_factories
from .discounts import amount_off, redeem
from .store import ObjectStore


def apply_discount(store: ObjectStore, ids, session: dict, coupon: dict, promotion: dict | None) -> None:
    """Take the coupon off the open session's total (`discounts`, `total_details.amount_discount`).

    In payment mode the discount object belongs to the session (`checkout_session` set); in
    subscription mode Stripe creates it on the subscription when the session completes.
    """
    subtotal = session["amount_subtotal"]
    off = amount_off(coupon, subtotal, session["currency"])
    session["discounts"] = [
        {"coupon": coupon["id"], "promotion_code": promotion["id"] if promotion else None}
    ]
    session["total_details"]["amount_discount"] = off
    session["amount_total"] = subtotal - off
    items = store.line_items.get(session["id"], [])
    if session["mode"] == "payment":
        redeem(store, coupon, promotion)
        discount = store.add(
            money_factories.discount(
                ids,
                start=session["created"],
                coupon_obj=coupon,
                promotion_code_id=promotion["id"] if promotion else None,
                checkout_session_id=session["id"],
            )
        )
        store.discount_links[session["id"]] = [(discount["id"], off)]
        for item in items[:1]:
            store.discount_links[item["id"]] = [(discount["id"], off)]
    for item in items[:1]:
        item["amount_discount"] = off
        item["amount_total"] = item["amount_subtotal"] - off


def apply_free_trial(store: ObjectStore, session: dict, trial_days: int) -> None:
    """A subscription session with a trial charges nothing today."""
    store.session_options.setdefault(session["id"], {})["trial_days"] = int(trial_days)
    session.update(amount_subtotal=0, amount_total=0)
    for item in store.line_items.get(session["id"], []):
        item.update(amount_subtotal=0, amount_total=0, amount_discount=0)


def apply_currency_conversion(store: ObjectStore, session: dict, presentment: str) -> None:
    """Adaptive Pricing: the customer pays in `presentment`; `currency_conversion` keeps the source.

    `fx_rate` is a decimal string (customer amount = source amount x fx_rate), as in Stripe's JSON.
    """
    source = session["currency"]
    presentment = presentment.lower()
    if presentment == source:
        return
    rate = fx.rate(source, presentment, session["created"])
    subtotal = fx.convert_at(session["amount_subtotal"], source, presentment, rate)
    total = fx.convert_at(session["amount_total"], source, presentment, rate)
    session["currency_conversion"] = {
        "amount_subtotal": session["amount_subtotal"],
        "amount_total": session["amount_total"],
        "fx_rate": str(rate),
        "source_currency": source,
    }
    session.update(
        adaptive_pricing={"enabled": True}, currency=presentment, amount_subtotal=subtotal, amount_total=total
    )
    session["total_details"]["amount_discount"] = subtotal - total
    for item in store.line_items.get(session["id"], []):
        item.update(
            currency=presentment,
            amount_subtotal=fx.convert_at(item["amount_subtotal"], source, presentment, rate),
            amount_total=fx.convert_at(item["amount_total"], source, presentment, rate),
        )
        item["amount_discount"] = item["amount_subtotal"] - item["amount_total"]


def create_payment_link(
    store: ObjectStore, ids, *, price: dict, livemode: bool, created: int, metadata=None
) -> dict:
    """Store a payment link selling `price` once per session."""
    link = money_factories.payment_link(
        ids, livemode=livemode, price=price, metadata=metadata, url_token=ids.token(14)
    )
    store.line_items[link["id"]] = [{"price": price["id"], "quantity": 1}]
    return store.add(link, created=created)
