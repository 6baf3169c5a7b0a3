"""`StripeSandbox`: the fake Stripe server, usable in-process (tests) or as a long-running service.

Point stripe-python at it with `stripe.api_base = sandbox.url` (dj-stripe: setting STRIPE_API_HOST).
Objects are kept per mode: test keys (sk_test_…) see test objects, live keys see livemode objects,
and crossing modes gives Stripe's "a similar object exists in live mode" 404.
"""

import re
import threading
import time
from collections import Counter
from http.server import ThreadingHTTPServer

from . import billing_flow, checkout_extras, checkout_flow, discounts, factories
from .api import StripeApi
from .errors import StripeApiError
from .faults import Fault, FaultInjector
from .http_handler import SandboxRequestHandler
from .ids import IdFactory
from .operations import MoneyOperations
from .shapes import clone
from .store import ObjectStore
from .webhooks import deliver_event, delivered

_CURRENCY = re.compile(r"^[a-z]{3}$")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address, sandbox):
        self.sandbox = sandbox
        super().__init__(address, SandboxRequestHandler)


class StripeSandbox(MoneyOperations):
    """A local fake of Stripe's HTTP API plus `/_sandbox/` control endpoints."""

    def __init__(self, id_seed: int | None = None, settlement_currency: str = "usd"):
        self.ids = IdFactory(id_seed)
        self.store = ObjectStore(settlement_currency=settlement_currency.lower())
        self.faults = FaultInjector()
        self.account = factories.account(self.ids, created=int(time.time()))
        self.account["default_currency"] = self.store.settlement_currency
        self.api = StripeApi(self.store, self.ids, self.account)
        self._counts: Counter = Counter()
        self._versions: Counter = Counter()  # (Stripe-Version asked for, endpoint pattern)
        self._counts_lock = threading.Lock()
        self._idempotent: dict[tuple, tuple] = {}
        # Live mode's read/write limit when set (`POST /_sandbox/rate_limit`): requests per
        # wall-clock second above it are answered 429 as Stripe does; 0 = unlimited.
        self.rate_limit = 0
        self._per_second: Counter = Counter()
        self._rate_limited = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a daemon thread and return the base URL (port 0 picks a free port)."""
        if self._server is not None:
            return self.url
        self._stopping.clear()
        self._server = _Server((host, port), self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="stripe-sandbox", daemon=True)
        self._thread.start()
        return self.url

    def serve_forever(self, port: int = 12111, host: str = "127.0.0.1", on_ready=None) -> None:
        """Serve in the current thread until interrupted (used by `manage.py stripe_sandbox`)."""
        self._stopping.clear()
        self._server = _Server((host, port), self)
        if on_ready:
            on_ready(self.url)
        try:
            self._server.serve_forever()
        finally:
            self._stopping.set()
            self._server.server_close()
            self._server = None

    def stop(self) -> None:
        """Stop serving; requests held by latency/timeout faults are released."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321 (use as stripe.api_base)."""
        if self._server is None:
            raise RuntimeError("StripeSandbox is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def reset(self) -> None:
        """Clear objects, faults, request counters and idempotency records (the account stays)."""
        self.store.clear()
        self.faults.clear()
        self.reset_request_counts()
        self.rate_limit = 0
        with self._counts_lock:
            self._idempotent.clear()

    def wait(self, seconds: float) -> None:
        """Sleep, but wake up early when the sandbox stops."""
        self._stopping.wait(max(0.0, seconds))

    # -- checkouts ----------------------------------------------------------------------------------

    def create_checkout(
        self,
        email: str,
        name: str | None,
        service_id: str,
        amount: int,
        currency: str = "eur",
        delayed: str | None = None,
        livemode: bool = False,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        deliver: bool = True,
        created: int | None = None,
        product_name: str | None = None,
        success_url: str | None = None,
        **options,
    ) -> dict:
        """Create a paid checkout (customer, price, session, PI, charge, events) and deliver its events.

        Options (see CHECKOUT_OPTIONS): `mode="subscription"` (with `interval`, `trial_days`) creates the
        subscription and its first paid invoice; `coupon`/`promotion_code` (ids or code) or
        `percent_off`/`amount_off` (a new coupon, `duration`) discount it; `payment_link` buys through
        a link (its metadata reaches the session); `presentment_currency` charges in another currency
        with Adaptive Pricing; `customer` reuses an existing customer.

        Returns `{"session": {...}, "events": [ids], "deliveries": [{"event", "status", "body"}]}`.
        """
        pending = _pending_webhooks(delayed, webhook_url, webhook_secret, deliver)
        _check_options(options)
        with self.store.lock:
            session, events = self._build_checkout(
                **options,
                email=email,
                name=name,
                service_id=service_id,
                amount=amount,
                currency=currency,
                delayed=delayed,
                livemode=livemode,
                created=created,
                product_name=product_name,
                success_url=success_url,
                status="complete",
                payment_status=None,
                pending_webhooks=pending,
            )
            session = clone(session)
        deliveries = self.deliver([e["id"] for e in events], webhook_url, webhook_secret) if pending else []
        return {"session": session, "events": [e["id"] for e in events], "deliveries": deliveries}

    def complete_checkout(
        self,
        session_id: str,
        email: str | None = None,
        name: str | None = None,
        delayed: str | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        deliver: bool = True,
    ) -> dict:
        """Pay a session created through the API (`POST /v1/checkout/sessions`), as if the customer did."""
        pending = _pending_webhooks(delayed, webhook_url, webhook_secret, deliver)
        with self.store.lock:
            session = self.store.get("checkout.session", session_id)
            if session is None:
                raise KeyError(f"No such checkout.session: {session_id!r}")
            if session["status"] != "open":
                raise ValueError(f"checkout session is {session['status']}, not open")
            email = email or session.get("customer_email")
            if session["mode"] == "subscription":
                if delayed:
                    raise ValueError("delayed payments are not supported in subscription mode")
                events = billing_flow.complete_subscription_session(
                    self.store,
                    self.ids,
                    session,
                    email=email,
                    name=name,
                    created=int(time.time()),
                    pending_webhooks=pending,
                )
            else:
                events = checkout_flow.complete_session(
                    self.store,
                    self.ids,
                    session,
                    email=email,
                    name=name,
                    created=int(time.time()),
                    delayed=delayed,
                    pending_webhooks=pending,
                )
            session = clone(session)
        deliveries = self.deliver([e["id"] for e in events], webhook_url, webhook_secret) if pending else []
        return {"session": session, "events": [e["id"] for e in events], "deliveries": deliveries}

    def seed(self, sessions: list[dict] | None = None, count: int | None = None, **defaults) -> dict:
        """Create many sessions without delivering (`sessions=[{...}]`, or `count=N` copies of `defaults`).

        In count mode `{i}` in email/name/service_id is replaced by the index and, unless given,
        `created` runs from `created_from` (default: now - N minutes) in `created_step` seconds (60).
        """
        if sessions is None:
            if count is None or int(count) < 0:
                raise ValueError("give either sessions=[...] or count=N")
            sessions = list(self._counted_specs(int(count), defaults))
        made = []
        with self.store.lock:
            for spec in sessions:
                spec = {
                    **{k: v for k, v in defaults.items() if k not in ("created_from", "created_step")},
                    **spec,
                }
                options = {k: v for k, v in spec.items() if k in CHECKOUT_OPTIONS}
                _check_options(options)
                session, _ = self._build_checkout(
                    **options,
                    email=spec.get("email"),
                    name=spec.get("name"),
                    service_id=str(spec.get("service_id", "seed")),
                    amount=spec.get("amount", 1000),
                    currency=spec.get("currency", "eur"),
                    delayed=spec.get("delayed"),
                    livemode=bool(spec.get("livemode", False)),
                    created=spec.get("created"),
                    product_name=spec.get("product_name"),
                    success_url=spec.get("success_url"),
                    status=spec.get("status", "complete"),
                    payment_status=spec.get("payment_status"),
                    pending_webhooks=0,
                )
                made.append(session["id"])
        return {"created": len(made), "sessions": made}

    @staticmethod
    def _counted_specs(count: int, defaults: dict):
        start = defaults.get("created_from", int(time.time()) - count * 60)
        step = int(defaults.get("created_step", 60))
        for index in range(count):
            spec = {"created": int(start) + index * step}
            for name in ("email", "name", "service_id"):
                if isinstance(defaults.get(name), str):
                    spec[name] = defaults[name].replace("{i}", str(index))
            spec.setdefault("email", f"customer{index}@example.com")
            yield spec

    def _build_checkout(
        self,
        *,
        email,
        name,
        service_id,
        amount,
        currency,
        delayed,
        livemode,
        created,
        product_name,
        success_url,
        status,
        payment_status,
        pending_webhooks,
        mode="payment",
        interval="month",
        coupon=None,
        promotion_code=None,
        percent_off=None,
        amount_off=None,
        duration="once",
        duration_in_months=None,
        trial_days=None,
        payment_link=None,
        presentment_currency=None,
        customer=None,
    ) -> tuple[dict, list[dict]]:
        """Validate one checkout spec and build it in the store (caller holds the store lock)."""
        if payment_link:
            amount = 1  # the link's price decides
        amount = int(amount)
        currency = str(currency).lower()
        if amount <= 0:
            raise ValueError("amount must be a positive integer (minor units)")
        if not _CURRENCY.match(currency):
            raise ValueError("currency must be a 3-letter ISO code")
        if status not in checkout_flow.SESSION_STATUSES:
            raise ValueError(f"status must be one of {checkout_flow.SESSION_STATUSES}")
        if payment_status not in (None, "paid", "unpaid"):
            raise ValueError("payment_status must be 'paid' or 'unpaid'")
        if delayed not in checkout_flow.DELAYED_OUTCOMES:
            raise ValueError("delayed must be null, 'succeeded' or 'failed'")
        created = int(created) if created is not None else int(time.time())
        if mode not in ("payment", "subscription"):
            raise ValueError("mode must be 'payment' or 'subscription'")
        if mode == "subscription" and delayed:
            raise ValueError("delayed payments are not supported in subscription mode")
        if trial_days and mode != "subscription":
            raise ValueError("trial_days needs mode='subscription'")
        if presentment_currency and mode != "payment":
            raise ValueError("presentment_currency (Adaptive Pricing) needs mode='payment'")
        if customer:
            customer_obj = self.store.get("customer", customer)
            if customer_obj is None or customer_obj.get("deleted"):
                raise KeyError(f"No such customer: {customer!r}")
        metadata = {"serviceId": service_id}
        link = None
        if payment_link:
            link = self.store.get("payment_link", payment_link)
            if link is None:
                raise KeyError(f"No such payment_link: {payment_link!r}")
            price = self.store.get("price", self.store.line_items[link["id"]][0]["price"])
            metadata = dict(link["metadata"])
            mode = "subscription" if price["type"] == "recurring" else "payment"
        else:
            price = checkout_flow.ensure_service_price(
                self.store,
                self.ids,
                service_id=service_id,
                product_name=product_name,
                amount=amount,
                currency=currency,
                livemode=livemode,
                created=created,
                interval=interval if mode == "subscription" else None,
            )
        coupon_obj, promotion = self._checkout_coupon(
            coupon,
            promotion_code,
            percent_off,
            amount_off,
            currency,
            duration,
            duration_in_months,
            livemode,
            created,
        )
        session = checkout_flow.open_session(
            self.store,
            self.ids,
            items=[(price, 1)],
            created=created,
            livemode=livemode,
            mode=mode,
            metadata=metadata,
            customer_id=customer,
            customer_email=None if customer else email,
            success_url=success_url
            or "http://localhost:8000/checkout/success?session_id={CHECKOUT_SESSION_ID}",
            cancel_url="http://localhost:8000/checkout/cancel",
        )
        if link is not None:
            session["payment_link"] = link["id"]
        if mode == "subscription":
            session["invoice_creation"] = None
            self.store.session_options[session["id"]] = {"subscription_metadata": metadata}
            if trial_days:
                checkout_extras.apply_free_trial(self.store, session, trial_days)
        if coupon_obj is not None:
            checkout_extras.apply_discount(self.store, self.ids, session, coupon_obj, promotion)
        if presentment_currency:
            checkout_extras.apply_currency_conversion(self.store, session, presentment_currency)
        if status == "open":
            return session, []
        if status == "expired":
            return session, checkout_flow.expire_session(self.store, self.ids, session, created=created)
        if mode == "subscription":
            events = billing_flow.complete_subscription_session(
                self.store,
                self.ids,
                session,
                email=email,
                name=name,
                created=created,
                pending_webhooks=pending_webhooks,
            )
            return session, events
        events = checkout_flow.complete_session(
            self.store,
            self.ids,
            session,
            email=email,
            name=name,
            created=created,
            delayed=delayed,
            settled=payment_status != "unpaid",
            pending_webhooks=pending_webhooks,
        )
        return session, events

    def _checkout_coupon(
        self, coupon, promotion_code, percent_off, amount_off, currency, duration, months, livemode, created
    ):
        """The coupon a checkout applies: an existing one, or a new one from percent_off/amount_off."""
        if percent_off is not None or amount_off is not None:
            if coupon or promotion_code:
                raise ValueError("give coupon/promotion_code or percent_off/amount_off, not both")
            created_coupon, _ = discounts.create_coupon(
                self.store,
                self.ids,
                created=created,
                livemode=livemode,
                percent_off=None if percent_off is None else float(percent_off),
                amount_off=None if amount_off is None else int(amount_off),
                currency=currency if amount_off is not None else None,
                duration=duration,
                duration_in_months=None if months is None else int(months),
            )
            return created_coupon, None
        return discounts.resolve(self.store, coupon, promotion_code)

    # -- webhooks -----------------------------------------------------------------------------------

    def deliver(
        self, event_ids: list[str], webhook_url: str, webhook_secret: str, timeout: float = 30.0
    ) -> list:
        """POST stored events, in order, signed with `webhook_secret`; return one result per event."""
        if not webhook_url or not webhook_secret:
            raise ValueError("webhook_url and webhook_secret are required")
        results = []
        for event_id in event_ids:
            with self.store.lock:
                event = self.store.get("event", event_id)
                if event is None:
                    raise KeyError(f"No such event: {event_id!r}")
                event = clone(event)
            # Delivery happens outside the lock: the receiver usually calls back into this sandbox.
            result = deliver_event(event, webhook_url, webhook_secret, timeout=timeout)
            if delivered(result):
                with self.store.lock:
                    stored = self.store.get("event", event_id)
                    stored["pending_webhooks"] = max(0, stored["pending_webhooks"] - 1)
            results.append(result)
        return results

    # -- faults and counters ------------------------------------------------------------------------

    def set_fault(
        self,
        endpoint: str = "*",
        kind: str = "http_500",
        rate: float = 1.0,
        count: int | None = None,
        latency_ms: int = 0,
        seconds: float = 30.0,
        seed: int = 0,
        should_retry: bool | None = None,
    ) -> dict:
        """Make matching `/v1` requests misbehave; `endpoint` uses request_counts() names or `*`."""
        fault = Fault(
            endpoint=endpoint,
            kind=kind,
            rate=rate,
            count=None if count is None else int(count),
            latency_ms=int(latency_ms),
            seconds=float(seconds),
            seed=seed,
            should_retry=should_retry,
        )
        return self.faults.add(fault).describe()

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self.faults.clear()

    def count_request(self, pattern: str, version: str | None = None) -> None:
        """Record one `/v1` request under its endpoint pattern, and the API version it asked for."""
        with self._counts_lock:
            self._counts[pattern] += 1
            self._versions[(version or "", pattern)] += 1

    def admit_request(self) -> bool:
        """Count a `/v1` request in its wall-clock second; False when over the rate limit."""
        second = int(time.time())
        with self._counts_lock:
            self._per_second[second] += 1
            if self.rate_limit and self._per_second[second] > self.rate_limit:
                self._rate_limited += 1
                return False
        return True

    def rate_report(self) -> dict:
        """The limit, requests per second (all, 429s included), and how many were answered 429."""
        with self._counts_lock:
            per_second = dict(sorted(self._per_second.items()))
            return {
                "per_second_limit": self.rate_limit,
                "rate_limited": self._rate_limited,
                "max_in_one_second": max(per_second.values(), default=0),
                "per_second": {str(k): v for k, v in per_second.items()},
            }

    def request_counts(self) -> dict:
        """Per-endpoint `/v1` request counts (ids shown as `{id}`), plus `total`."""
        with self._counts_lock:
            counts = dict(self._counts)
        counts["total"] = sum(counts.values())
        return counts

    def request_versions(self) -> dict[str, dict[str, int]]:
        """`{Stripe-Version header ("" when none was sent): {endpoint pattern: requests}}`."""
        with self._counts_lock:
            versions: dict[str, dict[str, int]] = {}
            for (version, pattern), n in self._versions.items():
                versions.setdefault(version, {})[pattern] = n
        return versions

    def reset_request_counts(self) -> None:
        """Zero the request counters."""
        with self._counts_lock:
            self._counts.clear()
            self._versions.clear()
            self._per_second.clear()
            self._rate_limited = 0

    # -- idempotency (stripe-python sends an Idempotency-Key on every POST and reuses it on retry) --

    def idempotent_replay(self, key: tuple, method: str, path: str):
        with self._counts_lock:
            record = self._idempotent.get(key)
        if record is None:
            return None
        if record[0] != (method, path):
            raise StripeApiError(
                400,
                "Keys for idempotent requests can only be used with the same parameters "
                "they were first used with.",
                error_type="idempotency_error",
            )
        return record[1], record[2]

    def remember_idempotent(self, key: tuple, method: str, path: str, status: int, payload: dict) -> None:
        with self._counts_lock:
            self._idempotent[key] = ((method, path), status, payload)

    # -- control API --------------------------------------------------------------------------------

    def control(self, method: str, path: str, data: dict) -> tuple[int, dict]:
        """Serve a `/_sandbox/...` control request; returns (status, JSON body)."""
        route = f"{method} {path.rstrip('/')}"
        if route == "GET /_sandbox/health":
            return 200, {"status": "ok", "account": self.account["id"]}
        if route == "POST /_sandbox/checkouts":
            return 200, self.create_checkout(**_pick(data, _CHECKOUT_FIELDS))
        complete = re.fullmatch(r"POST /_sandbox/checkouts/([^/]+)/complete", route)
        if complete:
            return 200, self.complete_checkout(complete.group(1), **_pick(data, _COMPLETE_FIELDS))
        if route == "POST /_sandbox/seed":
            return 200, self.seed(**data)
        if route == "POST /_sandbox/faults":
            return 200, self.set_fault(**_pick(data, _FAULT_FIELDS))
        if route == "GET /_sandbox/faults":
            return 200, {"faults": self.faults.describe()}
        if route == "DELETE /_sandbox/faults":
            self.clear_faults()
            return 200, {"faults": []}
        if route == "GET /_sandbox/requests":
            return 200, self.request_counts()
        if route == "DELETE /_sandbox/requests":
            self.reset_request_counts()
            return 200, self.request_counts()
        if route == "POST /_sandbox/rate_limit":
            self.rate_limit = max(0, int(data.get("per_second") or 0))
            return 200, self.rate_report()
        if route == "GET /_sandbox/rate_limit":
            return 200, self.rate_report()
        if route == "POST /_sandbox/deliver":
            return 200, {
                "deliveries": self.deliver(
                    data["events"], data.get("webhook_url"), data.get("webhook_secret")
                )
            }
        if route == "POST /_sandbox/reset":
            self.reset()
            return 200, {"status": "reset"}
        handled = self.money_control(method, path, data)
        if handled is not None:
            return handled
        return 404, {"error": f"Unknown sandbox control endpoint: {route}"}


CHECKOUT_OPTIONS = (
    "mode",
    "interval",
    "coupon",
    "promotion_code",
    "percent_off",
    "amount_off",
    "duration",
    "duration_in_months",
    "trial_days",
    "payment_link",
    "presentment_currency",
    "customer",
)
_CHECKOUT_FIELDS = (
    "email",
    "name",
    "service_id",
    "amount",
    "currency",
    "delayed",
    "livemode",
    "webhook_url",
    "webhook_secret",
    "deliver",
    "created",
    "product_name",
    "success_url",
    *CHECKOUT_OPTIONS,
)
_COMPLETE_FIELDS = ("email", "name", "delayed", "webhook_url", "webhook_secret", "deliver")
_FAULT_FIELDS = ("endpoint", "kind", "rate", "count", "latency_ms", "seconds", "seed", "should_retry")


def _pick(data: dict, allowed: tuple) -> dict:
    """Reject unknown control fields instead of silently ignoring typos."""
    unknown = set(data) - set(allowed)
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    return data


def _check_options(options: dict) -> None:
    unknown = set(options) - set(CHECKOUT_OPTIONS)
    if unknown:
        raise TypeError(f"unknown checkout option(s): {', '.join(sorted(unknown))}")


def _pending_webhooks(delayed, webhook_url, webhook_secret, deliver) -> int:
    """Check a checkout's options before anything is stored; 1 if its events will be delivered."""
    if delayed not in checkout_flow.DELAYED_OUTCOMES:
        raise ValueError("delayed must be null, 'succeeded' or 'failed'")
    if deliver and webhook_url and not webhook_secret:
        raise ValueError("webhook_secret is required to sign deliveries")
    return 1 if (webhook_url and deliver) else 0
