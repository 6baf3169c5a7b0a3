"""Reconciliation: compare Stripe with the CRM over a window, report every gap, repair what is safe.

Four kinds of gap, each reported with its ids:
- missed checkouts: a paid Checkout Session (found through Stripe's Events API) with no onboarding,
  or one still awaiting payment, whose event never reached our webhook;
- unfinished onboardings: an email or workspace step stuck or given up, or an onboarding held for staff;
  and offboardings: a workspace still ready after its service ended, or still suspended after it
  was reactivated (the provisioning backend failed when the lifecycle changed);
- failed webhooks: a StripeWebhookJob that gave up, is overdue for its retry, lost its queue message
  or the worker running it;
- value mismatches: a client whose invoiced_value is not its net in the ledger (crm/ledger.py), a
  paid invoice, refund or dispute Stripe lists that the ledger lacks or holds in another status, a
  subscription cancelled at Stripe (its Events API) whose cancellation the ledger lacks, and a
  movement still "not settled yet" (its balance transaction was not made when it was recorded).

Repairs go through the same doors as the worker and staff. `Fix.SAFE` (the daily schedule) only
does what cannot hurt when repeated: it catches up missed events, requeues work that is waiting or
abandoned, and recomputes derived values. `Fix.ALL` (`--fix`) also revives what gave up after its
retry budget (failed steps, failed webhook jobs). What neither can decide is left for staff.
"""

import logging
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import islice
from typing import Any

import stripe
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone
from djstripe.models import Event, Session
from djstripe.settings import djstripe_settings

from core.money import format_money
from core.queue import enqueue_transactionally
from core.retry import abandoned_before
from provisioning.models import Workspace
from stripe_events.models import StripeWebhookJob
from stripe_events.stripe_client import stripe_api_key
from stripe_events.stripe_json import stripe_object_json
from stripe_events.webhook_jobs import (
    PROCESS_TASK,
    stripe_event_process,
    webhook_job_retry_now,
)

from .backfill_ledger import LISTINGS, Listing, ledger_object_import
from .models import Client, MoneyMovement, Onboarding, ReconciliationRun
from .services.activity import Kind, activity_record
from .services.emails import welcome_email_requeue
from .services.ledger import (
    NO_PAYMENT_REQUIRED,
    PAID,
    client_lock,
    client_value_recompute,
    ledger_cancellation_record,
    ledger_net_expression,
    money_movement_settle,
)
from .services.lifecycle import WORKSPACES_TASK, client_workspaces_out_of_step
from .services.onboarding import EMAIL_TASK
from .services.workspace_step import workspace_step_requeue

logger = logging.getLogger(__name__)

Status = Onboarding.Status
Step = Onboarding.StepStatus
JobStatus = StripeWebhookJob.Status

PAID_CHECKOUT_EVENTS = ["checkout.session.completed", "checkout.session.async_payment_succeeded"]
EVENTS_PAGE = 100  # Stripe's largest page
STRIPE_EVENT_RETENTION_DAYS = 30
# A step or onboarding untouched this long while "in flight" is stuck (step backoffs are capped at
# RETRY_MAX_DELAY_SECONDS, 1 h).
STALE_AFTER = timedelta(minutes=90)
# Movements still without a settlement re-read from Stripe per run (one or two requests each; the
# daily run is a task under Q_TIMEOUT).
UNSETTLED_PER_RUN = 50
# A webhook job queued this long, or this late for its retry, lost its queue message.
WEBHOOK_OVERDUE = timedelta(minutes=10)
IN_FLIGHT = [Step.PENDING, Step.RUNNING, Step.RETRYING]


class Fix(StrEnum):
    NONE = "none"
    SAFE = "safe"
    ALL = "all"


class Gap(StrEnum):
    MISSED_CHECKOUT = "missed_checkout"
    UNFINISHED_ONBOARDING = "unfinished_onboarding"
    FAILED_WEBHOOK = "failed_webhook"
    VALUE_MISMATCH = "value_mismatch"


GAP_TITLES = {
    Gap.MISSED_CHECKOUT: "Paid checkouts with no onboarding",
    Gap.UNFINISHED_ONBOARDING: "Unfinished onboardings",
    Gap.FAILED_WEBHOOK: "Failed webhooks",
    Gap.VALUE_MISMATCH: "Invoiced value mismatches",
}


