"""Backfill: bring Stripe's Checkout Session history in through the webhook path's own service.

`onboarding_backfill` lists Checkout Sessions from the Stripe API, one request per 100 sessions
(everything the webhook path's sync fetches per session comes expanded in the list: the same
expansions), mirrors each page into dj-stripe's tables in a few statements
(stripe_events/session_mirror.py: the rows the webhook path writes), then onboards each session
through the webhook's own service (`onboarding_sync_locked`, from the listed facts and charge).
Nothing is collected across pages: memory stays flat however long the history. A page of sessions
is requested with stripe-python's `StripeClient.raw_request` and its JSON parsed once: the mirror
and the service want plain data, and turning a page into StripeObjects and back cost more than
the rest of the page's Python (Stripe's errors are raised as stripe-python raises them).

Resume. Stripe lists newest first and pages with `starting_after`, so a run walks back in time
from `window_end` (frozen at the first start) to `since`. A page is one transaction: its mirror
rows, its sessions' onboardings and the run's checkpoint (`BackfillRun.last_session_id`, the
oldest session done so far, written once, at the page's end). So after Ctrl-C or a kill, a rerun
with the same arguments lists from `starting_after=<checkpoint>`: every session newer than it is
done, none is done twice, the pages already walked are not listed again, and the page that was
under way is done again from its start (nothing of it was kept). If a session of a page fails,
the page is rolled back and done again as before this was batched: the page's mirror in one
transaction (upserts), then each session with its checkpoint in one, so the failed session is
counted as failed and the others are done.
"""

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import stripe
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from djstripe.settings import djstripe_settings
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random_exponential,
)
from tenacity.wait import wait_base

from stripe_events import session_sync
from stripe_events.session_mirror import checkout_sessions_mirror
from stripe_events.session_sync import latest_charge
from stripe_events.stripe_client import stripe_api_key

from .backfill_ledger import LISTINGS, Listing, ledger_counts_new, ledger_object_import
from .models import BackfillRun, Onboarding
from .services.onboarding import (
    ASYNC_PAYMENT_FAILED,
    PageRows,
    SessionFacts,
    onboarding_session_lock,
    onboarding_sessions_lock,
    onboarding_sync_locked,
)

logger = logging.getLogger(__name__)

Status = Onboarding.Status
RunStatus = BackfillRun.Status

PAGE_SIZE = 100
# What the webhook path's sync expands for one session (stripe_events/session_sync.py: dj-stripe's
# Session.expand_fields, the customer with its sources, the payment intent with its payment method
# and its charge's balance transaction), for each listed session; four levels deep at most, as
# Stripe allows.
EXPAND = [f"data.{path}" for path in session_sync.EXPAND]
# Requests per second: under Stripe's documented limits (25/s in test mode, 100/s live), leaving
# room for the webhook worker that shares the key.
TEST_MODE_RATE = 20.0
LIVE_MODE_RATE = 80.0
# A run stops (resumably) when this many sessions in a row fail: the database is likely gone.
MAX_CONSECUTIVE_FAILURES = 20
# Failed session ids kept on the run for the operator (the count is exact).
MAX_FAILED_IDS = 100
ONBOARDED = {Status.IN_PROGRESS, Status.ONBOARDED, Status.FAILED}


class BackfillError(Exception):
    """The run stopped; its checkpoint is saved and the same command continues it."""

    def __init__(self, message: str, *, run: BackfillRun | None = None):
        super().__init__(message)
        self.run = run


class BackfillBusy(BackfillError):
    """Another process is working on the same run."""


