"""Postmark at the network edge: a pytest-httpserver handler that Anymail's real Postmark backend sends to.

Answers as Postmark's /email endpoint does (https://postmarkapp.com/developer/api/email-api): 200
`{"To", "SubmittedAt", "MessageID", "ErrorCode": 0, "Message": "OK"}`; 422 with ErrorCode 406 when every
recipient is inactive (`refuse`), which Anymail raises as AnymailRecipientsRefused; 401 with ErrorCode 10
without the server token; the given status with a Postmark error body for injected outages (`fail_next`).
pytest-httpserver's HTTPServer also runs outside pytest (start()/stop()), e.g. from a bench script.
"""

import json
import uuid
from datetime import UTC, datetime
from email.utils import getaddresses

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

SERVER_TOKEN = "test-token"


class Postmark:
    """Records what it accepts in `messages` (to, subject, tag, metadata, headers, bodies, message_id)."""

    def __init__(self, server: HTTPServer):
        self.server = server
        self.url = server.url_for("/")
        self.messages: list[dict] = []
        self._refused: set[str] = set()
        self._failures: list[int] = []
        server.expect_request("/email", method="POST").respond_with_handler(self._email)

    @property
    def anymail_settings(self) -> dict:
        return {"POSTMARK_SERVER_TOKEN": SERVER_TOKEN, "POSTMARK_API_URL": self.url}

    @property
    def request_count(self) -> int:
        return len(self.server.log)

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """The next `n` sends get `status` (an outage) and are not recorded."""
        self._failures += [status] * n

    def refuse(self, *addresses: str) -> None:
        """Mark addresses inactive (Postmark's suppression list; case-insensitive)."""
        self._refused |= {address.lower() for address in addresses}

    def _email(self, request: Request) -> Response:
        if request.headers.get("X-Postmark-Server-Token") != SERVER_TOKEN:
            return answer(401, {"ErrorCode": 10, "Message": "Request does not contain a valid Server token."})
        if self._failures:
            status = self._failures.pop(0)
            return answer(status, {"ErrorCode": status, "Message": "Service unavailable (fake outage)"})
        data = request.get_json()
        to = [address for _, address in getaddresses([data.get("To") or ""]) if address]
        inactive = [address for address in to if address.lower() in self._refused]
        if inactive and len(inactive) == len(to):
            found = ", ".join(inactive)
            message = (
                "You tried to send to recipient(s) that have been marked as inactive.\n"
                f"Found inactive addresses: {found}.\n"
                "Inactive recipients are ones that have generated a hard bounce, a spam complaint, "
                "or a manual suppression."
            )
            return answer(422, {"ErrorCode": 406, "Message": message})
        message_id = str(uuid.uuid4())
        self.messages.append(
            {
                "to": [address for address in to if address not in inactive],
                "subject": data.get("Subject"),
                "tag": data.get("Tag"),
                "metadata": data.get("Metadata") or {},
                "headers": {header["Name"]: header["Value"] for header in data.get("Headers") or []},
                "html_body": data.get("HtmlBody"),
                "text_body": data.get("TextBody"),
                "message_id": message_id,
            }
        )
        reply = "OK"
        if inactive:
            reply = (
                f"Message OK, but will not deliver to these inactive addresses: {', '.join(inactive)}. "
                "Inactive recipients are ones that have generated a hard bounce or a spam complaint."
            )
        submitted = datetime.now(UTC).isoformat()
        return answer(
            200,
            {
                "To": data.get("To"),
                "SubmittedAt": submitted,
                "MessageID": message_id,
                "ErrorCode": 0,
                "Message": reply,
            },
        )


def answer(status: int, body: dict) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")
