"""The Stripe `/v1` endpoints: routing, parameter validation, lists, retrieves and creates.

Handlers receive decoded parameters and return plain dicts; errors are raised as StripeApiError.
Only parameters listed per route are accepted, like Stripe ("Received unknown parameter: x").
"""

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import checkout_flow, factories
from .api_money import money_routes
from .errors import StripeApiError, invalid_parameter, missing_parameter, resource_missing, unknown_parameter
from .expand import expand
from .ids import IdFactory
from .params import as_bool, as_int, as_list
from .store import ObjectStore

LIST_PARAMS = frozenset({"limit", "starting_after", "ending_before", "expand"})
CREATED_OPERATORS = frozenset({"gt", "gte", "lt", "lte"})
MAX_LIMIT = 100


@dataclass
class ApiRequest:
    """A decoded `/v1` request."""

    method: str
    path: str
    params: dict
    livemode: bool
    headers: dict = field(default_factory=dict)

    @property
    def expand_paths(self) -> list[str]:
        return [str(path) for path in as_list(self.params.get("expand"))]


@dataclass(frozen=True)
class Route:
    """One endpoint: `pattern` (e.g. `GET /v1/customers/{id}`) names it in counters and faults."""

    method: str
    template: str
    handler: Callable
    params: frozenset
    regex: re.Pattern

    @property
    def pattern(self) -> str:
        return f"{self.method} {self.template}"


def _route(method: str, template: str, handler: Callable, params=()) -> Route:
    regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$")
    return Route(method, template, handler, frozenset(params) | {"expand"}, regex)


def _list_object(url: str, data: list, has_more: bool) -> dict:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def _created_filter(params: dict) -> dict:
    """Decode `created=…` or `created[gte]=…` into operator bounds."""
    value = params.get("created")
    if value is None:
        return {}
    if not isinstance(value, dict):
        exact = as_int("created", value)
        return {"gte": exact, "lte": exact}
    bounds = {}
    for operator, bound in value.items():
        if operator not in CREATED_OPERATORS:
            raise unknown_parameter(f"created[{operator}]")
        bounds[operator] = as_int(f"created[{operator}]", bound)
    return bounds


def _limit(params: dict) -> int:
    limit = as_int("limit", params.get("limit", 10))
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid_parameter("limit", f"Invalid limit: must be between 1 and {MAX_LIMIT}")
    return limit


def _equals(params: dict, *names: str) -> Callable[[dict], bool] | None:
    """Predicate for simple `field=value` list filters that were sent."""
    wanted = {name: params[name] for name in names if name in params}
    if not wanted:
        return None
    return lambda obj: all(_as_param(obj.get(name)) == value for name, value in wanted.items())


def _as_param(value) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return value.get("id")
    return None if value is None else str(value)


def _metadata(params: dict) -> dict:
    metadata = params.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise invalid_parameter("metadata", "Invalid object")
    return {key: str(value) for key, value in metadata.items()}


