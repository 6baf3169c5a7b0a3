"""Coupons and promotion codes applied to sessions and invoices, and the amounts they take off."""

from decimal import ROUND_HALF_UP, Decimal

from . import money_factories
from .ids import IdFactory
from .store import ObjectStore


def create_coupon(store: ObjectStore, ids: IdFactory, *, created: int, livemode: bool, code=None, **fields):
    """Store a coupon (and a promotion code for it when `code` is given); return (coupon, promo|None)."""
    if fields.get("coupon_id") and store.get("coupon", fields["coupon_id"]):
        raise ValueError(f"coupon {fields['coupon_id']!r} already exists")
    coupon = store.add(money_factories.coupon(ids, created=created, livemode=livemode, **fields))
    promotion = None
    if code:
        promotion = store.add(
            money_factories.promotion_code(ids, created=created, coupon_obj=coupon, code=code)
        )
    return coupon, promotion


def resolve(store: ObjectStore, coupon: str | None = None, promotion_code: str | None = None):
    """Return (coupon, promotion code) for a coupon id, a promotion code id or its customer-facing code."""
    promotion = None
    if promotion_code:
        promotion = store.get("promotion_code", promotion_code) or next(
            (p for p in store.all("promotion_code") if p["code"] == promotion_code), None
        )
        if promotion is None:
            raise KeyError(f"No such promotion_code: {promotion_code!r}")
        coupon = promotion["promotion"]["coupon"]
    if not coupon:
        return None, None
    coupon_obj = store.get("coupon", coupon)
    if coupon_obj is None:
        raise KeyError(f"No such coupon: {coupon!r}")
    return coupon_obj, promotion


def amount_off(coupon: dict, subtotal: int, currency: str) -> int:
    """Minor units the coupon takes off `subtotal` (never more than the subtotal)."""
    if coupon["percent_off"] is not None:
        off = (Decimal(subtotal) * Decimal(str(coupon["percent_off"])) / 100).quantize(
            Decimal(1), rounding=ROUND_HALF_UP
        )
        return min(subtotal, int(off))
    if coupon["currency"] != currency:
        raise ValueError(f"coupon {coupon['id']} is in {coupon['currency']}, not {currency}")
    return min(subtotal, coupon["amount_off"])


def applies_to_cycle(coupon: dict, cycle: int) -> bool:
    """Whether the coupon still discounts the subscription's `cycle`-th invoice (0 = the first)."""
    if coupon["duration"] == "forever":
        return True
    if coupon["duration"] == "once":
        return cycle == 0
    return cycle < coupon["duration_in_months"]


def redeem(store: ObjectStore, coupon: dict, promotion: dict | None) -> None:
    coupon["times_redeemed"] += 1
    if promotion is not None:
        promotion["times_redeemed"] += 1


def breakdown(store: ObjectStore, parent_id: str) -> list[dict]:
    """`[{"amount", "discount"}]` for a session's or line's discounts (expanded discount objects)."""
    found = []
    for discount_id, amount in store.discount_links.get(parent_id, []):
        found.append({"amount": amount, "discount": store.get("discount", discount_id)})
    return found