class State(StrEnum):
    OPEN = "open"  # reported only
    REPAIRED = "repaired"
    FOR_STAFF = "for_staff"


@dataclass
class Finding:
    """One gap: what it is (`ref` holds its ids), and what this run did about it."""

    gap: Gap
    ref: str
    detail: str
    state: State = State.OPEN
    outcome: str = ""

    def repaired(self, outcome: str) -> None:
        self.state, self.outcome = State.REPAIRED, outcome

    def for_staff(self, outcome: str) -> None:
        self.state, self.outcome = State.FOR_STAFF, outcome

    def line(self) -> str:
        text = f"  {self.ref}: {self.detail}"
        if self.state == State.REPAIRED:
            text += f" -> repaired: {self.outcome}"
        elif self.state == State.FOR_STAFF:
            text += f" -> for staff: {self.outcome}"
        return text


@dataclass
class Reconciliation:
    """What one run compared and found, printable as text or JSON."""

    days: int
    since: datetime
    fix: Fix
    events_scanned: int = 0
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, gap: Gap, ref: str, detail: str) -> Finding:
        finding = Finding(gap=gap, ref=ref, detail=detail)
        self.findings.append(finding)
        return finding

    def counts(self) -> dict[str, int]:
        counts = {gap.value: 0 for gap in Gap}
        for finding in self.findings:
            counts[finding.gap] += 1
        for state in State:
            counts[state.value] = sum(1 for f in self.findings if f.state == state)
        return counts

    def summary(self) -> str:
        counts = self.counts()
        found = "; ".join(f"{GAP_TITLES[gap].lower()}: {counts[gap]}" for gap in Gap)
        return (
            f"Summary: {found}. {counts[State.REPAIRED]} repaired, {counts[State.FOR_STAFF]} for staff, "
            f"{counts[State.OPEN]} reported only ({self.events_scanned} Stripe checkout events read)."
        )

    def text(self) -> str:
        mode = {Fix.NONE: "report only", Fix.SAFE: "safe repairs", Fix.ALL: "repairs"}[self.fix]
        since = f"{self.since:%Y-%m-%d %H:%M %Z}"
        lines = [f"Onboarding reconciliation of the last {self.days} days (since {since}), {mode}."]
        lines += [f"Note: {note}" for note in self.notes]
        for gap in Gap:
            found = [f for f in self.findings if f.gap == gap]
            lines.append(f"{GAP_TITLES[gap]} ({len(found)}){':' if found else ''}")
            lines += [finding.line() for finding in found]
        staff = [f for f in self.findings if f.state == State.FOR_STAFF]
        if staff:
            lines.append(f"Left for staff ({len(staff)}):")
            lines += [f"  {f.gap}: {f.ref}: {f.outcome}" for f in staff]
        lines.append(self.summary())
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {
            "days": self.days,
            "since": self.since.isoformat(),
            "fix": self.fix.value,
            "events_scanned": self.events_scanned,
            "counts": self.counts(),
            "notes": self.notes,
            "findings": [asdict(f) for f in self.findings],
        }


