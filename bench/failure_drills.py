"""Failure drills: kill, restart and starve the real processes, then check nothing is lost or doubled.

    python bench/failure_drills.py [--quick] [--seed N] [--restart-postgres] [--database-url URL]

Runs on 127.0.0.1 only, as subprocesses: the Stripe sandbox (`manage.py stripe_sandbox`), the web
app (gunicorn), the worker (`manage.py qcluster`), and in this process a fake Postmark behind
Anymail's real Postmark backend (the ESP at the network edge, which can be slow or down). Retry
delays are compressed by settings (RETRY_BASE_DELAY_SECONDS=1, RETRY_MAX_DELAY_SECONDS=2,
Q_TIMEOUT/Q_RETRY a few seconds); django-q's scheduler still fires due retries every 30 s.

Drills, each on its own paid checkouts:
- kill-webhook / kill-email / kill-workspace: SIGKILL the worker (qcluster's process group) while
  a webhook job (slow Stripe), a welcome email (slow ESP) or a workspace provision (slow backend,
  bench/drill_backend.py) is in flight; start a new worker; everything must finish;
- postgres-restart (only with --restart-postgres: it is the machine's shared server): restart
  PostgreSQL while webhooks arrive; deliveries that got no 2xx are re-sent, as Stripe would;
- stripe-outage: the Stripe API answers 500, 429 or times out for a long stretch, then recovers;
- esp-outage: the email provider answers 503 for a long stretch, then recovers;
- redis-storm: Redis broker, two workers, two web servers; every event delivered 20 times at once,
  all deliveries shuffled (delayed-payment checkouts included, so order varies);
- fuzz: ≥10,000 odd deliveries to the webhook endpoint (nesting, huge numbers, invalid UTF-8, odd
  headers, signatures valid and not, valid signatures over junk) and a few hundred to the portal
  and admin login forms: any 5xx counts.

Then the database is checked for every paid checkout: `lost` (never onboarded), `duplicated` (a
second client, payment, workspace, or email with another Message-ID), `stuck` (a step or webhook
job not in a final or staff-actionable state). The last line is one JSON object.
"""

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import benchlib
import requests
from benchlib import log

SERVICE = ("website-care", "Website Care Plan")
CHECKOUT = {"name": "Drill Client", "service_id": SERVICE[0], "amount": 49900, "currency": "usd"}
STRIPE_KEY = benchlib.PROD_ENV["STRIPE_TEST_SECRET_KEY"]
DRILLS = (
    "kill-webhook",
    "kill-email",
    "kill-workspace",
    "postgres-restart",
    "stripe-outage",
    "esp-outage",
    "redis-storm",
    "fuzz",
)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer checkouts and 500 fuzz cases (for make test)"
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (printed; default: random)")
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL") or benchlib.DEFAULT_DATABASE_URL
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13", help="broker for the storm drill")
    parser.add_argument(
        "--restart-postgres",
        action="store_true",
        help="run the postgres-restart drill (restarts the machine's shared PostgreSQL; needs root)",
    )
    parser.add_argument(
        "--skip", action="append", default=[], choices=DRILLS, help="skip a drill (repeatable)"
    )
    parser.add_argument("--fuzz-cases", type=int, default=None, help="webhook fuzz cases (10000; quick 500)")
    parser.add_argument("--login-cases", type=int, default=None, help="login form fuzz cases (300; quick 60)")
    parser.add_argument(
        "--outage-seconds", type=float, default=None, help="Stripe/ESP outage length (45; quick 12)"
    )
    parser.add_argument("--mode", choices=["auto", "prod", "debug"], default="auto")
    parser.add_argument("--max-seconds", type=float, default=1500, help="hard time limit for the run")
    args = parser.parse_args()
    quick = args.quick
    args.checkouts = 2 if quick else 6  # per outage/restart drill
    args.storm_checkouts = 3 if quick else 8
    args.storm_copies = 20
    args.fuzz_cases = args.fuzz_cases if args.fuzz_cases is not None else (500 if quick else 10_000)
    args.login_cases = args.login_cases if args.login_cases is not None else (60 if quick else 300)
    args.outage_seconds = args.outage_seconds if args.outage_seconds is not None else (12 if quick else 45)
    return args


# --- the ESP at the network edge ----------------------------------------------------------------------


