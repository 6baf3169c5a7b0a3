"""Constants and a webhook receiver shared by the sandbox tests."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_KEY = "sk_test_sandbox0000000000000000000000"
LIVE_KEY = "sk_live_sandbox0000000000000000000000"


class WebhookReceiver:
    """A tiny local HTTP endpoint that records webhook deliveries."""

    def __init__(self, status: int = 200):
        self.status = status
        self.deliveries: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode("utf-8")
                receiver.deliveries.append({"headers": dict(self.headers), "body": body})
                reply = b'{"received": true}'
                self.send_response(receiver.status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/stripe/webhook/"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self):
        self._server.shutdown()
        self._server.server_close()


def event_types(sandbox, event_ids):
    """The types of stored events, in the given order."""
    return [sandbox.store.get("event", event_id)["type"] for event_id in event_ids]


def event_objects(sandbox, event_ids):
    """The object snapshot each event carries."""
    return [sandbox.store.get("event", event_id)["data"]["object"] for event_id in event_ids]
