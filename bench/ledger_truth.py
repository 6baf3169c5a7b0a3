"""Ledger truth: randomized client money histories through the real webhook endpoint and worker,
then every client compared with the Stripe sandbox's own ledger.

    /work/main/.venv/bin/python bench/ledger_truth.py [--scenarios 1000] [--seed N]

Sets up from nothing like the other benches (database `ledger_truth_bench` unless DATABASE_URL is
given, migrated; services "website-care" and "retainer"). The Stripe sandbox runs in this process
(its HTTP API on a thread, so the bench can build histories without delivering them); the web app
(gunicorn) and the real worker (`manage.py qcluster`, ORM broker) run as subprocesses pointing at it.

Each scenario is one client (seeded, the seed printed): a first checkout in payment or subscription
mode or a stand-alone invoice, in usd/eur/gbp/jpy (JPY is zero-decimal), sometimes discounted (a
100% coupon is a no-cost order), then 0-6 of: renewals (paid or declined), one-off invoices, partial
/ full / failed refunds, refunds that fail later, disputes (open, won, lost), cancellation, a second
checkout in another currency. Its events are delivered signed over HTTP, some twice, shuffled.
When the worker is idle, each client's per-currency money, invoiced_value and settlement total are
compared with `sandbox.ledger()`; mismatches are printed with their history. The last line is JSON.
"""

import argparse
import json
import os
import random
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import benchlib
import requests
from benchlib import log, rounded

SERVICES = (("website-care", "Website Care Plan"), ("retainer", "Monthly retainer"))
CURRENCIES = ("usd", "eur", "gbp", "jpy")
T0 = 1_767_225_600  # 2026-01-01 00:00 UTC
DAY = 86_400


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", type=int, default=1000, help="client histories (1000)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock)")
    parser.add_argument("--duplicate-share", type=float, default=0.3, help="events delivered twice (0.3)")
    parser.add_argument("--parallel", type=int, default=4, help="scenarios delivered at once (4)")
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn sync workers (2)")
    parser.add_argument("--mode", choices=["auto", "prod", "debug"], default="auto")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for the worker")
    parser.add_argument("--max-seconds", type=float, default=3000, help="hard time limit for the run")
    return parser.parse_args()


def amount_for(rng: random.Random, currency: str) -> int:
    return rng.randint(500, 200_000) if currency == "jpy" else rng.randint(100, 90_000)


