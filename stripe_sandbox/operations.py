"""The sandbox's Python API for what follows a checkout: renewals, invoices, refunds, disputes,
cancellations, coupons, payment links, and the ledger. Mixed into StripeSandbox.

Every operation changes the stored objects, records the events Stripe would send and, given a
`webhook_url` and `webhook_secret`, delivers them signed, in order. Each returns the changed objects
plus `{"events": [ids], "deliveries": [{"event", "status", "body"}]}`. `created` (unix time) places
an operation on the timeline; FX rates and balance transactions follow its day.
"""

import re
import time

from . import (
    billing_flow,
    checkout_extras,
    checkout_flow,
    discounts,
    dispute_flow,
    factories,
    money_factories,
    refund_flow,
)
from . import ledger as ledger_report
from .checkout_flow import record_event
from .shapes import clone


def _pending(webhook_url, webhook_secret, deliver) -> int:
    if deliver and webhook_url and not webhook_secret:
        raise ValueError("webhook_secret is required to sign deliveries")
    return 1 if (webhook_url and deliver) else 0


class MoneyOperations:
    """Needs `self.store`, `self.ids` and `self.deliver` (StripeSandbox)."""

    def _perform(self, build, webhook_url=None, webhook_secret=None, deliver=True) -> dict:
        pending = _pending(webhook_url, webhook_secret, deliver)
        with self.store.lock:
            objects, events = build(pending)
            objects = clone(objects)
        event_ids = [event["id"] for event in events]
        deliveries = self.deliver(event_ids, webhook_url, webhook_secret) if pending else []
        return {**objects, "events": event_ids, "deliveries": deliveries}

    def _require(self, object_type: str, object_id: str) -> dict:
        obj = self.store.get(object_type, object_id)
        if obj is None or obj.get("deleted"):
            raise KeyError(f"No such {object_type}: {object_id!r}")
        return obj

    @staticmethod
    def _when(created, *not_before: int) -> int:
        """`created`, or now (but never before the objects it follows)."""
        if created is not None:
            return int(created)
        return max(int(time.time()), *not_before) if not_before else int(time.time())

    # -- subscriptions and invoices -----------------------------------------------------------------

    def renew_subscription(
        self, subscription_id: str, *, fail: bool = False, created=None, **delivery
    ) -> dict:
        """Advance one billing period: a `subscription_cycle` invoice, paid (or declined with fail=True)."""

        def build(pending):
            subscription = self._require("subscription", subscription_id)
            invoice, events = billing_flow.renew(
                self.store, self.ids, subscription, created=created, fail=fail, pending_webhooks=pending
            )
            return {"invoice": invoice, "subscription": subscription}, events

        return self._perform(build, **delivery)

    def pay_invoice(self, invoice_id: str, *, fail: bool = False, created=None, **delivery) -> dict:
        """Retry an open invoice (a failed renewal); paid, it makes a past-due subscription active."""

        def build(pending):
            invoice = self._require("invoice", invoice_id)
            when = self._when(created, invoice["created"])
            events = billing_flow.pay_invoice(
                self.store, self.ids, invoice, created=when, fail=fail, pending_webhooks=pending
            )
            return {"invoice": invoice}, events

        return self._perform(build, **delivery)

    def cancel_subscription(
        self, subscription_id: str, *, created=None, reason: str = "cancellation_requested", **delivery
    ) -> dict:
        """Cancel now: `customer.subscription.deleted`."""

        def build(pending):
            subscription = self._require("subscription", subscription_id)
            item = subscription["items"]["data"][0]
            when = self._when(created, item["current_period_start"])
            events = billing_flow.cancel(
                self.store, self.ids, subscription, created=when, reason=reason, pending_webhooks=pending
            )
            return {"subscription": subscription}, events

        return self._perform(build, **delivery)

    def create_invoice(
        self,
        *,
        amount: int,
        service_id: str,
        currency: str = "eur",
        email: str | None = None,
        customer: str | None = None,
        name: str | None = None,
        product_name: str | None = None,
        coupon: str | None = None,
        promotion_code: str | None = None,
        fail: bool = False,
        livemode: bool = False,
        created=None,
        **delivery,
    ) -> dict:
        """A stand-alone invoice (not from a subscription) with `metadata.serviceId`, paid by card.

        `customer` (an id) or `email`: an existing customer with that email is reused, else created.
        """
        if int(amount) <= 0:
            raise ValueError("amount must be a positive integer (minor units)")
        if not (customer or email):
            raise ValueError("give customer or email")

        def build(pending):
            when = self._when(created)
            customer_obj = self._invoice_customer(customer, email, name, livemode, when)
            price = checkout_flow.ensure_service_price(
                self.store,
                self.ids,
                service_id=service_id,
                product_name=product_name,
                amount=int(amount),
                currency=currency.lower(),
                livemode=customer_obj["livemode"],
                created=when,
            )
            coupon_obj, promotion = discounts.resolve(self.store, coupon, promotion_code)
            product = self.store.get("product", price["product"])
            invoice, events = billing_flow.standalone_invoice(
                self.store,
                self.ids,
                customer=customer_obj,
                price=price,
                description=product["name"],
                created=when,
                service_id=service_id,
                coupon=coupon_obj,
                promotion=promotion,
                fail=fail,
                pending_webhooks=pending,
            )
            return {"invoice": invoice, "customer": customer_obj}, events

        return self._perform(build, **delivery)

    def _invoice_customer(self, customer_id, email, name, livemode, created) -> dict:
        if customer_id:
            return self._require("customer", customer_id)
        wanted = email.lower()
        for existing in reversed(self.store.all("customer")):
            if (
                not existing.get("deleted")
                and existing["livemode"] == livemode
                and (existing.get("email") or "").lower() == wanted
            ):
                return existing
        return self.store.add(
            factories.customer(self.ids, created=created, livemode=livemode, email=email, name=name)
        )

    # -- refunds and disputes -----------------------------------------------------------------------

    def find_charge(self, reference: str) -> dict:
        """The charge behind a `ch_`, `pi_`, `cs_` (a paid session) or `in_` (a paid invoice) id."""
        if reference.startswith("ch_"):
            return self._require("charge", reference)
        if reference.startswith("pi_"):
            intent = self._require("payment_intent", reference)
        elif reference.startswith("cs_"):
            session = self._require("checkout.session", reference)
            if session["invoice"]:
                return self.find_charge(session["invoice"])
            if not session["payment_intent"]:
                raise ValueError(f"checkout session {reference} has no payment")
            intent = self._require("payment_intent", session["payment_intent"])
        elif reference.startswith("in_"):
            payment = next((p for p in self.store.all("invoice_payment") if p["invoice"] == reference), None)
            if payment is None:
                raise ValueError(f"invoice {reference} has no payment")
            intent = self._require("payment_intent", payment["payment"]["payment_intent"])
        else:
            raise ValueError(f"not a charge, payment intent, session or invoice id: {reference!r}")
        if not intent["latest_charge"]:
            raise ValueError(f"payment intent {intent['id']} has no charge")
        return self._require("charge", intent["latest_charge"])

    def refund(
        self,
        charge: str,
        amount: int | None = None,
        *,
        fail: bool = False,
        reason: str | None = None,
        metadata: dict | None = None,
        created=None,
        **delivery,
    ) -> dict:
        """Refund `amount` (default: what is left) of a charge (or of a session's/invoice's charge).

        Events: `charge.refunded`, `refund.created`, `refund.updated`; with fail=True the refund is
        created pending and then fails: `refund.updated` (failed), `refund.failed`.
        """

        def build(pending):
            charge_obj = self.find_charge(charge)
            when = self._when(created, charge_obj["created"])
            refund, events = refund_flow.create_refund(
                self.store,
                self.ids,
                charge_obj,
                amount=amount,
                created=when,
                fail=fail,
                reason=reason,
                metadata=metadata,
                pending_webhooks=pending,
            )
            return {"refund": refund, "charge": charge_obj}, events

        return self._perform(build, **delivery)

    def fail_refund(self, refund_id: str, *, created=None, **delivery) -> dict:
        """A refund that succeeded (or is pending) fails later: `refund.updated`, `refund.failed`."""

        def build(pending):
            refund = self._require("refund", refund_id)
            when = self._when(created, refund["created"])
            events = refund_flow.fail_refund(
                self.store, self.ids, refund, created=when, pending_webhooks=pending
            )
            return {"refund": refund, "charge": self.store.get("charge", refund["charge"])}, events

        return self._perform(build, **delivery)

    def dispute(
        self,
        charge: str,
        *,
        outcome: str | None = None,
        amount: int | None = None,
        reason: str = "fraudulent",
        created=None,
        closed=None,
        **delivery,
    ) -> dict:
        """Open a dispute on a charge (funds withdrawn); with `outcome` (won/lost) close it at `closed`."""
        if outcome not in (None, *dispute_flow.OUTCOMES):
            raise ValueError(f"outcome must be one of {dispute_flow.OUTCOMES}")

        def build(pending):
            charge_obj = self.find_charge(charge)
            when = self._when(created, charge_obj["created"])
            dispute, events = dispute_flow.open_dispute(
                self.store,
                self.ids,
                charge_obj,
                created=when,
                amount=amount,
                reason=reason,
                pending_webhooks=pending,
            )
            if outcome:
                events += dispute_flow.close_dispute(
                    self.store,
                    self.ids,
                    dispute,
                    outcome=outcome,
                    created=self._when(closed, when),
                    pending_webhooks=pending,
                )
            return {"dispute": dispute, "charge": charge_obj}, events

        return self._perform(build, **delivery)

    def close_dispute(self, dispute_id: str, outcome: str, *, created=None, **delivery) -> dict:
        """Close an open dispute: won (`funds_reinstated`, `closed`) or lost (`closed`)."""

        def build(pending):
            dispute = self._require("dispute", dispute_id)
            when = self._when(created, dispute["created"])
            events = dispute_flow.close_dispute(
                self.store, self.ids, dispute, outcome=outcome, created=when, pending_webhooks=pending
            )
            return {"dispute": dispute, "charge": self.store.get("charge", dispute["charge"])}, events

        return self._perform(build, **delivery)

    # -- coupons, customer discounts, payment links -------------------------------------------------

    def create_coupon(
        self,
        *,
        percent_off: float | None = None,
        amount_off: int | None = None,
        currency: str | None = None,
        duration: str = "once",
        duration_in_months: int | None = None,
        name: str | None = None,
        id: str | None = None,
        code: str | None = None,
        livemode: bool = False,
        created=None,
    ) -> dict:
        """A coupon (and, with `code`, a promotion code for it). Returns {"coupon", "promotion_code"}."""
        with self.store.lock:
            coupon, promotion = discounts.create_coupon(
                self.store,
                self.ids,
                created=self._when(created),
                livemode=livemode,
                code=code,
                percent_off=None if percent_off is None else float(percent_off),
                amount_off=None if amount_off is None else int(amount_off),
                currency=currency,
                duration=duration,
                duration_in_months=duration_in_months,
                name=name,
                coupon_id=id,
            )
            return clone({"coupon": coupon, "promotion_code": promotion})

    def apply_customer_discount(
        self,
        customer: str,
        *,
        coupon: str | None = None,
        promotion_code: str | None = None,
        created=None,
        **delivery,
    ) -> dict:
        """Put a discount on the customer itself (`customer.discount`, coupon under `source`).

        Events: `customer.discount.created`, `customer.updated`.
        """

        def build(pending):
            customer_obj = self._require("customer", customer)
            coupon_obj, promotion = discounts.resolve(self.store, coupon, promotion_code)
            if coupon_obj is None:
                raise ValueError("give coupon or promotion_code")
            when = self._when(created)
            discounts.redeem(self.store, coupon_obj, promotion)
            discount = self.store.add(
                money_factories.discount(
                    self.ids,
                    start=when,
                    coupon_obj=coupon_obj,
                    promotion_code_id=promotion["id"] if promotion else None,
                    customer_id=customer_obj["id"],
                )
            )
            customer_obj["discount"] = discount
            events = [
                record_event(self.store, self.ids, "customer.discount.created", discount, when, pending),
                record_event(self.store, self.ids, "customer.updated", customer_obj, when, pending),
            ]
            return {"customer": customer_obj, "discount": discount}, events

        return self._perform(build, **delivery)

    def create_payment_link(
        self,
        *,
        service_id: str,
        amount: int,
        currency: str = "eur",
        interval: str | None = None,
        metadata: dict | None = None,
        product_name: str | None = None,
        livemode: bool = False,
    ) -> dict:
        """A payment link for a service; its metadata (default `{"serviceId": …}`) reaches each session.

        Buy through it with `create_checkout(..., payment_link=<id>)`. Returns {"payment_link"}.
        """
        if int(amount) <= 0:
            raise ValueError("amount must be a positive integer (minor units)")
        with self.store.lock:
            now = int(time.time())
            price = checkout_flow.ensure_service_price(
                self.store,
                self.ids,
                service_id=service_id,
                product_name=product_name,
                amount=int(amount),
                currency=currency.lower(),
                livemode=livemode,
                created=now,
                interval=interval,
            )
            link = checkout_extras.create_payment_link(
                self.store,
                self.ids,
                price=price,
                livemode=livemode,
                created=now,
                metadata={"serviceId": service_id, **(metadata or {})},
            )
            return clone({"payment_link": link})

    # -- the truth ----------------------------------------------------------------------------------

    def ledger(self, livemode: bool = False) -> dict:
        """Per customer email and currency: paid / refunded / disputed / net, and settlement totals."""
        with self.store.lock:
            return ledger_report.ledger(self.store, livemode=bool(livemode))

    # -- control API --------------------------------------------------------------------------------

    def money_control(self, method: str, path: str, data: dict) -> tuple[int, dict] | None:
        """Serve the `/_sandbox/…` routes of these operations; None when the path is not one of them."""
        route = f"{method} {path.rstrip('/')}"
        if route == "GET /_sandbox/ledger":
            return 200, self.ledger(**_only(data, ("livemode",)))
        if route == "POST /_sandbox/invoices":
            return 200, self.create_invoice(**data)
        if route == "POST /_sandbox/coupons":
            return 200, self.create_coupon(**data)
        if route == "POST /_sandbox/payment_links":
            return 200, self.create_payment_link(**data)
        for pattern, handler in _ID_ROUTES:
            found = re.fullmatch(pattern, route)
            if found:
                return 200, getattr(self, handler)(found.group(1), **data)
        return None


_ID_ROUTES = (
    (r"POST /_sandbox/subscriptions/([^/]+)/renew", "renew_subscription"),
    (r"POST /_sandbox/subscriptions/([^/]+)/cancel", "cancel_subscription"),
    (r"POST /_sandbox/invoices/([^/]+)/pay", "pay_invoice"),
    (r"POST /_sandbox/charges/([^/]+)/refund", "refund"),
    (r"POST /_sandbox/refunds/([^/]+)/fail", "fail_refund"),
    (r"POST /_sandbox/charges/([^/]+)/dispute", "dispute"),
    (r"POST /_sandbox/disputes/([^/]+)/close", "close_dispute"),
    (r"POST /_sandbox/customers/([^/]+)/discount", "apply_customer_discount"),
)


def _only(data: dict, allowed: tuple) -> dict:
    unknown = set(data) - set(allowed)
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    return data