def reconciliation_run(
    *,
    days: int = 7,
    fix: Fix = Fix.NONE,
    triggered_by: str = ReconciliationRun.TriggeredBy.COMMAND,
    stale_after: timedelta = STALE_AFTER,
) -> tuple[ReconciliationRun, Reconciliation]:
    """Compare Stripe and the CRM over the last `days` days, repair per `fix`, store the run."""
    now = timezone.now()
    run = ReconciliationRun.objects.create(
        started=now, days=days, fixed=fix != Fix.NONE, triggered_by=triggered_by
    )
    report = Reconciliation(days=days, since=now - timedelta(days=days), fix=fix)
    try:
        missed_checkouts_reconcile(report=report, fix=fix)
        unfinished_onboardings_reconcile(report=report, fix=fix, stale_before=now - stale_after)
        unpaid_past_expiry_reconcile(report=report, fix=fix, now=now)
        workspaces_out_of_step_reconcile(report=report, fix=fix, stale_before=now - stale_after)
        failed_webhooks_reconcile(report=report, fix=fix, now=now)
        ledger_movements_reconcile(report=report, fix=fix)
        cancellations_reconcile(report=report, fix=fix)
        unsettled_movements_reconcile(report=report, fix=fix, stale_before=now - stale_after)
        value_mismatches_reconcile(report=report, fix=fix)
    except Exception as exc:
        run.error = f"{type(exc).__name__}: {exc}"
        logger.exception("Reconciliation run %s stopped early", run.id)
        raise
    finally:
        counts = report.counts()
        run.finished = timezone.now()
        run.events_scanned = report.events_scanned
        run.missed_checkouts = counts[Gap.MISSED_CHECKOUT]
        run.unfinished_onboardings = counts[Gap.UNFINISHED_ONBOARDING]
        run.failed_webhooks = counts[Gap.FAILED_WEBHOOK]
        run.value_mismatches = counts[Gap.VALUE_MISMATCH]
        run.repaired = counts[State.REPAIRED]
        run.for_staff = counts[State.FOR_STAFF]
        run.report = report.text()
        run.save()
    return run, report


# -- (a) paid checkouts that never reached us ------------------------------------------------------


def stripe_paid_checkout_events(*, since: datetime) -> Iterator[dict]:
    """Stripe's checkout completed / async-succeeded events since `since`, newest first, 100 a request."""
    return stripe_events_since(types=PAID_CHECKOUT_EVENTS, since=since)


def stripe_events_since(*, types: list[str], since: datetime) -> Iterator[dict]:
    """Stripe's events of these types since `since` (it keeps 30 days), newest first, 100 a request."""
    listing = stripe.Event.list(
        types=types,
        created={"gte": int(since.timestamp())},
        limit=EVENTS_PAGE,
        api_key=stripe_api_key(),
        stripe_version=djstripe_settings.STRIPE_API_VERSION,
    )
    for event in listing.auto_paging_iter():
        yield stripe_object_json(event)  # JSON-safe: Decimals back to strings


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def missed_checkouts_reconcile(*, report: Reconciliation, fix: Fix) -> None:
    """Find paid sessions Stripe has and we never onboarded; with `fix`, process their missed events."""
    if report.days > STRIPE_EVENT_RETENTION_DAYS:
        report.notes.append(
            f"Stripe keeps events for {STRIPE_EVENT_RETENTION_DAYS} days; "
            "older sessions are found by `manage.py backfill_onboarding`."
        )
    # One page of events at a time: three indexed queries per 100 events, nothing kept in memory.
    for page in _chunks(stripe_paid_checkout_events(since=report.since), EVENTS_PAGE):
        report.events_scanned += len(page)
        paid: dict[str, Any] = {}
        for event in page:
            session = event["data"]["object"]
            if session.get("payment_status") == "paid":
                paid.setdefault(session["id"], event)
        if not paid:
            continue
        event_ids = [event["id"] for event in paid.values()]
        onboarding_status = dict(
            Onboarding.objects.filter(checkout_session_id__in=paid).values_list(
                "checkout_session_id", "status"
            )
        )
        # A delivered event is the webhook job's business; failures there are reported under (c).
        delivered = set(
            StripeWebhookJob.objects.filter(event_id__in=event_ids).values_list("event_id", flat=True)
        )
        processed = set(Event.objects.filter(id__in=event_ids).values_list("id", flat=True))
        for session_id, event in paid.items():
            status = onboarding_status.get(session_id)
            if status not in (None, Status.AWAITING_PAYMENT) or event["id"] in delivered:
                continue
            finding = report.add(Gap.MISSED_CHECKOUT, session_id, missed_checkout_detail(event, status))
            if fix != Fix.NONE:
                missed_checkout_repair(finding, event=event, processed=event["id"] in processed)