class Scenario:
    """One client's history, built in the sandbox without delivering it."""

    def __init__(self, sandbox, number: int, run: str, seed: int):
        self.sandbox = sandbox
        self.key = f"{seed}-{number}"  # the run's seed and the scenario's number: reproducible
        self.rng = random.Random(self.key)
        self.email = f"lt-{run}-{number}@example.com"
        self.clock = T0 + number * 60
        self.events: list[str] = []
        self.history: list[str] = []
        self.charges: list[str] = []
        self.refunds: list[str] = []
        self.subscriptions: list[str] = []
        self.currencies: list[str] = []

    def step(self, what: str, result: dict) -> dict:
        self.history.append(what)
        self.events += result["events"]
        return result

    def tick(self) -> int:
        self.clock += self.rng.randint(1, 40) * DAY
        return self.clock

    def checkout(self, currency: str) -> None:
        rng = self.rng
        mode = rng.choice(["payment", "subscription"])
        amount = amount_for(rng, currency)
        options: dict = {}
        discount = rng.random()
        if discount < 0.15:
            options["percent_off"] = rng.choice([10, 25, 50])
        elif discount < 0.2:
            options["percent_off"] = 100  # a no-cost order
        service = "retainer" if mode == "subscription" else "website-care"
        result = self.sandbox.create_checkout(
            email=self.email, name="Truth Client", service_id=service, amount=amount, currency=currency,
            mode=mode, created=self.tick(), deliver=False, **options,
        )  # fmt: skip
        session = result["session"]
        self.step(f"checkout {mode} {amount} {currency} {options or ''}".strip(), result)
        self.currencies.append(currency)
        if session.get("payment_status") == "paid":
            self.charges.append(session["invoice"] or session["id"])
        if session.get("subscription"):
            self.subscriptions.append(session["subscription"])

    def invoice(self, currency: str) -> None:
        amount = amount_for(self.rng, currency)
        result = self.sandbox.create_invoice(
            amount=amount, service_id="website-care", currency=currency, email=self.email,
            name="Truth Client", created=self.tick(), deliver=False,
        )  # fmt: skip
        self.step(f"invoice {amount} {currency}", result)
        self.currencies.append(currency)
        self.charges.append(result["invoice"]["id"])

    def build(self) -> "Scenario":
        rng = self.rng
        first = rng.choice(CURRENCIES)
        if rng.random() < 0.15:
            self.invoice(first)
        else:
            self.checkout(first)
        for _ in range(rng.randint(0, 6)):
            try:
                self.later(rng.random())
            except (ValueError, KeyError) as refused:  # e.g. a refund of a fully refunded charge
                self.history.append(f"  (sandbox refused: {refused})")
        return self

    def later(self, pick: float) -> None:
        rng, sandbox = self.rng, self.sandbox
        if pick < 0.25 and self.subscriptions:
            subscription = rng.choice(self.subscriptions)
            fail = rng.random() < 0.2
            result = sandbox.renew_subscription(subscription, fail=fail, created=self.tick(), deliver=False)
            self.step(f"renew {subscription} fail={fail}", result)
            if not fail:
                self.charges.append(result["invoice"]["id"])
        elif pick < 0.35:
            self.invoice(rng.choice(self.currencies))
        elif pick < 0.6 and self.charges:
            charge = rng.choice(self.charges)
            kind = rng.choice(["partial", "full", "failed"])
            amount = rng.randint(1, 3000) if kind == "partial" else None
            result = sandbox.refund(
                charge, amount=amount, fail=kind == "failed", created=self.tick(), deliver=False
            )
            self.step(f"refund {charge} {kind} {amount or ''}".strip(), result)
            self.refunds.append(result["refund"]["id"])
        elif pick < 0.65 and self.refunds:
            refund = rng.choice(self.refunds)
            result = sandbox.fail_refund(refund, created=self.tick(), deliver=False)
            self.step(f"refund {refund} fails later", result)
        elif pick < 0.8 and self.charges:
            charge = rng.choice(self.charges)
            outcome = rng.choice(["won", "lost", None])
            when = self.tick()
            result = sandbox.dispute(
                charge, outcome=outcome, created=when, closed=when + DAY if outcome else None, deliver=False
            )
            self.step(f"dispute {charge} {outcome or 'open'}", result)
        elif pick < 0.9 and self.subscriptions:
            subscription = self.subscriptions.pop(rng.randrange(len(self.subscriptions)))
            result = sandbox.cancel_subscription(subscription, created=self.tick(), deliver=False)
            self.step(f"cancel {subscription}", result)
        else:
            self.checkout(rng.choice([c for c in CURRENCIES if c != self.currencies[0]]))


def deliveries_of(scenario: Scenario, duplicate_share: float) -> list[str]:
    """The scenario's events, some twice, shuffled (Stripe promises neither order nor once)."""
    # Seeded by --seed, not the email (which holds a per-run id), so a rerun delivers the same way.
    rng = random.Random(f"{scenario.key}-deliveries")
    events = [e for e in scenario.events for _ in range(2 if rng.random() < duplicate_share else 1)]
    rng.shuffle(events)
    return events


def post_events(sandbox, session: requests.Session, url: str, event_ids: list[str]) -> list[int]:
    from stripe_sandbox.signing import sign_payload
    from stripe_sandbox.webhooks import event_payload

    statuses = []
    for event_id in event_ids:
        with sandbox.store.lock:
            body = event_payload(sandbox.store.get("event", event_id))
        response = session.post(
            url,
            data=body.encode(),
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": sign_payload(body, benchlib.WEBHOOK_SECRET),
            },
            timeout=60,
        )
        statuses.append(response.status_code)
    return statuses


def wait_idle(run_event_ids: set[str], timeout: float, children) -> dict:
    """Until the queue is empty and every job of this run's events reached a final state."""
    from django_q.models import OrmQ

    from stripe_events.models import StripeWebhookJob

    Status = StripeWebhookJob.Status
    deadline = time.monotonic() + timeout
    calm = 0
    while time.monotonic() < deadline:
        children.check_alive()
        jobs = StripeWebhookJob.objects.filter(event_id__in=run_event_ids)
        open_jobs = jobs.exclude(status__in=[Status.SUCCEEDED, Status.FAILED]).count()
        calm = calm + 1 if not open_jobs and not OrmQ.objects.exists() else 0
        if calm >= 3:
            break
        time.sleep(0.5)
    jobs = StripeWebhookJob.objects.filter(event_id__in=run_event_ids)
    return {
        "jobs": jobs.count(),
        "jobs_failed": jobs.filter(status=Status.FAILED).count(),
        "jobs_open": jobs.exclude(status__in=[Status.SUCCEEDED, Status.FAILED]).count(),
        "queue": OrmQ.objects.count(),
    }