class StripeApi:
    """Serves Stripe's API from an ObjectStore."""

    def __init__(self, store: ObjectStore, ids: IdFactory, account: dict):
        self.store = store
        self.ids = ids
        self.account = account
        self.routes = self._routes()

    def _routes(self) -> list[Route]:
        customer_fields = ("email", "name", "description", "phone", "metadata", "address")
        session_create = (
            "mode",
            "line_items",
            "customer",
            "customer_email",
            "customer_creation",
            "metadata",
            "success_url",
            "cancel_url",
            "return_url",
            "currency",
            "client_reference_id",
            "payment_method_types",
            "expires_at",
            "locale",
            "payment_intent_data",
            "submit_type",
            "billing_address_collection",
            "ui_mode",
            "allow_promotion_codes",
            "automatic_tax",
            "phone_number_collection",
            "custom_text",
        )
        endpoint_fields = ("url", "enabled_events", "description", "metadata", "api_version", "connect")
        return [
            _route("GET", "/v1/account", self.get_account),
            _route("GET", "/v1/accounts/{id}", self.get_account),
            _route("POST", "/v1/customers", self.create_customer, customer_fields),
            self.list_route("/v1/customers", "customer", "email"),
            _route("GET", "/v1/customers/{id}", self.retrieve("customer")),
            _route("POST", "/v1/customers/{id}", self.update_customer, customer_fields),
            _route("DELETE", "/v1/customers/{id}", self.delete_customer),
            _route("POST", "/v1/checkout/sessions", self.create_session, session_create),
            _route(
                "GET",
                "/v1/checkout/sessions",
                self.list_sessions,
                LIST_PARAMS
                | {
                    "created",
                    "status",
                    "customer",
                    "payment_intent",
                    "customer_details",
                    "payment_link",
                    "subscription",
                },
            ),
            _route("GET", "/v1/checkout/sessions/{id}", self.retrieve("checkout.session")),
            _route("GET", "/v1/checkout/sessions/{id}/line_items", self.list_line_items, LIST_PARAMS),
            _route("POST", "/v1/checkout/sessions/{id}/expire", self.expire_session),
            self.list_route("/v1/payment_intents", "payment_intent", "customer"),
            _route("GET", "/v1/payment_intents/{id}", self.retrieve("payment_intent"), ("client_secret",)),
            self.list_route("/v1/charges", "charge", "customer", "payment_intent", "transfer_group"),
            _route("GET", "/v1/charges/{id}", self.retrieve("charge")),
            _route("GET", "/v1/payment_methods/{id}", self.retrieve("payment_method")),
            _route("GET", "/v1/balance_transactions/{id}", self.retrieve("balance_transaction")),
            *money_routes(self),
            _route(
                "POST",
                "/v1/products",
                self.create_product,
                ("id", "name", "description", "metadata", "active"),
            ),
            self.list_route("/v1/products", "product", "active", "shippable", "url"),
            _route("GET", "/v1/products/{id}", self.retrieve("product")),
            _route("GET", "/v1/products/{id}/features", self.list_product_features, LIST_PARAMS),
            _route(
                "POST",
                "/v1/prices",
                self.create_price,
                (
                    "currency",
                    "unit_amount",
                    "product",
                    "product_data",
                    "metadata",
                    "nickname",
                    "lookup_key",
                    "active",
                    "recurring",
                    "tax_behavior",
                ),
            ),
            self.list_route("/v1/prices", "price", "active", "currency", "product", "type"),
            _route("GET", "/v1/prices/{id}", self.retrieve("price")),
            _route(
                "GET",
                "/v1/events",
                self.list_events,
                LIST_PARAMS | {"created", "type", "types", "delivery_success"},
            ),
            _route("GET", "/v1/events/{id}", self.retrieve("event")),
            _route("POST", "/v1/webhook_endpoints", self.create_webhook_endpoint, endpoint_fields),
            _route("GET", "/v1/webhook_endpoints", self.list_objects("webhook_endpoint"), LIST_PARAMS),
            _route("GET", "/v1/webhook_endpoints/{id}", self.retrieve("webhook_endpoint")),
            _route(
                "POST",
                "/v1/webhook_endpoints/{id}",
                self.update_webhook_endpoint,
                (*endpoint_fields, "disabled"),
            ),
            _route("DELETE", "/v1/webhook_endpoints/{id}", self.delete_webhook_endpoint),
        ]

    def match(self, method: str, path: str) -> tuple[Route, dict] | None:
        """Return the route serving `method path` and its path ids."""
        for route in self.routes:
            if route.method == method:
                found = route.regex.match(path)
                if found:
                    return route, found.groupdict()
        return None

    def handle(self, route: Route, path_args: dict, request: ApiRequest) -> dict:
        """Validate parameters, then run the route's handler under the store lock."""
        for name in request.params:
            if name not in route.params:
                raise unknown_parameter(name)
        with self.store.lock:
            return route.handler(request, **path_args)

    # -- generic retrieve / list ------------------------------------------------------------------

    def retrieve(self, object_type: str) -> Callable:
        """Handler factory: `GET /v1/<objects>/{id}` with `expand[]`."""

        def handler(request: ApiRequest, id: str) -> dict:
            obj = self.store.require(object_type, id, request.livemode)
            if obj.get("deleted") and object_type == "webhook_endpoint":
                raise resource_missing(object_type, id)
            return expand(self.store, obj, request.expand_paths)

        return handler

    def list_route(self, template: str, object_type: str, *equal_filters: str) -> Route:
        """A list endpoint with `created` and equality filters, accepting exactly those parameters."""
        params = LIST_PARAMS | {"created", *equal_filters}
        return _route("GET", template, self.list_objects(object_type, *equal_filters), params)

    def list_objects(self, object_type: str, *equal_filters: str) -> Callable:
        """Handler factory: a list endpoint with `created` and simple equality filters."""

        def handler(request: ApiRequest) -> dict:
            return self._page(object_type, request, _equals(request.params, *equal_filters))

        return handler

    def _page(self, object_type: str, request: ApiRequest, predicate=None) -> dict:
        params = request.params

        def visible(obj: dict) -> bool:
            return not obj.get("deleted") and (predicate is None or predicate(obj))

        objects, has_more = self.store.page(
            object_type,
            request.livemode,
            limit=_limit(params),
            created=_created_filter(params),
            starting_after=params.get("starting_after") or None,
            ending_before=params.get("ending_before") or None,
            predicate=visible,
        )
        listing = _list_object(request.path, objects, has_more)
        return expand(self.store, listing, request.expand_paths)

    # -- account ----------------------------------------------------------------------------------

    def get_account(self, request: ApiRequest, id: str | None = None) -> dict:
        """`GET /v1/account` (the key's own account) and `GET /v1/accounts/{id}`."""
        if id is not None and id != self.account["id"]:
            raise StripeApiError(
                403,
                f"The provided key does not have access to account '{id}' (or that account does not exist). "
                "Application access may have been revoked.",
                error_type="invalid_request_error",
                code="account_invalid",
            )
        return expand(self.store, self.account, request.expand_paths)

    # -- customers --------------------------------------------------------------------------------

    def create_customer(self, request: ApiRequest) -> dict:
        """`POST /v1/customers`."""
        params = request.params
        customer = factories.customer(
            self.ids,
            created=int(time.time()),
            livemode=request.livemode,
            email=params.get("email"),
            name=params.get("name"),
            metadata=_metadata(params),
        )
        customer.update(description=params.get("description"), phone=params.get("phone"))
        return expand(self.store, self.store.add(customer), request.expand_paths)

    def update_customer(self, request: ApiRequest, id: str) -> dict:
        """`POST /v1/customers/{id}`: metadata is merged (empty value deletes a key), like Stripe."""
        customer = self.store.require("customer", id, request.livemode)
        params = request.params
        for name in ("email", "name", "description", "phone"):
            if name in params:
                customer[name] = params[name] or None
        if "metadata" in params:
            merged = {**customer["metadata"], **_metadata(params)}
            customer["metadata"] = {key: value for key, value in merged.items() if value != ""}
        return expand(self.store, customer, request.expand_paths)

    def delete_customer(self, request: ApiRequest, id: str) -> dict:
        """`DELETE /v1/customers/{id}`: later retrieves return the deleted stub, as on Stripe."""
        customer = self.store.require("customer", id, request.livemode)
        stub = {"id": id, "object": "customer", "deleted": True, "livemode": customer["livemode"]}
        self.store.replace(stub)
        return stub

    # -- checkout sessions ------------------------------------------------------------------------

    def create_session(self, request: ApiRequest) -> dict:
        """`POST /v1/checkout/sessions` (payment mode): returns an open session with a URL."""
        params = request.params
        if "mode" not in params:
            raise missing_parameter("mode")
        if params["mode"] != "payment":
            raise invalid_parameter("mode", "The sandbox only supports `mode=payment` Checkout Sessions.")
        if not params.get("line_items"):
            raise missing_parameter("line_items")
        customer_id = params.get("customer")
        if customer_id:
            self.store.require("customer", customer_id, request.livemode, param="customer")
        now = int(time.time())
        items = [
            self._line_item_price(request, index, item, now)
            for index, item in enumerate(params["line_items"])
        ]
        if len({price["currency"] for price, _ in items}) > 1:
            raise invalid_parameter("line_items", "All line items must use the same currency.")
        session = checkout_flow.open_session(
            self.store,
            self.ids,
            items=items,
            created=now,
            livemode=request.livemode,
            metadata=_metadata(params),
            customer_id=customer_id,
            customer_email=params.get("customer_email"),
            success_url=params.get("success_url"),
            cancel_url=params.get("cancel_url"),
            client_reference_id=params.get("client_reference_id"),
            locale=params.get("locale"),
        )
        for name in ("submit_type", "billing_address_collection", "ui_mode"):
            if name in params:
                session[name] = params[name]
        if "payment_method_types" in params:
            session["payment_method_types"] = as_list(params["payment_method_types"])
        if "expires_at" in params:
            session["expires_at"] = as_int("expires_at", params["expires_at"])
        if "allow_promotion_codes" in params:
            session["allow_promotion_codes"] = as_bool(
                "allow_promotion_codes", params["allow_promotion_codes"]
            )
        if params.get("customer_creation"):
            session["customer_creation"] = params["customer_creation"]
        return expand(self.store, session, request.expand_paths)

    def _line_item_price(self, request: ApiRequest, index: int, item: dict, now: int) -> tuple[dict, int]:
        """Resolve `line_items[i][price]` or `[price_data]` to a stored price and quantity."""
        name = f"line_items[{index}]"
        if not isinstance(item, dict):
            raise invalid_parameter(name, "Invalid hash")
        quantity = as_int(f"{name}[quantity]", item.get("quantity", 1))
        if "price" in item:
            return self.store.require(
                "price", item["price"], request.livemode, param=f"{name}[price]"
            ), quantity
        data = item.get("price_data")
        if not isinstance(data, dict):
            raise missing_parameter(f"{name}[price]")
        price = self._new_price(request, data, now, param=f"{name}[price_data]")
        return price, quantity

    def list_sessions(self, request: ApiRequest) -> dict:
        """`GET /v1/checkout/sessions` with status/customer/payment_intent/customer_details filters."""
        params = request.params
        equal = _equals(params, "status", "customer", "payment_intent", "payment_link", "subscription")
        email = (params.get("customer_details") or {}).get("email") if "customer_details" in params else None
        if "customer_details" in params and not email:
            raise missing_parameter("customer_details[email]")

        def predicate(session: dict) -> bool:
            if equal and not equal(session):
                return False
            return email is None or (session.get("customer_details") or {}).get("email") == email

        return self._page("checkout.session", request, predicate)

    def list_line_items(self, request: ApiRequest, id: str) -> dict:
        """`GET /v1/checkout/sessions/{id}/line_items`."""
        self.store.require("checkout.session", id, request.livemode)
        items = self.store.line_items.get(id, [])
        params = request.params
        limit = _limit(params)
        start = 0
        if params.get("starting_after"):
            ids = [item["id"] for item in items]
            if params["starting_after"] not in ids:
                raise invalid_parameter("starting_after", f"No such object: '{params['starting_after']}'")
            start = ids.index(params["starting_after"]) + 1
        page = items[start : start + limit]
        listing = _list_object(request.path, page, start + limit < len(items))
        return expand(self.store, listing, request.expand_paths)

    def list_product_features(self, request: ApiRequest, id: str) -> dict:
        """`GET /v1/products/{id}/features`: dj-stripe lists them whenever it syncs a product. The
        sandbox sells no Entitlements features, so the list is empty, as Stripe's is for such a product."""
        self.store.require("product", id, request.livemode)
        return _list_object(request.path, [], False)

    def expire_session(self, request: ApiRequest, id: str) -> dict:
        """`POST /v1/checkout/sessions/{id}/expire`."""
        session = self.store.require("checkout.session", id, request.livemode)
        if session["status"] != "open":
            raise StripeApiError(
                400,
                'Only Checkout Sessions with a status in ["open"] can be expired. '
                f'This Checkout Session has a status of "{session["status"]}".',
            )
        checkout_flow.expire_session(self.store, self.ids, session, created=int(time.time()))
        return expand(self.store, session, request.expand_paths)

    # -- products and prices ----------------------------------------------------------------------

    def create_product(self, request: ApiRequest) -> dict:
        """`POST /v1/products`."""
        params = request.params
        if not params.get("name"):
            raise missing_parameter("name")
        product = self._new_product(request, params, int(time.time()))
        return expand(self.store, product, request.expand_paths)

    def _new_product(self, request: ApiRequest, data: dict, now: int) -> dict:
        product = factories.product(
            self.ids,
            created=now,
            livemode=request.livemode,
            name=data["name"],
            description=data.get("description"),
            metadata=_metadata(data),
        )
        if data.get("id"):
            if self.store.get("product", data["id"]):
                raise invalid_parameter(
                    "id", f"Product already exists with ID {data['id']}", code="resource_already_exists"
                )
            product["id"] = data["id"]
        if "active" in data:
            product["active"] = as_bool("active", data["active"])
        return self.store.add(product)

    def create_price(self, request: ApiRequest) -> dict:
        """`POST /v1/prices`."""
        price = self._new_price(request, request.params, int(time.time()), param="")
        params = request.params
        price.update(
            nickname=params.get("nickname"), lookup_key=params.get("lookup_key"), metadata=_metadata(params)
        )
        if "active" in params:
            price["active"] = as_bool("active", params["active"])
        return expand(self.store, price, request.expand_paths)

    def _new_price(self, request: ApiRequest, data: dict, now: int, param: str) -> dict:
        """Create a price from `currency`, `unit_amount` and `product` or `product_data`."""

        def name(key: str) -> str:
            return f"{param}[{key}]" if param else key

        for required in ("currency", "unit_amount"):
            if required not in data:
                raise missing_parameter(name(required))
        if data.get("product"):
            product = self.store.require("product", data["product"], request.livemode, param=name("product"))
        elif isinstance(data.get("product_data"), dict) and data["product_data"].get("name"):
            product = self._new_product(request, data["product_data"], now)
        else:
            raise missing_parameter(name("product"))
        price = factories.price(
            self.ids,
            created=now,
            livemode=request.livemode,
            product_id=product["id"],
            currency=str(data["currency"]).lower(),
            unit_amount=as_int(name("unit_amount"), data["unit_amount"]),
        )
        recurring = data.get("recurring")
        if isinstance(recurring, dict):
            price["type"] = "recurring"
            price["recurring"] = {
                "interval": recurring.get("interval", "month"),
                "interval_count": as_int(
                    name("recurring[interval_count]"), recurring.get("interval_count", 1)
                ),
                "meter": None,
                "trial_period_days": None,
                "usage_type": "licensed",
            }
        if not product.get("default_price"):
            product["default_price"] = price["id"]
        return self.store.add(price)

    # -- events -----------------------------------------------------------------------------------

    def list_events(self, request: ApiRequest) -> dict:
        """`GET /v1/events` with `type` (supports `*` wildcards) or `types[]`."""
        params = request.params
        if "type" in params and "types" in params:
            raise invalid_parameter("types", "You may only specify one of these parameters: type, types.")
        wanted = as_list(params.get("types")) if "types" in params else as_list(params.get("type"))
        patterns = [re.compile("^" + re.escape(str(kind)).replace(r"\*", ".*") + "$") for kind in wanted]
        delivery = (
            as_bool("delivery_success", params["delivery_success"]) if "delivery_success" in params else None
        )

        def predicate(event: dict) -> bool:
            if patterns and not any(pattern.match(event["type"]) for pattern in patterns):
                return False
            return delivery is None or (event["pending_webhooks"] == 0) == delivery

        return self._page("event", request, predicate)

    # -- webhook endpoints ------------------------------------------------------------------------

    def create_webhook_endpoint(self, request: ApiRequest) -> dict:
        """`POST /v1/webhook_endpoints`: the response alone carries the signing `secret`."""
        params = request.params
        for required in ("url", "enabled_events"):
            if not params.get(required):
                raise missing_parameter(required)
        endpoint = factories.webhook_endpoint(
            self.ids,
            created=int(time.time()),
            livemode=request.livemode,
            url=params["url"],
            enabled_events=as_list(params["enabled_events"]),
            api_version=params.get("api_version") or None,
            description=params.get("description"),
            metadata=_metadata(params),
        )
        self.store.add(endpoint)
        return {**endpoint, "secret": self.ids.webhook_secret()}

    def update_webhook_endpoint(self, request: ApiRequest, id: str) -> dict:
        """`POST /v1/webhook_endpoints/{id}`."""
        endpoint = self.store.require("webhook_endpoint", id, request.livemode)
        params = request.params
        if "url" in params:
            endpoint["url"] = params["url"]
        if "description" in params:
            endpoint["description"] = params["description"] or None
        if "enabled_events" in params:
            endpoint["enabled_events"] = as_list(params["enabled_events"])
        if "metadata" in params:
            endpoint["metadata"] = {**endpoint["metadata"], **_metadata(params)}
        if "disabled" in params:
            endpoint["status"] = "disabled" if as_bool("disabled", params["disabled"]) else "enabled"
        return expand(self.store, endpoint, request.expand_paths)

    def delete_webhook_endpoint(self, request: ApiRequest, id: str) -> dict:
        """`DELETE /v1/webhook_endpoints/{id}`."""
        endpoint = self.store.require("webhook_endpoint", id, request.livemode)
        stub = {"id": id, "object": "webhook_endpoint", "deleted": True, "livemode": endpoint["livemode"]}
        self.store.replace(stub)
        return {"id": id, "object": "webhook_endpoint", "deleted": True}