def postmark_token() -> str:
    from tests.support.postmark import SERVER_TOKEN

    return SERVER_TOKEN


def drill_postmark():
    """The fake Postmark (tests/support/postmark.py on a standalone pytest-httpserver), with two knobs:
    a delay before answering, and an outage until a time."""
    import threading

    from pytest_httpserver import HTTPServer

    from tests.support.postmark import Postmark, answer

    class DrillPostmark(Postmark):
        delay = 0.0
        down_until = 0.0
        in_flight = 0
        outage_answers = 0
        _lock = threading.Lock()

        def _email(self, request):
            if time.monotonic() < self.down_until:
                with self._lock:
                    self.outage_answers += 1
                return answer(503, {"ErrorCode": 503, "Message": "drill: the provider is down"})
            if self.delay:
                with self._lock:
                    self.in_flight += 1
                try:
                    time.sleep(self.delay)
                finally:
                    with self._lock:
                        self.in_flight -= 1
            return super()._email(request)

        def stop(self) -> None:
            self.server.clear()
            self.server.stop()

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    return DrillPostmark(server)


# --- the harness -----------------------------------------------------------------------------------------


class Harness:
    """The processes of one run and the checkouts each drill paid for."""

    def __init__(self, args, children: benchlib.Children, env: dict, esp, rng: random.Random):
        self.args, self.children, self.env, self.esp, self.rng = args, children, env, esp, rng
        self.sandbox_url = env["STRIPE_API_HOST"]
        self.web_ports: list[int] = []
        self.web: list = []
        self.workers: list = []
        self.generation = 0
        self.checkouts: list[dict] = []  # {"drill", "email", "session"}
        self.redeliveries = 0
        self.webhook_path = ""  # set once the endpoint is registered
        self.delay_file = Path(env["DRILL_PROVISION_DELAY_FILE"])

    # processes
    def start_web(self, count: int = 1, env: dict | None = None) -> None:
        for _ in range(count):
            port = benchlib.free_port()
            self.generation += 1
            proc = self.children.spawn(
                f"gunicorn-{self.generation}", benchlib.gunicorn_args(port, 2), env or self.env
            )
            self.web.append(proc)
            self.web_ports.append(port)
            benchlib.wait_http(f"http://127.0.0.1:{port}/healthz/", self.children, timeout=60)

    def start_worker(self, env: dict | None = None) -> None:
        self.generation += 1
        self.workers.append(
            self.children.manage(f"qcluster-{self.generation}", ["qcluster"], env or self.env)
        )

    def kill_workers(self) -> None:
        """SIGKILL each qcluster and every process of its group (its workers, monitor, pusher)."""
        for proc in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        self.children.procs = [p for p in self.children.procs if p[1] not in self.workers]
        self.workers = []

    def stop_all_app(self) -> None:
        for proc in [*self.workers, *self.web]:
            self.children.stop(proc)
        self.children.procs = [p for p in self.children.procs if p[1] not in self.workers + self.web]
        self.workers, self.web, self.web_ports = [], [], []

    def url(self, path: str, index: int = 0) -> str:
        return f"http://127.0.0.1:{self.web_ports[index % len(self.web_ports)]}{path}"

    @property
    def webhook_url(self) -> str:
        """Where the sandbox delivers: the first web server running now."""
        return self.url(self.webhook_path)

    # Stripe, as the drills drive it
    def fault(self, **rule) -> None:
        requests.post(f"{self.sandbox_url}/_sandbox/faults", json=rule, timeout=10).raise_for_status()

    def clear_faults(self) -> None:
        requests.delete(f"{self.sandbox_url}/_sandbox/faults", timeout=10).raise_for_status()

    def pay(self, drill: str, *, deliver: bool = True, delayed: str | None = None) -> dict:
        """A paid checkout in the sandbox; its signed events delivered once (unless deliver=False)."""
        email = f"{drill}-{uuid.uuid4().hex[:10]}@drill.example"
        body = {**CHECKOUT, "email": email, "delayed": delayed, "deliver": deliver}
        if deliver:
            body.update(webhook_url=self.webhook_url, webhook_secret=benchlib.WEBHOOK_SECRET)
        response = requests.post(f"{self.sandbox_url}/_sandbox/checkouts", json=body, timeout=120)
        response.raise_for_status()
        data = response.json()
        record = {"drill": drill, "email": email, "session": data["session"]["id"], "events": data["events"]}
        self.checkouts.append(record)
        record["failed"] = [d["event"] for d in data.get("deliveries", []) if not ok(d.get("status"))]
        return record

    def redeliver_until_accepted(self, record: dict, seconds: float = 90) -> None:
        """Stripe's retries, compressed: re-send each event that got no 2xx until one is accepted."""
        deadline = time.monotonic() + seconds
        pending = list(record.get("failed", []))
        while pending and time.monotonic() < deadline:
            time.sleep(1)
            response = requests.post(
                f"{self.sandbox_url}/_sandbox/deliver",
                json={
                    "events": pending,
                    "webhook_url": self.webhook_url,
                    "webhook_secret": benchlib.WEBHOOK_SECRET,
                },
                timeout=120,
            )
            self.redeliveries += len(pending)
            pending = [d["event"] for d in response.json()["deliveries"] if not ok(d.get("status"))]
        record["failed"] = pending

    def event_bodies(self, event_ids: list[str]) -> dict[str, str]:
        """The events as Stripe serialises them for delivery (read back from the sandbox's API)."""
        from stripe_sandbox.webhooks import event_payload

        headers = {"Authorization": f"Bearer {STRIPE_KEY}"}
        return {
            event_id: event_payload(
                requests.get(f"{self.sandbox_url}/v1/events/{event_id}", headers=headers, timeout=30).json()
            )
            for event_id in event_ids
        }

    # waiting on the database
    def wait_settled(self, records: list[dict], seconds: float) -> bool:
        """Poll until every checkout is onboarded with both steps done (or settled for staff)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.children.check_alive()
            if not unsettled([r["session"] for r in records]):
                return True
            time.sleep(0.5)
        return False


def ok(status) -> bool:
    return status is not None and 200 <= status < 300


def db_call(func, *args, attempts: int = 30):
    """Run an ORM read, reconnecting while PostgreSQL comes back (bounded)."""
    from django.db import InterfaceError, OperationalError, connections

    for attempt in range(attempts):
        try:
            return func(*args)
        except (OperationalError, InterfaceError):
            connections.close_all()
            if attempt == attempts - 1:
                raise
            time.sleep(1)
    return None


FINAL_STEPS = {"done", "failed", "refused", "skipped"}


def unsettled(sessions: list[str]) -> list[str]:
    """Sessions not yet onboarded with both steps finished."""
    from crm.models import Onboarding

    def query():
        done = set(
            Onboarding.objects.filter(
                checkout_session_id__in=sessions,
                status="onboarded",
                email_status="done",
                workspace_status="done",
            ).values_list("checkout_session_id", flat=True)
        )
        return [s for s in sessions if s not in done]

    return db_call(query)


# --- the drills ------------------------------------------------------------------------------------------


def wait_for(predicate, seconds: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def drill_kill_webhook(h: Harness) -> dict:
    """Stripe answers slowly, so the job is mid-flight when the worker dies."""
    from stripe_events.models import StripeWebhookJob

    h.fault(endpoint="*", kind="latency", latency_ms=4000)
    record = h.pay("kill-webhook")
    caught = wait_for(lambda: db_call(StripeWebhookJob.objects.filter(status="running").exists), 20)
    h.kill_workers()
    h.clear_faults()
    h.start_worker()
    return {"killed_mid_job": caught, "settled": h.wait_settled([record], 120)}


def drill_kill_email(h: Harness) -> dict:
    """The ESP takes seconds to answer, so the send is in flight when the worker dies."""
    h.esp.delay = 6.0
    record = h.pay("kill-email")
    caught = wait_for(lambda: h.esp.in_flight > 0, 30)
    h.kill_workers()
    h.esp.delay = 0.0
    h.start_worker()
    return {"killed_mid_send": caught, "settled": h.wait_settled([record], 120)}


def drill_kill_workspace(h: Harness) -> dict:
    """The provisioning backend takes seconds, so the worker dies mid-provision."""
    from crm.models import Onboarding

    h.delay_file.write_text("6")
    record = h.pay("kill-workspace")
    caught = wait_for(
        lambda: db_call(
            Onboarding.objects.filter(
                checkout_session_id=record["session"], workspace_status="running"
            ).exists
        ),
        30,
    )
    h.kill_workers()
    h.delay_file.unlink(missing_ok=True)
    h.start_worker()
    return {"killed_mid_provision": caught, "settled": h.wait_settled([record], 120)}


def postgres_restart() -> float:
    """Restart the local PostgreSQL cluster and wait until it accepts connections again."""
    import psycopg

    version = sorted(os.listdir("/etc/postgresql"))[-1]
    started = time.monotonic()
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        timeout=120,
        capture_output=True,
    )
    for _ in range(120):
        with contextlib.suppress(psycopg.Error):
            psycopg.connect("postgres://root@127.0.0.1:5432/postgres", connect_timeout=2).close()
            return time.monotonic() - started
        time.sleep(0.5)
    raise RuntimeError("PostgreSQL did not come back within a minute")


def drill_postgres_restart(h: Harness) -> dict:
    """Checkouts keep arriving (one every 0.3 s) from before the restart until 2 s after it."""
    records, errors = [], []
    restarted = threading.Event()

    def traffic():
        after = 0
        for _ in range(300):
            try:
                records.append(h.pay("postgres-restart"))
            except requests.RequestException as error:  # the sandbox itself does not use PostgreSQL
                errors.append(str(error))
            time.sleep(0.3)
            after += restarted.is_set()
            if after >= 7:
                return

    sender = threading.Thread(target=traffic)
    sender.start()
    time.sleep(1.0)
    try:
        downtime = postgres_restart()
    finally:
        restarted.set()
        sender.join(timeout=240)
    refused = sum(len(r["failed"]) for r in records)
    for record in records:
        h.redeliver_until_accepted(record)
    return {
        "restart_seconds": round(downtime, 2),
        "checkouts": len(records),
        "deliveries_refused_then_resent": refused,
        "never_accepted": sum(len(r["failed"]) for r in records),
        "sandbox_errors": errors,
        "settled": h.wait_settled(records, 180),
    }


def drill_stripe_outage(h: Harness) -> dict:
    """A third each of 500s, 429s (not to be retried at once) and timeouts, then recovery."""
    h.fault(endpoint="*", kind="http_500", rate=0.34, seed=h.rng.randrange(1 << 30))
    h.fault(endpoint="*", kind="http_429", rate=0.5, should_retry=False, seed=h.rng.randrange(1 << 30))
    h.fault(endpoint="*", kind="timeout", seconds=3)
    began = time.monotonic()
    records = [h.pay("stripe-outage") for _ in range(h.args.checkouts)]
    time.sleep(max(0.0, h.args.outage_seconds - (time.monotonic() - began)))
    from stripe_events.models import StripeWebhookJob

    waiting = db_call(StripeWebhookJob.objects.filter(status__in=["retrying", "running"]).count)
    h.clear_faults()
    return {"jobs_waiting_at_recovery": waiting, "settled": h.wait_settled(records, 150)}


def drill_esp_outage(h: Harness) -> dict:
    h.esp.down_until = time.monotonic() + h.args.outage_seconds
    records = [h.pay("esp-outage") for _ in range(h.args.checkouts)]
    wait_for(lambda: time.monotonic() >= h.esp.down_until, h.args.outage_seconds + 5, 0.5)
    return {"outage_answers": h.esp.outage_answers, "settled": h.wait_settled(records, 150)}


def drill_redis_storm(h: Harness) -> dict:
    """Redis broker, two workers, two web servers; each event 20 times at once, all shuffled."""
    from stripe_sandbox.signing import sign_payload

    h.stop_all_app()
    env = {**h.env, "REDIS_URL": h.args.redis_url}
    h.start_web(2, env)
    h.start_worker(env)
    h.start_worker(env)
    records = [
        h.pay("redis-storm", deliver=False, delayed="succeeded" if i % 2 else None)
        for i in range(h.args.storm_checkouts)
    ]
    bodies = h.event_bodies([e for r in records for e in r["events"]])
    shots = [body for body in bodies.values() for _ in range(h.args.storm_copies)]
    h.rng.shuffle(shots)

    def shoot(index_body):
        index, body = index_body
        headers = {
            "Stripe-Signature": sign_payload(body, benchlib.WEBHOOK_SECRET),
            "Content-Type": "application/json",
        }
        for _ in range(20):  # a non-2xx is re-sent, as Stripe would
            with contextlib.suppress(requests.RequestException):
                status = requests.post(
                    h.url(h.webhook_path, index), data=body, headers=headers, timeout=60
                ).status_code
                if ok(status):
                    return status
            time.sleep(0.5)
        return None

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(shoot, enumerate(shots)))
    settled = h.wait_settled(records, 150)  # the fuzz that follows runs on this setup too
    return {
        "deliveries": len(shots),
        "non_2xx_in_the_end": sum(1 for s in statuses if not ok(s)),
        "settled": settled,
    }


# --- fuzzing -----------------------------------------------------------------------------------------------


def nested(rng: random.Random, depth: int) -> str:
    opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
    return opener * depth + "1" + closer * depth


def fuzz_body(rng: random.Random, real: list[str]) -> bytes:
    """One odd body: junk, or a real event bent out of shape."""
    kind = rng.randrange(12)
    if kind == 0:
        return nested(rng, rng.choice([10, 900, 1100, 5000, 100_000])).encode()
    if kind == 1:
        return rng.choice(
            ["1" * 5000, "1e400", "-1e400", "NaN", "Infinity", "[1e999999]", '{"id": 1e400}']
        ).encode()
    if kind == 2:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
    if kind == 3:
        return b'{"id": "evt_\xff\xfe", "object": "event"}'
    if kind == 4:
        return rng.choice([b"", b"null", b"[]", b"{}", b'"evt_1"', b"\x00" * 10, b"\xef\xbb\xbf{}"])
    if kind == 5:
        return ("x" * rng.choice([10_000] * 6 + [300_000] * 3 + [2_400_000])).encode()
    event = json.loads(rng.choice(real))
    if kind == 6:
        event[rng.choice(list(event))] = rng.choice(
            [None, 1e308, -(10**30), "", [], {}, "\u0000", "é" * 300, True]
        )
    elif kind == 7:
        event["data"]["object"]["metadata"] = json.loads(nested(rng, rng.choice([5, 200, 600])))
    elif kind == 8:
        event["data"]["object"]["amount_total"] = rng.choice(
            [10**18, -1, 2**63, 1.5, "49900", None, 10**4000]
        )
    elif kind == 9:
        event["type"] = rng.choice(["checkout.session.completed", "x" * 300, "Checkout.Session", "a..b", ""])
        event["id"] = rng.choice(
            [event["id"], "evt_" + "z" * 300, "evt_\u00e9", "cus_123", "evt_ok_" + str(rng.random())]
        )
    elif kind == 10:
        event["livemode"] = rng.choice(["false", 0, None, True])
    text = json.dumps(event, ensure_ascii=rng.random() < 0.5, allow_nan=True)
    if kind == 11:
        cut = rng.randrange(len(text))
        text = text[:cut] + rng.choice(["", "\\ud800", '"', "}", "\\u0000"]) + text[cut:]
    return text.encode("utf-8", errors="surrogatepass")


def fuzz_headers(rng: random.Random, body: bytes) -> dict:
    from stripe_sandbox.signing import compute_signature

    now = int(time.time())
    text = body.decode("utf-8", errors="replace")
    valid = f"t={now},v1={compute_signature(text, benchlib.WEBHOOK_SECRET, now)}"
    signature = rng.choice(
        [
            valid,
            valid,
            valid,
            f"t={now - 400},v1={compute_signature(text, benchlib.WEBHOOK_SECRET, now - 400)}",
            f"t={now + 400},v1={compute_signature(text, benchlib.WEBHOOK_SECRET, now + 400)}",
            f"t={now},v1={'0' * 64}",
            "t=1,v1=00",
            "",
            "t=,v1=",
            "t=abc,v1=def,v0=xyz",
            ",".join(["v1=aa"] * 200),
            f"t={10**30},v1=00",
            None,
        ]
    )
    headers = {
        "Content-Type": rng.choice(
            ["application/json", "text/plain", "application/json; charset=latin-1", ""]
        )
    }
    if signature is not None:
        headers["Stripe-Signature"] = signature
    if rng.random() < 0.2:
        headers["X-Forwarded-For"] = rng.choice(
            ["not-an-ip", "1.2.3.4, 5.6.7.8", "::1", "999.1.1.1", "x" * 500]
        )
    if rng.random() < 0.1:
        headers["Content-Encoding"] = rng.choice(["gzip", "br", "junk"])
    if rng.random() < 0.1:
        headers["User-Agent"] = "Stripe/1.0 " + "é" * 50
    return headers


def fuzz_webhooks(h: Harness, cases: int, real: list[str]) -> tuple[int, Counter]:
    rng = random.Random(h.rng.randrange(1 << 30))
    statuses: Counter = Counter()
    path = h.webhook_path
    local = threading.local()

    def send(item):
        body, headers = item
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        for _ in range(3):
            try:
                return session.post(h.url(path), data=body, headers=headers, timeout=60).status_code
            except requests.ConnectionError:
                local.session = session = requests.Session()
        return "no answer"

    with ThreadPoolExecutor(max_workers=6) as pool:
        for start in range(0, cases, 200):  # in batches: a few bodies are megabytes
            bodies = [fuzz_body(rng, real) for _ in range(min(200, cases - start))]
            for status in pool.map(send, [(body, fuzz_headers(rng, body)) for body in bodies]):
                statuses[status] += 1
    return cases, statuses


def fuzz_logins(h: Harness, cases: int) -> tuple[int, Counter]:
    """Odd sign-ins to the portal and admin forms: lockouts (429) and CSRF refusals (403) are fine."""
    import re

    rng = random.Random(h.rng.randrange(1 << 30))
    statuses: Counter = Counter()
    for index in range(cases):
        path = "/portal/login/" if index % 2 else "/admin/login/"
        session = requests.Session()
        data = {
            "username": rng.choice(
                ["ada@example.com", "admin", "", "x" * 5000, "é' OR 1=1 --", "\x00", "a@b"]
            ),
            "password": rng.choice(["wrong", "", "p" * 10_000, "\ud7ff"]),
        }
        cookie = ""
        if rng.random() < 0.7:
            with contextlib.suppress(requests.RequestException):
                page = session.get(h.url(path), timeout=30)
                statuses[f"GET {page.status_code}"] += 1
                token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
                data["csrfmiddlewaretoken"] = token.group(1) if token else ""
                # Production's cookies are Secure, which requests keeps off plain HTTP: send them.
                cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
        if rng.random() < 0.2:
            data[rng.choice(["next", "username", "junk"])] = rng.choice(["//evil.example", "\udcff", "[]"])
        headers = {"Referer": h.url(path), "Cookie": cookie}
        if rng.random() < 0.15:
            body = b"username=\xff\xfe&password=%ZZ&csrfmiddlewaretoken=" + os.urandom(8)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            body = {k: v.encode("utf-8", "surrogatepass") for k, v in data.items()}
        try:
            response = requests.post(
                h.url(path), data=body, headers=headers, timeout=30, allow_redirects=False
            )
            statuses[response.status_code] += 1
        except requests.RequestException:
            statuses["no answer"] += 1
    return cases, statuses


# --- the end state ----------------------------------------------------------------------------------------


def end_state(h: Harness) -> dict:
    """Lost, duplicated and stuck, over every checkout the drills paid for."""
    from django.db.models import Count

    from crm.models import Client, Onboarding, Payment
    from provisioning.models import Workspace
    from stripe_events.models import StripeWebhookJob

    sessions = [r["session"] for r in h.checkouts]
    emails = [r["email"] for r in h.checkouts]
    onboardings = {
        o.checkout_session_id: o for o in Onboarding.objects.filter(checkout_session_id__in=sessions)
    }
    lost = [s for s in sessions if s not in onboardings or onboardings[s].status != "onboarded"]
    duplicated = []
    for row in (
        Client.objects.filter(email__in=emails).values("email").annotate(n=Count("id")).filter(n__gt=1)
    ):
        duplicated.append(f"client {row['email']} x{row['n']}")
    for row in (
        Payment.objects.filter(checkout_session_id__in=sessions)
        .values("checkout_session_id")
        .annotate(n=Count("id"))
    ):
        if row["n"] > 1:
            duplicated.append(f"payment {row['checkout_session_id']} x{row['n']}")
    for row in (
        Workspace.objects.filter(client__email__in=emails)
        .values("client_id", "service_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    ):
        duplicated.append(f"workspace of client {row['client_id']} x{row['n']}")
    sent: dict[str, set] = {}
    raw_sends: Counter = Counter()
    for message in h.esp.messages:
        for to in message["to"]:
            sent.setdefault(to.lower(), set()).add(message["headers"].get("Message-ID"))
            raw_sends[to.lower()] += 1
    for email in emails:
        ids = sent.get(email.lower(), set())
        if len(ids) > 1:
            duplicated.append(f"email to {email}: {len(ids)} Message-IDs")
    # The same Message-ID twice: a send the ESP accepted while its worker was killed, then taken
    # over. Mail clients collapse it; it is reported, not counted as a duplicate.
    resent_same_id = [
        f"{r['drill']}: {raw_sends[r['email'].lower()]} sends"
        for r in h.checkouts
        if raw_sends[r["email"].lower()] > 1
    ]
    stuck = []
    for session, onboarding in onboardings.items():
        for step in ("email_status", "workspace_status"):
            if getattr(onboarding, step) not in FINAL_STEPS and onboarding.status not in ("held", "rejected"):
                stuck.append(f"{session} {step}={getattr(onboarding, step)}")
    for job in StripeWebhookJob.objects.filter(status__in=["queued", "running"]):
        stuck.append(f"webhook job {job.id} {job.status}")
    retrying = StripeWebhookJob.objects.filter(status="retrying").count()
    return {
        "lost": lost,
        "duplicated": duplicated,
        "stuck": stuck,
        "webhook_jobs_retrying": retrying,
        "emails_resent_with_same_message_id": resent_same_id,
    }


# --- main ------------------------------------------------------------------------------------------------


def main() -> int:
    args = parse_args()
    benchlib.install_guards(args.max_seconds)
    started = time.monotonic()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    log(f"seed: {seed} (rerun with --seed {seed})")
    rng = random.Random(seed)
    skip = set(args.skip)
    if not args.restart_postgres:
        skip.add("postgres-restart")
    elif os.geteuid() != 0 or not shutil.which("pg_ctlcluster") or not os.path.isdir("/etc/postgresql"):
        raise SystemExit("--restart-postgres needs root and pg_ctlcluster (a local Debian PostgreSQL)")
    if "redis-storm" not in skip:
        import redis

        try:
            redis.Redis.from_url(args.redis_url, socket_timeout=3).ping()
        except redis.RedisError as error:
            log(f"!! Redis at {args.redis_url} does not answer ({error}): the storm drill is skipped")
            skip.add("redis-storm")

    esp = drill_postmark()
    sandbox_port = benchlib.free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    children = benchlib.Children("bench-drills-")
    app_env = {
        "DATABASE_URL": args.database_url,
        "STRIPE_API_HOST": sandbox_url,
        "SITE_URL": "http://127.0.0.1",
        "EMAIL_BACKEND": "anymail.backends.postmark.EmailBackend",
        "ANYMAIL_POSTMARK_SERVER_TOKEN": postmark_token(),  # what the fake Postmark accepts
        "ANYMAIL_POSTMARK_API_URL": esp.url,
        "PROVISIONING_BACKEND": "bench.drill_backend.SlowLocalBackend",
        "DRILL_PROVISION_DELAY_FILE": str(children.dir / "provision-delay"),
        "RETRY_BASE_DELAY_SECONDS": "1",
        "RETRY_MAX_DELAY_SECONDS": "2",
        "RETRY_WINDOW_HOURS": "1",  # thousands of compressed attempts: a drill's outage never exhausts them
        "Q_TIMEOUT": "12",  # above the longest task: 3 Stripe tries of 2 s plus stripe-python's backoff
        "Q_RETRY": "15",
        "Q_WORKERS": "2",
        "STRIPE_API_TIMEOUT": "2",
        "LOG_LEVEL": "WARNING",
        "AXES_FAILURE_LIMIT": "5",
    }
    os.environ.pop("REDIS_URL", None)
    benchlib.ensure_database(args.database_url)
    mode, mode_env = benchlib.choose_mode(args.mode, args.database_url, app_env)
    env = {**os.environ, **mode_env, **app_env}
    benchlib.django_setup(env)
    log(f"settings: {mode}; migrate: {benchlib.migrate():.1f} s")
    if mode == "prod":  # as a deployment does: production serves static files from the manifest
        from django.core.management import call_command

        call_command("collectstatic", "--noinput", verbosity=0)

    from stripe_events.webhook_endpoints import webhook_endpoint_register

    benchlib.bench_database_ready([SERVICE])
    figures: dict = {"bench": "failure_drills", "seed": seed, "quick": args.quick, "mode": mode}
    results: dict = {}
    fuzz_cases, fuzz_statuses, login_cases, login_statuses = 0, Counter(), 0, Counter()
    try:
        with children:
            children.sandbox("sandbox", sandbox_port, env)
            benchlib.wait_http(f"{sandbox_url}/_sandbox/health", children)
            h = Harness(args, children, env, esp, rng)
            h.start_web(1)
            endpoint, _ = webhook_endpoint_register(
                secret=benchlib.WEBHOOK_SECRET, base_url=f"http://127.0.0.1:{h.web_ports[0]}"
            )
            h.webhook_path = endpoint.url.removeprefix(f"http://127.0.0.1:{h.web_ports[0]}")
            h.start_worker()
            log(f"sandbox {sandbox_url}, web :{h.web_ports[0]}, fake ESP {esp.url}, logs {children.dir}")
            warm = h.pay("warmup")
            log(f"warm-up checkout settled: {h.wait_settled([warm], 60)}")

            plan = [
                ("kill-webhook", drill_kill_webhook),
                ("kill-email", drill_kill_email),
                ("kill-workspace", drill_kill_workspace),
                ("postgres-restart", drill_postgres_restart),
                ("stripe-outage", drill_stripe_outage),
                ("esp-outage", drill_esp_outage),
                ("redis-storm", drill_redis_storm),
            ]
            for name, drill in plan:
                if name in skip:
                    log(f"-- {name}: skipped")
                    continue
                began = time.monotonic()
                log(f"-- {name} ...")
                results[name] = drill(h)
                results[name]["seconds"] = round(time.monotonic() - began, 1)
                log(f"   {json.dumps(results[name], default=str)}")
            if "fuzz" not in skip:
                real = list(h.event_bodies([e for r in h.checkouts[:5] for e in r["events"]]).values())
                began = time.monotonic()
                fuzz_cases, fuzz_statuses = fuzz_webhooks(h, args.fuzz_cases, real)
                login_cases, login_statuses = fuzz_logins(h, args.login_cases)
                results["fuzz"] = {
                    "webhook": dict(fuzz_statuses),
                    "login": dict(login_statuses),
                    "seconds": round(time.monotonic() - began, 1),
                }
                log(f"-- fuzz: {json.dumps(results['fuzz'], default=str)}")
                # Fuzzed events the endpoint accepted are processed too: let the worker drain them.
                from stripe_events.models import StripeWebhookJob

                wait_for(
                    lambda: not StripeWebhookJob.objects.filter(status__in=["queued", "running"]).exists(),
                    60,
                    0.5,
                )
            h.wait_settled(h.checkouts, 30)
            state = end_state(h)
            for name, _ in plan:
                if name in results:
                    results[name]["settled"] = not unsettled(
                        [r["session"] for r in h.checkouts if r["drill"] in name]
                    )
    finally:
        esp.stop()
    five_xx = sum(
        n
        for status, n in (fuzz_statuses + login_statuses).items()
        if isinstance(status, int) and status >= 500
    )
    five_xx += sum(
        n for status, n in login_statuses.items() if isinstance(status, str) and status.startswith("GET 5")
    )
    unanswered = fuzz_statuses.get("no answer", 0) + login_statuses.get("no answer", 0)
    results = json.loads(json.dumps(results, default=str))  # status keys as strings
    figures.update(
        drills=len(results),
        drill_results=results,
        checkouts=len(h.checkouts),
        lost=len(state["lost"]),
        duplicated=len(state["duplicated"]),
        stuck=len(state["stuck"]),
        details={k: v for k, v in state.items() if v},
        fuzz_cases=fuzz_cases,
        login_fuzz_cases=login_cases,
        fuzz_5xx=five_xx,
        fuzz_unanswered=unanswered,
        redeliveries=h.redeliveries,
        skipped=sorted(skip),
        seconds=round(time.monotonic() - started, 1),
    )
    benchlib.emit_json(figures)
    return (
        0
        if not (figures["lost"] or figures["duplicated"] or figures["stuck"] or five_xx or unanswered)
        else 1
    )


if __name__ == "__main__":
    sys.exit(main())