def crm_money(client) -> dict:
    from crm.selectors.ledger import client_money_by_currency, client_settlement_total

    settlement = client_settlement_total(client=client)
    return {
        "currencies": client_money_by_currency(client=client),
        "first_currency": client.currency,
        "invoiced_value": client.invoiced_value,
        "settlement": {
            "amount": settlement.amount,
            "fee": settlement.fee,
            "net": settlement.net,
            "transactions": settlement.transactions,
            "unknown": settlement.unknown,
        },
    }


def truth_money(entry: dict) -> dict:
    settlement = entry["settlement"]
    return {
        "currencies": entry["currencies"],
        "first_currency": entry["first_currency"],
        "invoiced_value": entry["invoiced_value"],
        "settlement": {**{k: settlement[k] for k in ("amount", "fee", "net", "transactions")}, "unknown": 0},
    }


def compare(scenarios: list[Scenario], truth: dict) -> dict:
    from django.db.models import Count
    from django.db.models.functions import Lower

    from crm.models import Client, Onboarding

    emails = [s.email for s in scenarios]
    clients = {c.email.lower(): c for c in Client.objects.filter(email__in=emails)}
    duplicates = (
        Client.objects.annotate(low=Lower("email"))
        .filter(low__in=emails)
        .values("low")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    mismatches = []
    for scenario in scenarios:
        expected = truth.get(scenario.email)
        if expected is None:
            continue  # nothing was paid (e.g. every payment declined): nothing to compare
        client = clients.get(scenario.email)
        got = crm_money(client) if client else None
        want = truth_money(expected)
        if got != want:
            mismatches.append((scenario, got, want))
    S, Step = Onboarding.Status, Onboarding.StepStatus
    onboardings = Onboarding.objects.filter(customer_email__in=emails)
    stuck_steps = [Step.NOT_STARTED, Step.PENDING, Step.RUNNING, Step.RETRYING]
    stuck = onboardings.filter(status__in=[S.AWAITING_PAYMENT, S.IN_PROGRESS]).count()
    stuck += onboardings.filter(status=S.ONBOARDED, email_status__in=stuck_steps).count()
    stuck += onboardings.filter(status=S.ONBOARDED, workspace_status__in=stuck_steps).count()
    statuses = dict(onboardings.values_list("status").annotate(n=Count("id")).order_by())
    return {
        "clients": len(clients),
        "missing_clients": sum(1 for s in scenarios if s.email in truth and s.email not in clients),
        "mismatches": mismatches,
        "duplicate_clients": duplicates,
        "stuck": stuck,
        "onboarding_statuses": statuses,
    }


def main() -> int:
    args = parse_args()
    benchlib.install_guards(args.max_seconds)
    started = time.monotonic()
    seed = args.seed if args.seed is not None else int(time.time())
    log(f"seed {seed} (rerun with --seed {seed} --scenarios {args.scenarios})")
    database_url = os.environ.get("DATABASE_URL") or "postgres://root@127.0.0.1:5432/ledger_truth_bench"
    figures: dict = {"bench": "ledger_truth", "seed": seed, "database": database_url.rsplit("/", 1)[-1]}

    web_port = benchlib.free_port()
    site_url = f"http://127.0.0.1:{web_port}"
    children = benchlib.Children("bench-ledger-")
    from stripe_sandbox.server import StripeSandbox

    sandbox = StripeSandbox()
    sandbox_url = sandbox.start()
    app_env = {
        "DATABASE_URL": database_url,
        "STRIPE_API_HOST": sandbox_url,
        "SITE_URL": site_url,
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(children.dir / "mail"),
        "LOG_LEVEL": "WARNING",
    }
    for name in ("REDIS_URL", "Q_WORKERS"):
        os.environ.pop(name, None)
    benchlib.ensure_database(database_url)
    mode, mode_env = benchlib.choose_mode(args.mode, database_url, app_env)
    env = {**os.environ, **mode_env, **app_env}
    benchlib.django_setup(env)
    log(f"settings: {'production (DJANGO_DEBUG=0)' if mode == 'prod' else 'DEBUG (DJANGO_DEBUG=1)'}")
    log(f"migrate: {benchlib.migrate():.1f} s")

    from stripe_events.webhook_endpoints import webhook_endpoint_register

    benchlib.bench_database_ready(SERVICES)
    endpoint, _ = webhook_endpoint_register(secret=benchlib.WEBHOOK_SECRET, base_url=site_url)

    run = uuid.uuid4().hex[:6]
    built = time.monotonic()
    scenarios = [Scenario(sandbox, number, run, seed).build() for number in range(args.scenarios)]
    plans = [deliveries_of(s, args.duplicate_share) for s in scenarios]
    unique_events = sum(len(s.events) for s in scenarios)
    deliveries = sum(len(p) for p in plans)
    log(
        f"built {len(scenarios)} histories in {time.monotonic() - built:.1f} s: {unique_events} events, "
        f"{deliveries} deliveries ({deliveries - unique_events} duplicates), shuffled per client"
    )
    figures.update(mode=mode, scenarios=len(scenarios), events=unique_events, deliveries=deliveries)

    try:
        with children:
            children.spawn("gunicorn", benchlib.gunicorn_args(web_port, args.web_workers), env)
            children.manage("qcluster", ["qcluster"], env)
            benchlib.wait_http(f"{site_url}/healthz/", children)
            log(f"sandbox {sandbox_url} (in-process), web {site_url} (gunicorn), worker qcluster")
            delivering = time.monotonic()

            def send(plan):
                with requests.Session() as session:
                    return post_events(sandbox, session, endpoint.url, plan)

            with ThreadPoolExecutor(max_workers=args.parallel) as pool:
                statuses = [code for codes in pool.map(send, plans) for code in codes]
            not_ok = [code for code in statuses if not 200 <= code < 300]
            deliver_seconds = time.monotonic() - delivering
            log(f"delivered in {deliver_seconds:.1f} s ({len(not_ok)} not 2xx: {sorted(set(not_ok))})")
            run_events = {e for s in scenarios for e in s.events}
            idle = wait_idle(run_events, args.timeout, children)
            processed_seconds = time.monotonic() - delivering
            log(f"worker idle {processed_seconds:.1f} s after the first delivery: {idle}")
            worker_log = children.log_of("qcluster").read_text(errors="replace")
            web_log = children.log_of("gunicorn").read_text(errors="replace")
    finally:
        truth = sandbox.ledger()["customers"]
        sandbox.stop()

    result = compare(scenarios, truth)
    for scenario, got, want in result["mismatches"]:
        log(f"\nMISMATCH {scenario.email}")
        for line in scenario.history:
            log(f"  {line}")
        log(f"  crm:     {json.dumps(got, sort_keys=True)}")
        log(f"  sandbox: {json.dumps(want, sort_keys=True)}")
    log(
        f"\n{len(scenarios)} clients compared with the sandbox ledger: "
        f"{len(result['mismatches'])} mismatches, "
        f"{result['duplicate_clients']} duplicate clients, {result['stuck']} stuck, "
        f"{result['missing_clients']} missing; onboardings {result['onboarding_statuses']}"
    )
    figures.update(
        mismatches=len(result["mismatches"]),
        duplicate_clients=result["duplicate_clients"],
        stuck=result["stuck"],
        missing_clients=result["missing_clients"],
        clients=result["clients"],
        onboarding_statuses=result["onboarding_statuses"],
        non_2xx_deliveries=len(not_ok),
        jobs=idle,
        deliver_seconds=rounded(deliver_seconds, 1),
        deliveries_per_second=rounded(deliveries / deliver_seconds, 1) if deliver_seconds else None,
        processed_seconds=rounded(processed_seconds, 1),
        worker_log_tracebacks=worker_log.count("Traceback"),
        web_log_tracebacks=web_log.count("Traceback"),
        seconds=rounded(time.monotonic() - started, 1),
    )
    benchlib.emit_json(figures)
    ok = not (result["mismatches"] or result["duplicate_clients"] or result["stuck"] or not_ok)
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; child processes stopped", file=sys.stderr)
        sys.exit(130)