class RateLimiter:
    """Token bucket: at most `rate` acquisitions per second on average (0 or less: unlimited).

    Written here because it is ten lines and the backfill is single-threaded; a library would
    add a dependency for a loop and a sleep.
    """

    def __init__(
        self,
        *,
        rate: float,
        burst: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.rate = rate
        self.capacity = max(1.0, burst)
        self.tokens = self.capacity
        self.clock = clock
        self.sleep = sleep
        self.stamp = clock()

    def acquire(self) -> None:
        """Block until one request may be sent."""
        if self.rate <= 0:
            return
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            wait = (1 - self.tokens) / self.rate
            self.sleep(wait)
            # The bucket holds exactly one token at now + wait (no re-check: float rounding
            # could otherwise loop on ever tinier sleeps).
            self.stamp, self.tokens = now + wait, 1.0
        self.tokens -= 1


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one page before stopping the run (resumably)."""

    attempts: int = 5  # Stripe 5xx, connection errors, timeouts
    rate_limited_attempts: int = 12  # 429s in a row are expected under load: wait longer, then carry on
    backoff_base: float = 1.0
    backoff_cap: float = 30.0

    def wait(self) -> wait_base:
        """Capped exponential backoff, half of it random (so parallel clients do not retry in step).

        Both halves grow as base/2 × 2^(n-1), capped at cap/2: the wait lies in [x/2, x].
        """
        half = {"multiplier": self.backoff_base / 2, "max": self.backoff_cap / 2}
        return wait_exponential(**half) + wait_random_exponential(**half)


@dataclass
class BackfillProgress:
    """What the caller's progress callback sees after each session."""

    session_id: str
    outcome: str
    email: str
    seen: int
    pages: int
    fraction: float  # share of the time window walked (Stripe gives no total count)


@dataclass
class BackfillSummary:
    """The result of one invocation (counts are the run's, across resumes)."""

    run_id: int | None
    status: str
    dry_run: bool
    resumed_after: str
    since: str
    window_end: str
    counts: dict
    failed_sessions: list = field(default_factory=list)
    pages: int = 0
    stripe_requests: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def default_rate() -> float:
    """Stripe's read limit for the mode the app runs in, with headroom."""
    return LIVE_MODE_RATE if settings.STRIPE_LIVE_MODE else TEST_MODE_RATE


def counts_new() -> dict:
    return {
        "listed": 0,
        "seen": 0,
        "other_service": 0,
        "already_onboarded": 0,
        "onboarded_now": 0,
        "held": {},
        "awaiting_payment": 0,
        "payment_failed": 0,
        "rejected": 0,
        "failed": 0,
        "ledger": ledger_counts_new(),
    }


def counts_add(counts: dict, outcome: str) -> None:
    if outcome.startswith("held:"):
        reason = outcome.removeprefix("held:")
        counts["held"][reason] = counts["held"].get(reason, 0) + 1
    else:
        counts[outcome] += 1


def outcome_of(before: str | None, onboarding: Onboarding) -> str:
    """Name what the service did with a session, given the onboarding's status before it ran."""
    if onboarding.status in ONBOARDED:
        return "already_onboarded" if before in ONBOARDED else "onboarded_now"
    if onboarding.status == Status.HELD:
        return f"held:{onboarding.held_reason}"
    outcomes: dict[str, str] = {
        Status.AWAITING_PAYMENT: "awaiting_payment",
        Status.PAYMENT_FAILED: "payment_failed",
        Status.REJECTED: "rejected",
    }
    return outcomes[onboarding.status]


def event_type_for(data) -> str:
    """The event the webhook path would have seen for this state of the session.

    A complete but unpaid session whose payment intent is back to `requires_payment_method` had
    its delayed payment fail (Stripe sent checkout.session.async_payment_failed); any other unpaid
    session is still waiting.
    """
    intent = data.get("payment_intent")
    if (
        data.get("payment_status") == "unpaid"
        and intent
        and not isinstance(intent, str)  # expanded: an object, not an id
        and intent.get("status") == "requires_payment_method"
    ):
        return ASYNC_PAYMENT_FAILED
    return ""


def backfill_session_process(
    *, data: dict, send_welcome_email: bool, page: PageRows | None = None, facts: SessionFacts | None = None
) -> str:
    """Onboard one listed session, already mirrored, like a webhook would; returns the outcome.

    Runs in the caller's transaction, from the listed data: no Stripe request, and the session's
    facts are not read back from the mirror (`facts`: already made from `data` by the caller).
    `page`: the caller holds the lock of every session of the page and read these rows for them
    after taking them.
    """
    if page is None:
        onboarding_session_lock(session_id=data["id"])
    onboarding, before = onboarding_sync_locked(
        facts=facts or SessionFacts.from_stripe_data(data),
        event_type=event_type_for(data),
        send_welcome_email=send_welcome_email,
        charge=latest_charge(data),
        page=page,
    )
    return outcome_of(before, onboarding)


def backfill_run_open(
    *, since: datetime, until: datetime | None, service_ref: str, no_email: bool, livemode: bool
) -> BackfillRun:
    """The unfinished run with these arguments (to continue it), or a new one."""
    run = (
        BackfillRun.objects.filter(
            since=since, until=until, service_ref=service_ref, no_email=no_email, livemode=livemode
        )
        .exclude(status=RunStatus.COMPLETED)
        .order_by("-started")
        .first()
    )
    if run is not None:
        run.starts += 1
        run.status = RunStatus.RUNNING
        run.last_error = ""
        run.save(update_fields=["starts", "status", "last_error", "updated"])
        return run
    run = backfill_run_new(
        since=since, until=until, service_ref=service_ref, no_email=no_email, livemode=livemode
    )
    run.save()
    return run


def backfill_run_new(
    *, since: datetime, until: datetime | None, service_ref: str, no_email: bool, livemode: bool
) -> BackfillRun:
    """A run over [since, until or now), not saved yet."""
    window_end = until or timezone.now().replace(microsecond=0)
    if window_end <= since:
        raise BackfillError(f"Nothing to do: --since {since:%Y-%m-%d} is not before {window_end:%Y-%m-%d}.")
    return BackfillRun(
        since=since,
        until=until,
        window_end=window_end,
        service_ref=service_ref,
        no_email=no_email,
        livemode=livemode,
        counts=counts_new(),
    )


def onboarding_backfill(
    *,
    since: datetime,
    until: datetime | None = None,
    service_ref: str = "",
    no_email: bool = False,
    dry_run: bool = False,
    rate: float | None = None,
    retry: RetryPolicy | None = None,
    progress: Callable[[BackfillProgress], None] | None = None,
) -> BackfillSummary:
    """Onboard the complete Checkout Sessions created in [since, until) through the webhook's service.

    Resumes the unfinished run with the same arguments. `dry_run` processes each session in a
    transaction that is rolled back: the same decisions, nothing written (not even the checkpoint).
    Raises BackfillError when Stripe keeps failing; the checkpoint is saved and rerunning resumes.
    """
    started = time.monotonic()
    livemode = bool(settings.STRIPE_LIVE_MODE)
    # A dry run's run is never saved: it walks the whole window and leaves checkpoints alone.
    run_for = backfill_run_new if dry_run else backfill_run_open
    run = run_for(since=since, until=until, service_ref=service_ref, no_email=no_email, livemode=livemode)
    walk = _Walk(
        run=run,
        dry_run=dry_run,
        limiter=RateLimiter(rate=default_rate() if rate is None else rate),
        retry=retry or RetryPolicy(),
        progress=progress,
    )
    resumed_after = run.last_session_id
    with _run_lock(run):
        try:
            walk.run_through()
        except KeyboardInterrupt:
            walk.stop(RunStatus.INTERRUPTED, "Interrupted")
            raise
        except BackfillError as exc:
            walk.stop(RunStatus.FAILED, str(exc))
            exc.run = run
            raise
        except BaseException as exc:
            walk.stop(RunStatus.FAILED, f"{type(exc).__name__}: {exc}")
            raise
    return BackfillSummary(
        run_id=run.pk,
        status=run.status,
        dry_run=dry_run,
        resumed_after=resumed_after,
        since=run.since.isoformat(),
        window_end=run.window_end.isoformat(),
        counts=run.counts,
        failed_sessions=run.failed_sessions,
        pages=run.pages,
        stripe_requests=run.stripe_requests,
        seconds=round(time.monotonic() - started, 3),
    )


def _log_retry(message: str) -> Callable[[RetryCallState], None]:
    """A tenacity before_sleep hook logging `message` with the error and the wait."""

    def log(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        logger.warning(message, {"error": error, "wait": wait})

    return log


class _run_lock:
    """A session-level advisory lock on the run, held while this process walks it.

    The connection closing (a killed process) releases it, so a stale RUNNING row never blocks.
    """

    def __init__(self, run: BackfillRun):
        self.key = f"backfill-run:{run.pk}" if run.pk and connection.vendor == "postgresql" else ""
        self.run = run

    def __enter__(self):
        if self.key:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [self.key])
                if not cursor.fetchone()[0]:
                    raise BackfillBusy(
                        f"Backfill run #{self.run.pk} is being processed by another process.", run=self.run
                    )
        return self

    def __exit__(self, *exc_info):
        if self.key:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [self.key])


