"""One documented patch to dj-stripe 2.11 for the pinned Stripe API version (2026-05-27.dahlia).

The bug. `Customer._attach_objects_post_save_hook` (djstripe/models/core.py:1140-1143 in 2.11.0)
mirrors the coupon of a customer's discount with
`Coupon._get_or_create_from_stripe_object(discount, "coupon")`, which reads `discount["coupon"]`.
Since dahlia a discount has no `coupon` key: the coupon sits under `discount.source.coupon` (next to
`source.type`). dj-stripe finds the field empty and raises (djstripe/models/base.py:745-751,
"RuntimeError: dj-stripe encountered an empty field Coupon.coupon = None"). Every customer sync
with a discount fails: `customer.*` events, and `checkout.session.completed` too, because the
session's sync retrieves and syncs its customer. A client whose customer carries a discount was
never onboarded (the webhook job retried, then gave up).

No upstream fix to pin: dj-stripe's main branch (as of its commit f04d5d7e, 2026-07-23, after
2.11.0) still reads `discount["coupon"]`, and no dj-stripe issue or pull request about the dahlia
discount shape was found (the nearest, https://github.com/dj-stripe/dj-stripe/pull/1931 and
#1757, are about the older Customer.coupon fields). Drop this patch once a dj-stripe release
reads `source.coupon`.

The fix: not syncing what we don't need. The hook throws away the Coupon it mirrors (its own
comment: "Coupon is now accessed via stripe_data"), nothing in this project reads dj-stripe's
Coupon table, and in dahlia `source.coupon` is an id unless expanded, so mirroring it would cost a
Stripe request per customer sync. For a dahlia-shaped discount the hook now runs without the
discount; everything else it does (payment sources, pending relations) is unchanged, and so is a
discount in the older shape (with `coupon`). The customer's row still holds the whole discount
in `stripe_data`, as Stripe sent it. Subscription, Invoice and Checkout Session syncs were checked
with dahlia discounts and need nothing (tests/stripe_events/test_djstripe_discounts.py).
"""

from functools import wraps
from typing import Any

from djstripe.models import Customer

_PATCHED = "_crm_dahlia_discount_patch"


def is_dahlia_discount(discount: Any) -> bool:
    """A discount in the 2026-05-27.dahlia shape: its coupon under `source`, no `coupon` key."""
    return bool(discount) and "coupon" not in discount and "source" in discount


def djstripe_compat_apply() -> None:
    """Patch dj-stripe's Customer sync hook (once; safe to call again). Called from CrmConfig.ready()."""
    original = Customer._attach_objects_post_save_hook
    if getattr(original, _PATCHED, False):
        return

    @wraps(original)
    def attach_objects_post_save_hook(self: Any, cls: Any, data: Any, *args: Any, **kwargs: Any) -> Any:
        if is_dahlia_discount(data.get("discount")):
            # A shallow copy for the hook only: the saved row already holds the full data.
            data = data.to_dict(recursive=False) if hasattr(data, "to_dict") else dict(data)
            data["discount"] = None
        return original(self, cls, data, *args, **kwargs)

    setattr(attach_objects_post_save_hook, _PATCHED, True)
    Customer._attach_objects_post_save_hook = attach_objects_post_save_hook