def missed_checkout_detail(event: dict, onboarding_status: str | None) -> str:
    session = event["data"]["object"]
    email = (session.get("customer_details") or {}).get("email") or session.get("customer_email") or "?"
    amount = format_money(session.get("amount_total") or 0, session.get("currency") or "")
    service = (session.get("metadata") or {}).get("serviceId") or "?"
    paid_at = datetime.fromtimestamp(event["created"], tz=timezone.get_current_timezone())
    state = "no onboarding" if onboarding_status is None else "onboarding still awaiting payment"
    return (
        f"{email} paid {amount} for {service!r} at {paid_at:%Y-%m-%d %H:%M}; {state}; "
        f"{event['type']} {event['id']} never delivered here"
    )


def missed_checkout_repair(finding: Finding, *, event: dict, processed: bool) -> None:
    session_id = event["data"]["object"]["id"]
    if processed:
        finding.for_staff(f"event {event['id']} was processed yet produced no onboarding; check the logs")
        return
    try:
        stripe_event_process(data=event)  # exactly as the worker processes a delivery
    except Exception as exc:  # noqa: BLE001 - reported for staff; the next run tries again
        logger.warning("Catching up Stripe event %s failed: %s", event["id"], exc)
        finding.for_staff(
            f"processing {event['id']} failed ({type(exc).__name__}: {exc}); runs again next time"
        )
        return
    onboarding = Onboarding.objects.filter(checkout_session_id=session_id).first()
    if onboarding is None or onboarding.status == Status.AWAITING_PAYMENT:
        finding.for_staff(f"{event['id']} processed, but the session is still not onboarded")
    elif onboarding.status == Status.HELD:
        reason = onboarding.get_held_reason_display()
        finding.for_staff(f"{event['id']} processed; onboarding {onboarding.id} held: {reason}")
    else:
        finding.repaired(
            f"{event['id']} processed; onboarding {onboarding.id} {onboarding.get_status_display()}"
        )


# -- (b) onboardings that did not finish ------------------------------------------------------------


def unfinished_onboardings_reconcile(*, report: Reconciliation, fix: Fix, stale_before: datetime) -> None:
    """Find steps stuck in flight or given up (of any age: a stuck step never finishes by itself) and
    onboardings held in the window; with `fix`, requeue the steps."""
    stuck_email = Q(email_status__in=IN_FLIGHT, updated__lt=stale_before) | Q(email_status=Step.FAILED)
    stuck_workspace = Q(workspace_status__in=IN_FLIGHT, updated__lt=stale_before) | Q(
        workspace_status=Step.FAILED
    )
    held = Q(status=Status.HELD, updated__lt=stale_before, created__gte=report.since)
    onboardings = (
        Onboarding.objects.filter(stuck_email | stuck_workspace | held)
        .exclude(status__in=[Status.REJECTED])
        .select_related("client")
        .order_by("created", "id")
    )
    for onboarding in onboardings.iterator():
        who = onboarding.client.email if onboarding.client else onboarding.customer_email or "?"
        ref = f"onboarding {onboarding.id} ({onboarding.checkout_session_id}, {who})"
        if onboarding.status == Status.HELD:
            finding = report.add(
                Gap.UNFINISHED_ONBOARDING,
                ref,
                f"held since {onboarding.updated:%Y-%m-%d %H:%M}: {onboarding.get_held_reason_display()}",
            )
            if fix != Fix.NONE:
                finding.for_staff("approve or reject it in Needs review")
            continue
        for step in ("email", "workspace"):
            status = getattr(onboarding, f"{step}_status")
            if status == Step.FAILED or (status in IN_FLIGHT and onboarding.updated < stale_before):
                finding = report.add(
                    Gap.UNFINISHED_ONBOARDING, f"{ref} {step}", step_detail(onboarding, step)
                )
                if fix != Fix.NONE:
                    step_repair(finding, onboarding=onboarding, step=step, fix=fix)


