"""HTTP plumbing: turns raw requests into Stripe API calls or sandbox control calls."""

import base64
import contextlib
import json
import logging
import re
import socket
import struct
import traceback
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from .api import ApiRequest
from .errors import StripeApiError, unrecognized_url
from .params import parse_encoded
from .shapes import API_VERSION

logger = logging.getLogger("stripe_sandbox")

_KEY_FORMAT = re.compile(r"^(sk|rk)_(test|live)_[A-Za-z0-9_]+$")
# Path segments that look like object ids (contain a digit), replaced by {id} in counters.
_ID_SEGMENT = re.compile(r"^[a-z]+_\w*\d\w*$")
_MISSING_KEY_MESSAGE = (
    "You did not provide an API key. You need to provide your API key in the Authorization header, "
    "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). "
    "See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/."
)
_RATE_LIMIT_MESSAGE = (
    "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits."
)


def normalize_path(path: str) -> str:
    """Replace id-looking segments with `{id}` (for requests no route matches)."""
    return "/".join("{id}" if _ID_SEGMENT.match(segment) else segment for segment in path.split("/"))


def api_key_from(headers) -> str | None:
    """Read the secret key from Bearer auth (or Basic auth with the key as user, as curl -u sends it)."""
    authorization = headers.get("Authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip() or None
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(credentials).decode().split(":", 1)[0] or None
        except (ValueError, UnicodeDecodeError):
            return None
    return None


def authenticate(headers) -> tuple[str, bool]:
    """Return (api key, livemode) or raise Stripe's 401."""
    key = api_key_from(headers)
    if not key:
        raise StripeApiError(401, _MISSING_KEY_MESSAGE)
    if key.startswith("pk_"):
        raise StripeApiError(
            401, "This API call cannot be made with a publishable API key. Please use a secret API key."
        )
    match = _KEY_FORMAT.match(key)
    if not match:
        redacted = key[:8] + "*" * max(0, len(key) - 12) + key[-4:]
        raise StripeApiError(401, f"Invalid API Key provided: {redacted}")
    return key, match.group(2) == "live"


class SandboxRequestHandler(BaseHTTPRequestHandler):
    """Serves `/v1/...` (Stripe API) and `/_sandbox/...` (control) for one StripeSandbox."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY each response waits ~40 ms
    # on Nagle's algorithm meeting the client's delayed ACK.
    disable_nagle_algorithm = True
    server_version = "stripe-sandbox"
    sys_version = ""

    @property
    def sandbox(self):
        return self.server.sandbox

    def log_message(self, format, *args):
        logger.debug("%s - %s", self.address_string(), format % args)

    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def _dispatch(self):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if url.path.startswith("/_sandbox/"):
            self._control(url.path, body)
        else:
            self._api(url.path, url.query, body)

    # -- Stripe API ---------------------------------------------------------------------------------

    def _api(self, path: str, query: str, body: bytes):
        api = self.sandbox.api
        matched = api.match(self.command, path)
        pattern = matched[0].pattern if matched else f"{self.command} {normalize_path(path)}"
        self.sandbox.count_request(pattern, self.headers.get("Stripe-Version"))
        if not self.sandbox.admit_request():
            # Stripe's answer above the rate limit: 429, code rate_limit, no Retry-After header.
            error = StripeApiError(429, _RATE_LIMIT_MESSAGE, code="rate_limit")
            request_id = self.sandbox.ids.new("request")
            self._send_json(error.status, error.body(request_id), {"Request-Id": request_id})
            return
        fault = self.sandbox.faults.pick(pattern)
        if fault and self._inject(fault):
            return

        request_id = self.sandbox.ids.new("request")
        headers = {
            "Request-Id": request_id,
            "Stripe-Version": self.headers.get("Stripe-Version") or API_VERSION,
        }
        idempotency_key = self.headers.get("Idempotency-Key") if self.command == "POST" else None
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        try:
            api_key, livemode = authenticate(self.headers)
            if not matched:
                raise unrecognized_url(self.command, path)
            route, path_args = matched
            cache_key = (api_key, idempotency_key)
            replay = (
                self.sandbox.idempotent_replay(cache_key, self.command, path) if idempotency_key else None
            )
            if replay:
                headers["Idempotent-Replayed"] = "true"
                return self._send_json(replay[0], replay[1], headers)
            params = parse_encoded(query)
            if self.command == "POST":
                params.update(parse_encoded(body.decode("utf-8")))
            request = ApiRequest(self.command, path, params, livemode, dict(self.headers))
            status, payload = 200, api.handle(route, path_args, request)
        except StripeApiError as error:
            status, payload = error.status, error.body(request_id)
            headers.update(error.headers)
        except Exception:  # noqa: BLE001 - a sandbox bug must surface as Stripe's api_error, not a dropped socket
            logger.error("stripe sandbox error on %s %s\n%s", self.command, path, traceback.format_exc())
            status, payload = (
                500,
                StripeApiError(500, "An unknown error occurred", error_type="api_error").body(request_id),
            )
        if idempotency_key and status < 500:
            self.sandbox.remember_idempotent(cache_key, self.command, path, status, payload)
        self._send_json(status, payload, headers)

    def _inject(self, fault) -> bool:
        """Apply a fault; return True when the request was fully handled by it."""
        if fault.kind == "latency":
            self.sandbox.wait(fault.latency_ms / 1000)
            return False
        if fault.kind in ("http_500", "http_429"):
            request_id = self.sandbox.ids.new("request")
            headers = {
                "Request-Id": request_id,
                "Stripe-Version": self.headers.get("Stripe-Version") or API_VERSION,
            }
            if fault.should_retry is not None:
                headers["Stripe-Should-Retry"] = "true" if fault.should_retry else "false"
            if fault.kind == "http_500":
                error = StripeApiError(500, "An unknown error occurred", error_type="api_error")
            else:
                error = StripeApiError(429, _RATE_LIMIT_MESSAGE, code="rate_limit")
            self._send_json(error.status, error.body(request_id), headers)
            return True
        if fault.kind == "timeout":
            self.sandbox.wait(fault.seconds)
        self._drop_connection()
        return True

    def _drop_connection(self):
        """Close the TCP connection without a response (RST, like a dropped load balancer)."""
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    # -- control ------------------------------------------------------------------------------------

    def _control(self, path: str, body: bytes):
        try:
            data = json.loads(body) if body.strip() else {}
            if not isinstance(data, dict):
                raise ValueError("JSON body must be an object")
            status, payload = self.sandbox.control(self.command, path, data)
        except (ValueError, TypeError, KeyError) as error:
            status, payload = 400, {"error": str(error)}
        self._send_json(status, payload, {})

    # -- output -------------------------------------------------------------------------------------

    def _send_json(self, status: int, payload: dict, headers: dict):
        data = json.dumps(payload, indent=2).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, no-store")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Expose-Headers", "Request-Id, Stripe-Should-Retry, Idempotency-Key")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
