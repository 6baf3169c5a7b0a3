"""A reference receiver for the HTTP provisioning protocol (README.md, "Provisioning over HTTP").

An example for the team that runs the dashboard service, and a way to try the HTTP backend with
`make demo`; not used by the app. It checks each request's signature, answers 202, and a second
later calls back with the workspace ready (signed with the same secret). Standard library only.

    python -m provisioning.reference_receiver --port 9100 --secret whsec_... \\
        --callback-url http://127.0.0.1:8000/provisioning/callback/
"""

import argparse
import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from core.signing import SignatureError, signature_header, signature_verify


def make_handler(*, secret: str, callback_url: str, base_url: str):
    seen: dict[str, str] = {}  # Idempotency-Key -> workspace id: a retry gets the same answer

    def call_back(workspace_id: str) -> None:
        time.sleep(1)
        body = json.dumps(
            {"id": workspace_id, "status": "ready", "url": f"{base_url}/w/{workspace_id}"}
        ).encode()
        request = urllib.request.Request(  # noqa: S310 - the URL is the operator's own app
            callback_url,
            data=body,
            headers={
                "Content-Type": "application/json",
                "Provisioning-Signature": signature_header(body, secret=secret),
            },
        )
        urllib.request.urlopen(request, timeout=10).close()  # noqa: S310

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                signature_verify(body, self.headers.get("Provisioning-Signature", ""), secret=secret)
            except SignatureError as exc:
                return self.answer(400, {"error": str(exc)})
            if self.path.endswith(("/suspend", "/resume")):
                return self.answer(
                    200, {"id": self.path.split("/")[-2], "status": self.path.rsplit("/", 1)[1]}
                )
            key = self.headers.get("Idempotency-Key", "")
            if key not in seen:
                seen[key] = f"ws_{json.loads(body)['workspace_id']}"
                threading.Thread(target=call_back, args=(seen[key],), daemon=True).start()
            return self.answer(202, {"id": seen[key], "status": "provisioning"})

        def answer(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--callback-url", required=True)
    args = parser.parse_args()
    base_url = f"http://127.0.0.1:{args.port}"
    handler = make_handler(secret=args.secret, callback_url=args.callback_url, base_url=base_url)
    print(f"Reference provisioning receiver on {base_url}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", args.port), handler).serve_forever()


if __name__ == "__main__":
    main()