def unpaid_past_expiry_reconcile(*, report: Reconciliation, fix: Fix, now: datetime) -> None:
    """Find onboardings still awaiting payment after their Checkout Session expired (of any age):
    nothing will move them on by itself, so staff decide (check Stripe, then reject or wait)."""
    awaiting = Onboarding.objects.filter(status=Status.AWAITING_PAYMENT).order_by("created", "id")
    sessions = Session.objects.filter(id__in=awaiting.values("checkout_session_id"))
    expires = {s.id: (s.stripe_data or {}).get("expires_at") for s in sessions.only("id", "stripe_data")}
    for onboarding in awaiting.iterator():
        expires_at = expires.get(onboarding.checkout_session_id)
        if not expires_at or expires_at > now.timestamp():
            continue
        expired = datetime.fromtimestamp(expires_at, tz=timezone.get_current_timezone())
        who = onboarding.customer_email or "?"
        finding = report.add(
            Gap.UNFINISHED_ONBOARDING,
            f"onboarding {onboarding.id} ({onboarding.checkout_session_id}, {who})",
            f"awaiting payment since {onboarding.created:%Y-%m-%d %H:%M}; "
            f"the session expired {expired:%Y-%m-%d %H:%M}",
        )
        if fix != Fix.NONE:
            finding.for_staff("no payment arrived: check the session in Stripe, then reject it or wait")


def workspaces_out_of_step_reconcile(*, report: Reconciliation, fix: Fix, stale_before: datetime) -> None:
    """Find clients whose workspaces are not as their lifecycle says, untouched since `stale_before`
    (the backend failed to suspend or resume them); with `fix`, queue the change again (safe: it
    only moves a workspace to the state the ledger says)."""
    workspaces = Workspace.objects.filter(
        client=OuterRef("pk"), status__in=[Workspace.Status.READY, Workspace.Status.SUSPENDED]
    )
    ending = MoneyMovement.objects.filter(client=OuterRef("pk")).filter(
        Q(kind=MoneyMovement.Kind.CANCELLATION)
        | Q(kind__in=[MoneyMovement.Kind.REFUND, MoneyMovement.Kind.DISPUTE], counts=True)
    )
    suspended = workspaces.filter(status=Workspace.Status.SUSPENDED)
    candidates = (
        Client.objects.filter(Exists(workspaces.filter(updated__lt=stale_before)))
        .filter(
            Q(lifecycle_status=Client.LifecycleStatus.CHURNED)
            | Q(keep_active=True)
            | Q(offboarded_by_staff=True)
            | Exists(suspended)
            | Exists(ending)
        )
        .order_by("id")
    )
    for client in candidates.iterator():
        wrong = client_workspaces_out_of_step(client=client)
        if not wrong:
            continue
        finding = report.add(
            Gap.UNFINISHED_ONBOARDING, f"client {client.id} ({client.email}) workspaces", "; ".join(wrong)
        )
        if fix != Fix.NONE:
            with transaction.atomic():
                enqueue_transactionally(WORKSPACES_TASK, client.id)
            finding.repaired("workspaces queued to be suspended or resumed again")


def step_detail(onboarding: Onboarding, step: str) -> str:
    status = getattr(onboarding, f"{step}_status")
    attempts = getattr(onboarding, f"{step}_attempts")
    error = getattr(onboarding, f"{step}_last_error")
    label = Step(status).label.lower()
    text = f"{step} step {label} since {onboarding.updated:%Y-%m-%d %H:%M} after {attempts} attempt(s)"
    return f"{text}: {error}" if error else text


def step_repair(finding: Finding, *, onboarding: Onboarding, step: str, fix: Fix) -> None:
    status = getattr(onboarding, f"{step}_status")
    if status == Step.FAILED and fix != Fix.ALL:
        finding.for_staff("gave up after its retries; retry it from the admin or run with --fix")
        return
    requeue = onboarding_email_requeue if step == "email" else onboarding_workspace_requeue
    if requeue(onboarding_id=onboarding.id):
        finding.repaired(f"{step} step queued again")
    else:
        finding.for_staff(f"{step} step changed meanwhile; see the onboarding")


@transaction.atomic
def onboarding_email_requeue(*, onboarding_id: int) -> bool:
    """Queue a welcome email that is waiting, retrying, failed (never sent) or abandoned mid-send
    again; False if not. The task claims the step (taking over an abandoned send), so it goes once."""
    onboarding = Onboarding.objects.get(id=onboarding_id)
    if onboarding.email_status == Step.RUNNING:
        # Only a new queue message: the task takes over a send whose worker died.
        queued = bool(onboarding.email_claimed_at and onboarding.email_claimed_at < abandoned_before())
        if queued:
            enqueue_transactionally(EMAIL_TASK, onboarding_id)
    else:
        queued = welcome_email_requeue(
            onboarding_id=onboarding_id, from_statuses=[Step.PENDING, Step.RETRYING, Step.FAILED]
        )
    if queued:
        activity_record(
            kind=Kind.EMAIL, summary="Welcome email queued again by reconciliation", onboarding=onboarding
        )
    return queued