class _Walk:
    """One invocation's walk over a run's window: pages in, sessions processed, checkpoint moved."""

    def __init__(self, *, run, dry_run, limiter, retry, progress):
        self.run = run
        self.dry_run = dry_run
        self.limiter = limiter
        self.retry = retry
        self.progress = progress
        self.api_key = stripe_api_key()
        # Every attempt goes through our limiter and backoff, 429s included: no retries of its own.
        self.client = stripe.StripeClient(
            self.api_key,
            stripe_version=djstripe_settings.STRIPE_API_VERSION,
            base_addresses={"api": stripe.api_base},
            http_client=stripe.default_http_client,
            max_network_retries=0,
        )
        self.consecutive_failures = 0
        self.since_ts = int(run.since.timestamp())
        self.end_ts = int(run.window_end.timestamp())

    def run_through(self) -> None:
        for page in self.pages():
            self.page_handle(page)
        self.ledger_walk()
        self.stop(RunStatus.COMPLETED, "")

    def ledger_walk(self) -> None:
        """Paid invoices, refunds and disputes of the window into the ledger, a list request a page."""
        counts = ledger_counts_new()
        for listing in LISTINGS:
            params = {"limit": PAGE_SIZE, "created": {"gte": self.since_ts, "lt": self.end_ts}}
            for obj in self.listed(listing, {**params, **listing.params}):
                done = ledger_object_import(listing, obj, api_key=self.api_key, dry_run=self.dry_run)
                counts[listing.name if done else "failed"] += 1
        self.run.counts = {**self.run.counts, "ledger": counts}

    def listed(self, listing: Listing, params: dict) -> Iterator:
        cursor = ""
        while True:
            page = self.page_fetch({**params, "starting_after": cursor} if cursor else params, listing)
            self.run.pages += 1
            yield from page.data
            if not page.has_more or not page.data:
                return
            cursor = page.data[-1].id

    def pages(self) -> Iterator[list[dict]]:
        """Every complete session in the window after the checkpoint, newest first, a page at a time."""
        params = {
            "limit": PAGE_SIZE,
            "created": {"gte": self.since_ts, "lt": self.end_ts},
            "status": "complete",
            "expand": EXPAND,
        }
        cursor = self.run.last_session_id
        while True:
            page = self.page_fetch({**params, "starting_after": cursor} if cursor else params)
            self.run.pages += 1
            sessions: list[dict] = page["data"]
            yield sessions
            if not page["has_more"] or not sessions:
                return
            cursor = sessions[-1]["id"]

    def page_fetch(self, params: dict, listing: Listing | None = None):
        """One list request, retried on 429 (longer), 5xx, connection errors and timeouts.

        Two tenacity loops, each with its own budget: the inner one waits out 429s, the outer
        one retries the rest (a 5xx starts a fresh 429 budget).
        """
        rate_limited = Retrying(
            retry=retry_if_exception_type(stripe.RateLimitError),
            stop=stop_after_attempt(self.retry.rate_limited_attempts),
            wait=self.retry.wait(),
            before_sleep=_log_retry("Stripe rate limit (429) on a backfill page; waiting %(wait).1f s"),
        )
        failing = Retrying(
            retry=retry_if_exception_type((stripe.APIError, stripe.APIConnectionError)),
            stop=stop_after_attempt(self.retry.attempts),
            wait=self.retry.wait(),
            before_sleep=_log_retry("Stripe failed a backfill page (%(error)s); retrying in %(wait).1f s"),
        )
        try:
            return failing(rate_limited, self.page_request, params, listing)
        except RetryError as exc:
            last = exc.last_attempt
            error = last.exception()
            assert error is not None  # tenacity gives up only after an exception
            raise self.page_error(error, last.attempt_number) from error

    def page_request(self, params: dict, listing: Listing | None = None):
        """One request: a listing's page as stripe-python's list object, or a page of Checkout
        Sessions as Stripe's JSON (parsed once, plain dicts and lists)."""
        self.limiter.acquire()
        self.run.stripe_requests += 1
        if listing is None:
            return self.client.raw_request("get", "/v1/checkout/sessions", **params).data
        return listing.list_call(
            **params,
            api_key=self.api_key,
            stripe_version=djstripe_settings.STRIPE_API_VERSION,
            # Every attempt goes through our limiter and backoff, 429s included.
            max_network_retries=0,
        )

    def page_error(self, exc: BaseException, attempts: int) -> BackfillError:
        after = f"after session {self.run.last_session_id}" if self.run.last_session_id else "at the start"
        return BackfillError(
            f"Stripe kept failing on the page {after} ({attempts} attempts; "
            f"last error: {type(exc).__name__}: {exc}). The checkpoint is saved: "
            "run the same command again to continue from there."
        )

    def page_handle(self, page: list[dict]) -> None:
        """Mirror the page's sessions in one go, onboard them and move the checkpoint past the
        page, all in one transaction (one commit a page, not one a session).

        If a session fails, the page is rolled back and done again one session a transaction,
        so that session is counted as failed and the others are done. A dry run does it all in a
        transaction rolled back at the end of the page.
        """
        if self.dry_run:
            with transaction.atomic():
                self.page_one_by_one(page)
                transaction.set_rollback(True)
            return
        before = self.state()
        try:
            with transaction.atomic():
                wanted = [data for data in page if self.wanted(data)]
                facts = {data["id"]: SessionFacts.from_stripe_data(data) for data in wanted}
                rows = None
                if wanted:
                    checkout_sessions_mirror(wanted, api_key=self.api_key)
                    # Held to the page's commit either way: taken at once, one statement; then
                    # the page's onboardings, payments and services are read in three.
                    onboarding_sessions_lock(session_ids=list(facts))
                    refs = {session.service_ref for session in facts.values()} - {""}
                    rows = PageRows.read(session_ids=list(facts), service_refs=refs)
                for data in page:
                    if data["id"] in facts:
                        outcome = backfill_session_process(
                            data=data,
                            send_welcome_email=not self.run.no_email,
                            page=rows,
                            facts=facts[data["id"]],
                        )
                    else:
                        outcome = "other_service"
                    self.record(data, outcome, write=False)
                    self.report(data, outcome)
                if page:
                    self.checkpoint(**self.state())
        except Exception:  # noqa: BLE001 - one bad session must not stop a page: redone one by one
            self.restore(before)
            logger.warning("A session of a page failed; doing the page one session at a time", exc_info=True)
            self.page_one_by_one(page)
        except BaseException:
            self.restore(before)  # Ctrl-C: the page was rolled back, and so is its count
            raise
        else:
            self.consecutive_failures = 0

    def restore(self, state: dict) -> None:
        for name, value in state.items():
            setattr(self.run, name, value)

    def page_one_by_one(self, page: list[dict]) -> None:
        """The page with its mirror in one transaction, then each session and its checkpoint in one."""
        wanted = [data for data in page if self.wanted(data)]
        mirrored = self.page_mirror(wanted)
        for data in page:
            outcome = self.process(data, mirrored=mirrored) if self.wanted(data) else "other_service"
            if outcome == "other_service":
                self.record(data, outcome)
            self.report(data, outcome)

    def wanted(self, data) -> bool:
        metadata = data.get("metadata") or {}
        return (
            not self.run.service_ref or str(metadata.get("serviceId") or "").strip() == self.run.service_ref
        )

    def page_mirror(self, sessions: list[dict]) -> bool:
        """Mirror the sessions and their objects, committed before any is onboarded (see the module
        docstring); False if that failed, and each session is mirrored with its onboarding."""
        if not sessions:
            return True
        try:
            with transaction.atomic():
                checkout_sessions_mirror(sessions, api_key=self.api_key)
        except Exception:  # noqa: BLE001 - one bad session must not stop a page: retried one by one
            logger.exception("Mirroring a page of Checkout Sessions failed; mirroring them one at a time")
            return False
        return True

    def process(self, data, *, mirrored: bool) -> str:
        try:
            with transaction.atomic():
                if not mirrored:
                    checkout_sessions_mirror([data], api_key=self.api_key)
                outcome = backfill_session_process(data=data, send_welcome_email=not self.run.no_email)
                if self.dry_run:
                    transaction.set_rollback(True)
                else:
                    # Same transaction as the onboarding: processed and checkpointed, or neither.
                    self.record(data, outcome)
        except Exception as exc:  # noqa: BLE001 - one bad session must not stop a long backfill
            logger.exception("Backfill of Checkout Session %s failed", data["id"])
            self.consecutive_failures += 1
            self.record(data, "failed", error=f"{data['id']}: {type(exc).__name__}: {exc}")
            if self.consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
                raise BackfillError(
                    f"{self.consecutive_failures} sessions in a row failed; last: {self.run.last_error}"
                ) from exc
            return "failed"
        self.consecutive_failures = 0
        if self.dry_run:
            self.record(data, outcome)
        return outcome

    def record(self, data, outcome: str, error: str = "", *, write: bool = True) -> None:
        """Count the session and move the checkpoint past it (in memory only for a dry run, or
        with `write=False`: the page's checkpoint is written once, at its end)."""
        run = self.run
        counts = {**run.counts, "held": dict(run.counts["held"])}
        counts["listed"] += 1
        if outcome != "other_service":
            counts["seen"] += 1
        counts_add(counts, outcome)
        failed = run.failed_sessions
        if error and len(failed) < MAX_FAILED_IDS:
            failed = [*failed, data["id"]]
        last_created = datetime.fromtimestamp(data["created"], tz=UTC)
        if write and not self.dry_run:
            self.checkpoint(
                last_session_id=data["id"],
                last_created=last_created,
                counts=counts,
                failed_sessions=failed,
                last_error=error or run.last_error,
            )
        # Only once the row is written: a failed write leaves memory matching the database.
        run.counts, run.failed_sessions = counts, failed
        run.last_session_id, run.last_created = data["id"], last_created
        run.last_error = error or run.last_error

    def checkpoint(self, **state) -> None:
        """Write the run's checkpoint (`state`: the run's fields that change with it)."""
        BackfillRun.objects.filter(id=self.run.id).update(
            **state, pages=self.run.pages, stripe_requests=self.run.stripe_requests, updated=timezone.now()
        )

    def state(self) -> dict:
        run = self.run
        return {
            "last_session_id": run.last_session_id,
            "last_created": run.last_created,
            "counts": run.counts,
            "failed_sessions": run.failed_sessions,
            "last_error": run.last_error,
        }

    def report(self, data, outcome: str) -> None:
        if self.progress is None:
            return
        span = max(1, self.end_ts - self.since_ts)
        details = data.get("customer_details") or {}
        self.progress(
            BackfillProgress(
                session_id=data["id"],
                outcome=outcome,
                email=details.get("email") or data.get("customer_email") or "",
                seen=self.run.counts["seen"],
                pages=self.run.pages,
                fraction=min(1.0, max(0.0, (self.end_ts - data["created"]) / span)),
            )
        )

    def stop(self, status: str, error: str) -> None:
        run = self.run
        run.status = status
        run.last_error = error or run.last_error
        run.finished = timezone.now() if status == RunStatus.COMPLETED else None
        if self.dry_run:
            return
        BackfillRun.objects.filter(id=run.id).update(
            status=run.status,
            last_error=run.last_error,
            finished=run.finished,
            counts=run.counts,
            failed_sessions=run.failed_sessions,
            pages=run.pages,
            stripe_requests=run.stripe_requests,
            updated=timezone.now(),
        )
