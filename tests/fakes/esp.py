"""A fake Postmark (https://postmarkapp.com) HTTP API for tests.

Point Anymail's *real* Postmark backend at it::

    with FakePostmark() as fake:
        settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
        settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "test-token", "POSTMARK_API_URL": fake.url}
        ...  # send mail through django.core.mail
        assert fake.messages[0]["subject"] == "Hello"

Standard library only: a ``ThreadingHTTPServer`` on a free 127.0.0.1 port in a daemon thread.

Endpoints (POST, JSON): ``/email``, ``/email/batch``, ``/email/withTemplate`` and
``/email/batchWithTemplates`` (the last two record the template id/alias and model; nothing is
rendered). Responses mirror Postmark's documented shapes and error codes:

* success: HTTP 200 ``{"To", "SubmittedAt", "MessageID", "ErrorCode": 0, "Message": "OK"}``
  (batch endpoints: HTTP 200 with a list of those, one per message, errors included inline);
* missing/wrong ``X-Postmark-Server-Token``: HTTP 401, ErrorCode 10;
* body not JSON: HTTP 422, ErrorCode 402; missing From / malformed address: HTTP 422, ErrorCode 300;
* every recipient refused (see :meth:`FakePostmark.refuse`): HTTP 422, ErrorCode 406
  -> Anymail raises ``AnymailRecipientsRefused``;
  only some refused: HTTP 200, ErrorCode 0 with Postmark's "Message OK, but will not deliver to
  these inactive addresses: ..." -> Anymail marks just those recipients ``rejected``;
* injected failures (:meth:`FakePostmark.fail_next`): the given status (default 500) with a
  Postmark-style ``{"ErrorCode", "Message"}`` body -> Anymail raises ``AnymailAPIError``.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime
from email.utils import getaddresses
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakePostmark"]

TOKEN_HEADER = "X-Postmark-Server-Token"

SINGLE_ENDPOINTS = {"email", "email/withTemplate"}
BATCH_ENDPOINTS = {"email/batch", "email/batchWithTemplates"}

MISSING_TOKEN_MESSAGE = (
    "No Account or Server API tokens were supplied in the HTTP headers. Please add a header for "
    "either X-Postmark-Server-Token or X-Postmark-Account-Token."
)
BAD_TOKEN_MESSAGE = (
    "The Server Token you provided in the X-Postmark-Server-Token request header was invalid. "
    "Please verify that you are using a valid token."
)
INACTIVE_ALL_MESSAGE = (
    "You tried to send to a recipient that has been marked as inactive.\n"
    "Found inactive addresses: {addresses}.\n"
    "Inactive recipients are ones that have generated a hard bounce or a spam complaint. "
)
INACTIVE_SOME_MESSAGE = (
    "Message OK, but will not deliver to these inactive addresses: {addresses}. "
    "Inactive recipients are ones that have generated a hard bounce or a spam complaint."
)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _split_addresses(value: Any) -> list[str]:
    """Postmark recipient fields are comma-separated strings; return their addr-specs."""
    if not value:
        return []
    return [addr for _name, addr in getaddresses([str(value)]) if addr]


class _PostmarkError(Exception):
    def __init__(self, status: int, error_code: int, message: str):
        super().__init__(message)
        self.status = status
        self.body = {"ErrorCode": error_code, "Message": message}


class FakePostmark:
    """Fake Postmark API server.

    :param server_token: if given, only this ``X-Postmark-Server-Token`` is accepted;
        otherwise any non-empty token is.

    Recorded state (read it after sending; guarded by an internal lock):

    * ``messages`` -- one dict per accepted message, keys: message_id, submitted_at, endpoint,
      server_token, from, to/cc/bcc (lists of addr-specs), reply_to, subject, text_body,
      html_body, tag, metadata, headers (name -> value), message_stream (default "outbound"),
      attachments, track_opens, track_links, template_id, template_alias, template_model,
      inactive_recipients, raw (the JSON object Postmark received);
    * ``requests`` -- one dict per HTTP request received (method, path, headers, body, status);
    * ``request_count`` -- number of HTTP requests received, including failed ones.
    """

    def __init__(self, server_token: str | None = None):
        self.server_token = server_token
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url: str | None = None
        self.reset()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> str:
        """Start serving on a free port of 127.0.0.1; return the base URL (with trailing slash)."""
        if self._server is not None:
            return self.url  # type: ignore[return-value]
        fake = self

        class Handler(_PostmarkHandler):
            pass

        Handler.fake = fake
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}/"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FakePostmark:{port}",
            daemon=True,
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving and release the port. Recorded state is kept until :meth:`reset`."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def reset(self) -> None:
        """Forget recorded messages/requests, pending failures and refused addresses."""
        with self._lock:
            self.messages: list[dict[str, Any]] = []
            self.requests: list[dict[str, Any]] = []
            self._request_count = 0
            self._failures_left = 0
            self._failure_status = 500
            self._refused: set[str] = set()

    def __enter__(self) -> FakePostmark:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- knobs ---------------------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """Answer the next ``n`` requests with HTTP ``status`` and a Postmark-style error body."""
        with self._lock:
            self._failures_left = n
            self._failure_status = status

    def refuse(self, *addresses: str) -> None:
        """Treat these addresses (case-insensitive addr-specs) as Postmark inactive recipients."""
        with self._lock:
            self._refused.update(addr.strip().lower() for addr in addresses)

    @property
    def request_count(self) -> int:
        with self._lock:
            return self._request_count

    @property
    def refused(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._refused)

    # -- request handling (called from server threads) ---------------------------------------

    def _handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any]:
        endpoint = path.split("?", 1)[0].strip("/")
        with self._lock:
            self._request_count += 1
            entry = {
                "method": method,
                "path": path,
                "headers": headers,
                "body": raw.decode("utf-8", "replace"),
            }
            self.requests.append(entry)
            if self._failures_left > 0:
                self._failures_left -= 1
                status = self._failure_status
                entry["status"] = status
                return status, {
                    "ErrorCode": status,
                    "Message": f"Fake Postmark injected failure: {HTTPStatus(status).phrase}.",
                }
        try:
            status, body = self._dispatch(method, endpoint, headers, raw)
        except _PostmarkError as err:
            status, body = err.status, err.body
        entry["status"] = status
        return status, body

    def _dispatch(self, method: str, endpoint: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any]:
        if endpoint not in SINGLE_ENDPOINTS | BATCH_ENDPOINTS:
            raise _PostmarkError(404, 404, f"Fake Postmark does not implement '/{endpoint}'.")
        if method != "POST":
            raise _PostmarkError(405, 405, f"Method {method} not allowed on '/{endpoint}'.")
        token = headers.get(TOKEN_HEADER.lower(), "").strip()
        if not token:
            raise _PostmarkError(401, 10, MISSING_TOKEN_MESSAGE)
        if self.server_token is not None and token != self.server_token:
            raise _PostmarkError(401, 10, BAD_TOKEN_MESSAGE)
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _PostmarkError(422, 402, "Received invalid JSON input.") from None

        if endpoint in SINGLE_ENDPOINTS:
            if not isinstance(data, dict):
                raise _PostmarkError(422, 402, "Received invalid JSON input.")
            return 200, self._send_one(data, endpoint, token, raise_errors=True)

        if endpoint == "email/batchWithTemplates":
            data = data.get("Messages") if isinstance(data, dict) else None
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise _PostmarkError(422, 402, "Received invalid JSON input.")
        if len(data) > 500:
            raise _PostmarkError(422, 413, "Batch request exceeded maximum of 500 messages.")
        # The batch endpoints answer 200 with one result per message, errors inline.
        return 200, [self._send_one(item, endpoint, token, raise_errors=False) for item in data]

    def _send_one(
        self, data: dict[str, Any], endpoint: str, token: str, *, raise_errors: bool
    ) -> dict[str, Any]:
        try:
            return self._accept(data, endpoint, token)
        except _PostmarkError as err:
            if raise_errors:
                raise
            return err.body

    def _accept(self, data: dict[str, Any], endpoint: str, token: str) -> dict[str, Any]:
        if not _split_addresses(data.get("From")):
            raise _PostmarkError(422, 300, f"Invalid 'From' address: '{data.get('From') or ''}'.")
        recipients: dict[str, list[str]] = {}
        for field in ("To", "Cc", "Bcc"):
            addrs = _split_addresses(data.get(field))
            for addr in addrs:
                if "@" not in addr or addr.startswith("@") or addr.endswith("@"):
                    raise _PostmarkError(422, 300, f"Invalid '{field}' address: '{addr}'.")
            recipients[field] = addrs
        everyone = recipients["To"] + recipients["Cc"] + recipients["Bcc"]
        if not everyone:
            raise _PostmarkError(422, 300, "Invalid 'To' address: ''.")
        is_template = "TemplateId" in data or "TemplateAlias" in data
        if not is_template and not data.get("TextBody") and not data.get("HtmlBody"):
            raise _PostmarkError(422, 300, "Provide either email TextBody or HtmlBody or both.")

        with self._lock:
            refused = self._refused
            inactive = [addr.lower() for addr in everyone if addr.lower() in refused]
        if len(inactive) == len(everyone):
            raise _PostmarkError(422, 406, INACTIVE_ALL_MESSAGE.format(addresses=", ".join(inactive)))

        message_id = str(uuid.uuid4())
        submitted_at = _now_iso()
        self._record(data, endpoint, token, recipients, inactive, message_id, submitted_at)
        result: dict[str, Any] = {}
        if data.get("To"):
            result["To"] = data["To"]  # absent for Cc/Bcc-only sends, like Postmark
        result.update(
            SubmittedAt=submitted_at,
            MessageID=message_id,
            ErrorCode=0,
            Message=INACTIVE_SOME_MESSAGE.format(addresses=", ".join(inactive)) if inactive else "OK",
        )
        return result

    def _record(
        self,
        data: dict[str, Any],
        endpoint: str,
        token: str,
        recipients: dict[str, list[str]],
        inactive: list[str],
        message_id: str,
        submitted_at: str,
    ) -> None:
        headers = {
            item.get("Name"): item.get("Value")
            for item in data.get("Headers") or []
            if isinstance(item, dict)
        }
        message = {
            "message_id": message_id,
            "submitted_at": submitted_at,
            "endpoint": endpoint,
            "server_token": token,
            "from": data.get("From"),
            "to": recipients["To"],  # addr-specs; raw header text is in raw["To"]
            "cc": recipients["Cc"],
            "bcc": recipients["Bcc"],
            "reply_to": data.get("ReplyTo"),
            "subject": data.get("Subject"),
            "text_body": data.get("TextBody"),
            "html_body": data.get("HtmlBody"),
            "tag": data.get("Tag"),
            "metadata": data.get("Metadata") or {},
            "headers": headers,
            "message_stream": data.get("MessageStream", "outbound"),
            "attachments": data.get("Attachments") or [],
            "track_opens": data.get("TrackOpens"),
            "track_links": data.get("TrackLinks"),
            "template_id": data.get("TemplateId"),
            "template_alias": data.get("TemplateAlias"),
            "template_model": data.get("TemplateModel"),
            "inactive_recipients": inactive,  # refused, so not "delivered" to them
            "raw": data,
        }
        with self._lock:
            self.messages.append(message)


class _PostmarkHandler(BaseHTTPRequestHandler):
    fake: FakePostmark
    server_version = "FakePostmark/1.0"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, body = self.fake._handle(self.command, self.path, headers, raw)
        payload = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:  # silence per-request stderr logging
        pass