@transaction.atomic
def onboarding_workspace_requeue(*, onboarding_id: int) -> bool:
    """Queue a workspace step that is waiting, retrying, failed or abandoned again; False if not."""
    onboarding = Onboarding.objects.select_for_update().get(id=onboarding_id)
    queued = workspace_step_requeue(onboarding=onboarding, take_over=True)
    if queued:
        activity_record(
            kind=Kind.WORKSPACE,
            summary="Workspace provisioning queued again by reconciliation",
            onboarding=onboarding,
        )
    return queued


def abandoned_work_requeue(*, limit: int = 500) -> int:
    """Scheduled every minute: send work whose worker died back to the queue; returns how many.

    A step or webhook job still "running" past the queue timeout lost its worker (killed, or its
    database connection dropped mid-task, after which django-q does not run the task again). The
    task takes it over. Without this the daily reconciliation was the first to notice.
    """
    cutoff = abandoned_before()
    running = Onboarding.objects.order_by("id").values_list("id", flat=True)
    emails = running.filter(email_status=Step.RUNNING, email_claimed_at__lt=cutoff)[:limit]
    workspaces = running.filter(workspace_status=Step.RUNNING, workspace_claimed_at__lt=cutoff)[:limit]
    requeued = sum(onboarding_email_requeue(onboarding_id=id_) for id_ in emails)
    requeued += sum(onboarding_workspace_requeue(onboarding_id=id_) for id_ in workspaces)
    jobs = StripeWebhookJob.objects.filter(status=JobStatus.RUNNING, updated__lt=cutoff).order_by("id")
    for job_id in jobs.values_list("id", flat=True)[:limit]:
        with transaction.atomic():
            enqueue_transactionally(PROCESS_TASK, job_id)  # webhook_job_run takes over the run
        requeued += 1
    if requeued:
        logger.warning("Requeued %s step(s) or webhook job(s) abandoned by a worker", requeued)
    return requeued


# -- (c) webhook deliveries the worker did not finish ----------------------------------------------


def failed_webhooks_reconcile(*, report: Reconciliation, fix: Fix, now: datetime) -> None:
    """Find webhook jobs failed, overdue, lost or abandoned; with `fix`, send them back to the worker."""
    overdue = now - WEBHOOK_OVERDUE
    failed = Q(status=JobStatus.FAILED)
    late = Q(status=JobStatus.RETRYING) & (Q(next_attempt_at__lt=overdue) | Q(next_attempt_at__isnull=True))
    lost = Q(status=JobStatus.QUEUED, created__lt=overdue, trigger__valid=True, trigger__processed=False)
    abandoned = Q(status=JobStatus.RUNNING, updated__lt=abandoned_before(now))
    jobs = (
        StripeWebhookJob.objects.filter(created__gte=report.since)
        .filter(failed | late | lost | abandoned)
        .order_by("created", "id")
    )
    for job in jobs.iterator():
        ref = f"job {job.id} ({job.event_type} {job.event_id}, trigger {job.trigger_id})"
        finding = report.add(Gap.FAILED_WEBHOOK, ref, webhook_job_detail(job, now=now))
        if fix == Fix.NONE:
            continue
        if job.status == JobStatus.QUEUED:
            # Only a new queue message: the job is still queued, so the worker claims it once.
            enqueue_transactionally(PROCESS_TASK, job.id)
            finding.repaired("queue message sent again")
        elif job.status == JobStatus.RUNNING:
            # webhook_job_run takes over a run older than the queue timeout.
            enqueue_transactionally(PROCESS_TASK, job.id)
            finding.repaired("sent back to the worker, which takes over the abandoned run")
        elif job.status == JobStatus.FAILED and fix != Fix.ALL:
            finding.for_staff("gave up after its retries; reprocess it from the admin or run with --fix")
        elif webhook_job_retry_now(job=job):
            finding.repaired("sent back to the worker now")
        else:
            finding.for_staff("changed meanwhile; see the job")


