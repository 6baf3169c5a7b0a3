"""Constants and a webhook receiver shared by the sandbox tests."""

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

API_KEY = "sk_test_sandbox0000000000000000000000"
LIVE_KEY = "sk_live_sandbox0000000000000000000000"


class WebhookReceiver:
    """A webhook endpoint on pytest-httpserver that records deliveries and answers `status`."""

    PATH = "/stripe/webhook/"

    def __init__(self, server: HTTPServer, status: int = 200):
        self.status = status
        self.deliveries: list[dict] = []
        self.url = server.url_for(self.PATH)
        server.expect_request(self.PATH, method="POST").respond_with_handler(self._record)

    def _record(self, request: Request) -> Response:
        self.deliveries.append({"headers": dict(request.headers), "body": request.get_data(as_text=True)})
        return Response('{"received": true}', status=self.status, content_type="application/json")


def event_types(sandbox, event_ids):
    """The types of stored events, in the given order."""
    return [sandbox.store.get("event", event_id)["type"] for event_id in event_ids]


def event_objects(sandbox, event_ids):
    """The object snapshot each event carries."""
    return [sandbox.store.get("event", event_id)["data"]["object"] for event_id in event_ids]