def webhook_job_detail(job: StripeWebhookJob, *, now: datetime) -> str:
    if job.status == JobStatus.FAILED:
        return f"failed after {job.attempts} attempt(s): {job.last_error}"
    if job.status == JobStatus.RETRYING:
        due = (
            f"due {job.next_attempt_at:%Y-%m-%d %H:%M}" if job.next_attempt_at else "with no retry scheduled"
        )
        return f"retrying, {due} and not run: {job.last_error}"
    if job.status == JobStatus.QUEUED:
        return f"queued since {job.created:%Y-%m-%d %H:%M} and never processed (queue message lost)"
    return f"running since {job.updated:%Y-%m-%d %H:%M}, longer than the queue timeout (worker died)"


# -- (d) lifetime values that drifted from the payments --------------------------------------------


def value_mismatches_reconcile(*, report: Reconciliation, fix: Fix) -> None:
    """Find clients whose invoiced_value is not their ledger net (one query); fix recomputes."""
    mismatched = (
        Client.objects.annotate(paid_total=ledger_net_expression())
        .exclude(invoiced_value=F("paid_total"))
        .order_by("id")
        .values_list("id", "email", "currency", "invoiced_value", "paid_total")
    )
    for client_id, email, currency, invoiced, paid_total in mismatched:
        finding = report.add(
            Gap.VALUE_MISMATCH,
            f"client {client_id} ({email})",
            f"invoiced_value {format_money(invoiced, currency)} but the ledger nets "
            f"{format_money(paid_total, currency)}",
        )
        if fix != Fix.NONE:
            old, new = client_invoiced_value_recompute(client_id=client_id)
            finding.repaired(f"set from {format_money(old, currency)} to {format_money(new, currency)}")


@transaction.atomic
def client_invoiced_value_recompute(*, client_id: int, actor=None) -> tuple[int, int]:
    """Set the client's invoiced_value from the ledger; returns (old, new), on the timeline."""
    # The ledger writes under this lock; holding it, the recompute sees every movement.
    client = client_lock(client_id)
    old = client.invoiced_value
    total = client_value_recompute(client_id=client_id)
    if total != old:
        activity_record(
            kind=Kind.PAYMENT,
            summary=(
                f"Lifetime value corrected from {format_money(old, client.currency)} "
                f"to {format_money(total, client.currency)}"
            ),
            detail="Recomputed from the client's ledger (reconciliation).",
            client=client,
            actor=actor,
        )
    return old, total


# -- (e) money movements Stripe has that the ledger lacks or holds in another state -----------------


def _expected_status(listing: Listing, data: dict) -> str:
    if listing.name == "invoices":
        return PAID if data.get("amount_paid") else NO_PAYMENT_REQUIRED
    return str(data.get("status") or "")


def ledger_movements_reconcile(*, report: Reconciliation, fix: Fix) -> None:
    """Compare Stripe's paid invoices, refunds and disputes of the window (list requests, 100 a page,
    one query a page) with the ledger; with `fix`, record them through the backfill's ledger import
    (the webhook receivers' services). Reported under value mismatches."""
    api_key = stripe_api_key()
    for listing in LISTINGS:
        listed = listing.list_call(
            limit=EVENTS_PAGE,
            created={"gte": int(report.since.timestamp())},
            api_key=api_key,
            stripe_version=djstripe_settings.STRIPE_API_VERSION,
            **listing.params,
        )
        for page in _chunks(listed.auto_paging_iter(), EVENTS_PAGE):
            known = dict(
                MoneyMovement.objects.filter(stripe_id__in=[obj.id for obj in page]).values_list(
                    "stripe_id", "status"
                )
            )
            for obj in page:
                data = stripe_object_json(obj)
                expected, ours = _expected_status(listing, data), known.get(obj.id)
                if ours == expected:
                    continue
                state = "not in the ledger" if ours is None else f"the ledger says {ours!r}"
                amount = format_money(
                    int(data.get("amount_paid") or data.get("amount") or 0), data["currency"]
                )
                finding = report.add(
                    Gap.VALUE_MISMATCH,
                    f"{listing.name.removesuffix('s')} {obj.id}",
                    f"Stripe: {amount} {expected}; {state}",
                )
                if fix == Fix.NONE:
                    continue
                if ledger_object_import(listing, obj, api_key=api_key, dry_run=False):
                    now = (
                        MoneyMovement.objects.filter(stripe_id=obj.id)
                        .values_list("status", flat=True)
                        .first()
                    )
                    finding.repaired(f"recorded from Stripe ({now})")
                else:
                    finding.for_staff("recording it failed (see the logs); runs again next time")


# -- (f) settlements Stripe had not made yet when the movement was recorded ------------------------


def unsettled_movements_reconcile(*, report: Reconciliation, fix: Fix, stale_before: datetime) -> None:
    """Find movements the ledger still shows as "not settled yet" (of any age, untouched since
    `stale_before`: the settle task ran and Stripe had no balance transaction then); with `fix` (a
    read from Stripe, safe to repeat), settle them again. Reported under value mismatches."""
    unsettled = (
        MoneyMovement.objects.filter(settlement_net__isnull=True, updated__lt=stale_before)
        .exclude(kind=MoneyMovement.Kind.CANCELLATION)
        .exclude(kind=MoneyMovement.Kind.PAYMENT, counts=False)
        # Least recently tried first: a row Stripe still has no balance transaction for is touched
        # below, so it goes to the back and cannot hold the newer ones out of the run's batch.
        .order_by("updated", "id")
    )
    for movement in unsettled[:UNSETTLED_PER_RUN]:
        finding = report.add(
            Gap.VALUE_MISMATCH,
            f"settlement {movement.stripe_id}",
            f"{movement.get_kind_display()} of {format_money(movement.amount, movement.currency)} recorded "
            f"{movement.created:%Y-%m-%d %H:%M} has no balance transaction yet",
        )
        if fix == Fix.NONE:
            continue
        try:
            money_movement_settle(movement_id=movement.id)
        except stripe.StripeError as exc:
            logger.warning("Settling movement %s failed: %s", movement.id, exc)
            finding.outcome = f"asking Stripe failed ({type(exc).__name__}); runs again next time"
            continue
        movement.refresh_from_db()
        if movement.settlement_net is None:
            MoneyMovement.objects.filter(id=movement.id).update(updated=timezone.now())
            finding.outcome = "Stripe has no balance transaction for it yet; asked again next run"
        else:
            net = format_money(movement.settlement_net, movement.settlement_currency)
            finding.repaired(f"settled from Stripe's balance transactions: {net} net")


# -- (g) cancellations Stripe made that never reached the ledger ------------------------------------


def cancellations_reconcile(*, report: Reconciliation, fix: Fix) -> None:
    """Find subscriptions Stripe cancelled in the window (its `customer.subscription.deleted` events,
    100 a request) whose cancellation the ledger lacks; with `fix`, record them as the webhook would
    (which offboards the service). Reported under value mismatches."""
    listed = stripe_events_since(types=["customer.subscription.deleted"], since=report.since)
    for page in _chunks(listed, EVENTS_PAGE):
        subscriptions = {event["data"]["object"]["id"]: event["data"]["object"] for event in page}
        known = set(
            MoneyMovement.objects.filter(
                stripe_id__in=[f"{subscription_id}:deleted" for subscription_id in subscriptions]
            ).values_list("subscription_id", flat=True)
        )
        for subscription_id, subscription in subscriptions.items():
            if subscription_id in known:
                continue
            finding = report.add(
                Gap.VALUE_MISMATCH,
                f"subscription {subscription_id}",
                "Stripe: cancelled; not in the ledger (customer.subscription.deleted never processed)",
            )
            if fix == Fix.NONE:
                continue
            try:
                ledger_cancellation_record(subscription=subscription)
            except Exception as exc:  # noqa: BLE001 - one bad row must not end the day's run
                logger.exception("Recording the cancellation of %s failed", subscription_id)
                finding.outcome = f"recording it failed ({type(exc).__name__}); runs again next time"
                continue
            finding.repaired("cancellation recorded from Stripe's event")
