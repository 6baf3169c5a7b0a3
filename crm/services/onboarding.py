"""Onboarding: a paid Checkout Session becomes a client, a payment, an email and a workspace.

One door, `onboarding_sync_from_session`, keyed by the Checkout Session id. Stripe delivers
events at least once and in any order; each delivery re-reads the session as dj-stripe synced
it from the API, and the onboarding row records what was already decided, so every order and
every repetition ends in the same state.
"""

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from djstripe.models import Session

from core.locks import lock_name_for_transaction, lock_names_for_transaction
from core.queue import enqueue_transactionally
from stripe_events.stripe_json import stripe_id_of

from ..models import Activity, Client, Onboarding, Payment, Service, StaffAlert
from .activity import Kind, activity_record
from .alerts import admin_url, staff_alert_raise
from .ledger import ledger_payment_record

logger = logging.getLogger(__name__)

EMAIL_TASK = "crm.tasks.welcome_email_run"
WORKSPACE_TASK = "crm.tasks.workspace_step_run"
ASYNC_PAYMENT_FAILED = "checkout.session.async_payment_failed"

Status = Onboarding.Status
Held = Onboarding.HeldReason
Step = Onboarding.StepStatus

# A no-cost order (100% coupon, free trial) onboards like a paid one, with value 0.
PAID_STATUSES = {"paid", "no_payment_required"}

# Once decided, later deliveries of the same session change nothing.
DECIDED = {Status.HELD, Status.IN_PROGRESS, Status.ONBOARDED, Status.FAILED, Status.REJECTED}


def normalise_email(email: str | None) -> str:
    """The CRM's form of an email: surrounding spaces removed, lower case."""
    return (email or "").strip().lower()


# Checkout takes longer names than the CRM's columns hold: a name is shown, never matched on, so
# it is kept cut to fit rather than failing the onboarding's INSERT on every retry.
NAME_MAX_LENGTH = min(
    cast(int, Client._meta.get_field("name").max_length),
    cast(int, Onboarding._meta.get_field("customer_name").max_length),
)
EMAIL_MAX_LENGTH = cast(int, Client._meta.get_field("email").max_length)
SERVICE_REF_MAX_LENGTH = cast(int, Onboarding._meta.get_field("service_ref").max_length)


def fitted_name(name: object) -> str:
    """A customer's name as the CRM keeps it: trimmed, and cut to the columns' length."""
    return str(name or "").strip()[:NAME_MAX_LENGTH].strip()


@dataclass(frozen=True)
class SessionFacts:
    """What onboarding needs from a Checkout Session, read from dj-stripe's synced copy."""

    session_id: str
    payment_status: str
    email: str
    name: str
    service_ref: str
    amount: int | None
    currency: str
    livemode: bool
    payment_intent_id: str
    customer_id: str
    created: datetime
    # The session's first invoice (subscription mode): the ledger keys its payment by it.
    invoice_id: str = ""
    subscription_id: str = ""

    @classmethod
    def from_stripe_data(cls, data: dict[str, Any]) -> "SessionFacts":
        """The facts of a session as Stripe returned it (the backfill's listed, expanded data);
        equal to `from_session` of the row dj-stripe mirrors from that data."""
        session = Session(
            id=data["id"],
            stripe_data=data,
            livemode=data.get("livemode"),
            payment_intent_id=stripe_id_of(data.get("payment_intent")) or None,
            customer_id=stripe_id_of(data.get("customer")) or None,
        )
        return cls.from_session(session)

    @classmethod
    def from_session(cls, session: Session) -> "SessionFacts":
        data = session.stripe_data or {}
        details = data.get("customer_details") or {}
        metadata = data.get("metadata") or {}
        return cls(
            session_id=session.id,
            payment_status=data.get("payment_status") or "",
            email=normalise_email(details.get("email") or data.get("customer_email")),
            name=fitted_name(details.get("name")),
            service_ref=str(metadata.get("serviceId") or "").strip(),
            amount=data.get("amount_total"),
            currency=(data.get("currency") or "").lower(),
            livemode=bool(session.livemode),
            payment_intent_id=session.payment_intent_id or "",
            customer_id=session.customer_id or "",
            created=datetime.fromtimestamp(data.get("created") or 0, tz=UTC),
            invoice_id=stripe_id_of(data.get("invoice")),
            subscription_id=stripe_id_of(data.get("subscription")),
        )


@dataclass(frozen=True)
class PageRows:
    """Rows read once for a page of sessions whose locks the caller holds (the backfill's page).

    Every creator of an onboarding or a payment holds its session's lock, so neither can appear
    for these sessions until the caller's transaction ends: a session missing here has none.
    Services are read at the page's start (unlocked reads, as each session's own would be).
    """

    onboardings: dict[str, Onboarding]  # by Checkout Session id
    payments: dict[str, Payment]  # by Checkout Session id
    services: dict[str, Service]  # by service_id

    @classmethod
    def read(cls, *, session_ids: Collection[str], service_refs: Collection[str]) -> "PageRows":
        """Three queries for the page (call with the sessions' locks held)."""
        return cls(
            onboardings={
                o.checkout_session_id: o
                for o in Onboarding.objects.filter(checkout_session_id__in=session_ids)
            },
            payments={
                p.checkout_session_id: p for p in Payment.objects.filter(checkout_session_id__in=session_ids)
            },
            services={s.service_id: s for s in Service.objects.filter(service_id__in=service_refs)},
        )


def onboarding_sync_from_session(
    *,
    session_id: str,
    event_type: str = "",
    event_id: str = "",
    send_welcome_email: bool = True,
    charge: dict[str, Any] | None = None,
) -> Onboarding:
    """Create or advance the onboarding for a Checkout Session; idempotent.

    `event_type` says which Stripe event brought the session (the backfill passes
    ASYNC_PAYMENT_FAILED for a session whose delayed payment failed). `send_welcome_email=False`
    records the email step as SKIPPED (historical clients); staff can send it from the admin.
    `charge` is the payment's latest charge as Stripe returned it with the session (balance
    transaction expanded), when the caller has it: the payment is recorded with its settlement.
    """
    with transaction.atomic():
        onboarding_session_lock(session_id=session_id)
        facts = SessionFacts.from_session(Session.objects.get(id=session_id))
        onboarding, _ = onboarding_sync_locked(
            facts=facts,
            event_type=event_type,
            event_id=event_id,
            send_welcome_email=send_welcome_email,
            charge=charge,
        )
        return onboarding


def onboarding_session_lock(*, session_id: str) -> None:
    """Serialise the work on one session (deliveries of several event types, duplicates, the
    backfill, staff) across workers, until the transaction ends."""
    lock_name_for_transaction(_session_lock_name(session_id))


def onboarding_sessions_lock(*, session_ids: list[str]) -> None:
    """`onboarding_session_lock` for several sessions, in one statement (the backfill's page)."""
    lock_names_for_transaction(_session_lock_name(session_id) for session_id in session_ids)


def _session_lock_name(session_id: str) -> str:
    return f"checkout-session:{session_id}"


def onboarding_sync_locked(
    *,
    facts: SessionFacts,
    event_type: str = "",
    event_id: str = "",
    send_welcome_email: bool = True,
    charge: dict[str, Any] | None = None,
    page: PageRows | None = None,
) -> tuple[Onboarding, str | None]:
    """`onboarding_sync_from_session` from the session's facts, in the caller's transaction, which
    holds `onboarding_session_lock`; returns the onboarding and its status before (None: new).
    `page`: the rows the caller read for this session's page (then they are not read again)."""
    # Every creator of an onboarding holds its session's lock: no race between this read and
    # the insert (so no savepoint around it, as get_or_create would open).
    if page is not None:
        onboarding = page.onboardings.get(facts.session_id)
    else:
        onboarding = Onboarding.objects.filter(checkout_session_id=facts.session_id).first()
    before = None if onboarding is None else onboarding.status
    if onboarding is None:
        onboarding = Onboarding.objects.create(
            checkout_session_id=facts.session_id, **onboarding_defaults(facts)
        )
    if event_id:
        activity_record(kind=Kind.STRIPE, summary=f"Stripe {event_type} ({event_id})", onboarding=onboarding)
    if onboarding.status in DECIDED:
        return onboarding, before
    if facts.payment_status not in PAID_STATUSES:
        return onboarding_record_unpaid(onboarding, facts=facts, event_type=event_type), before
    onboarding = onboarding_start(
        onboarding,
        facts=facts,
        send_welcome_email=send_welcome_email,
        charge=charge,
        # A new onboarding has no timeline lines yet unless an event's was just recorded.
        untimed_lines=before is not None or bool(event_id),
        page=page,
    )
    return onboarding, before


def onboarding_defaults(facts: SessionFacts) -> dict[str, Any]:
    return {
        # As the session said, cut to the columns (too long an email is held, below; too long a
        # service id matches no service and is held as unknown with the whole id in the detail).
        "customer_email": facts.email[:EMAIL_MAX_LENGTH],
        "customer_name": facts.name,
        "service_ref": facts.service_ref[:SERVICE_REF_MAX_LENGTH],
        "amount": facts.amount,
        "currency": facts.currency,
        "livemode": facts.livemode,
        "payment_intent_id": facts.payment_intent_id,
        "stripe_customer_id": facts.customer_id,
    }


def onboarding_record_unpaid(onboarding: Onboarding, *, facts: SessionFacts, event_type: str) -> Onboarding:
    """An unpaid session waits for async_payment_succeeded; a failed one is recorded, not onboarded."""
    if event_type == ASYNC_PAYMENT_FAILED:
        onboarding.status = Status.PAYMENT_FAILED
        onboarding.held_detail = "The delayed payment failed (checkout.session.async_payment_failed)."
        activity_record(kind=Kind.PAYMENT, summary="Delayed payment failed", onboarding=onboarding)
    elif onboarding.status != Status.PAYMENT_FAILED:
        onboarding.status = Status.AWAITING_PAYMENT
    onboarding.save(update_fields=["status", "held_detail", "updated"])
    return onboarding


def hold_reasons(
    facts: SessionFacts, service: Service | None, client: Client | None
) -> list[tuple[str, str]]:
    """Every reason a paid session must wait for staff, as (reason, detail), most basic first."""
    reasons: list[tuple[str, str]] = []
    if facts.livemode != settings.STRIPE_LIVE_MODE:
        mode = "live" if facts.livemode else "test"
        detail = f"A {mode}-mode payment reached an app with STRIPE_LIVE_MODE={settings.STRIPE_LIVE_MODE}."
        reasons.append((Held.LIVEMODE_MISMATCH, detail))
    if facts.currency not in settings.ONBOARDING_CURRENCIES:
        allowed = ", ".join(settings.ONBOARDING_CURRENCIES)
        detail = f"{facts.currency.upper() or 'No currency'} is not in ONBOARDING_CURRENCIES ({allowed})."
        reasons.append((Held.CURRENCY_NOT_ALLOWED, detail))
    if not facts.email:
        reasons.append((Held.EMAIL_MISSING, "The session has no customer email."))
    elif len(facts.email) > EMAIL_MAX_LENGTH:
        detail = f"The customer email is longer than {EMAIL_MAX_LENGTH} characters: {facts.email}"
        reasons.append((Held.EMAIL_MISSING, detail))
    if not facts.service_ref:
        reasons.append((Held.SERVICE_MISSING, "The session has no metadata.serviceId."))
    elif service is None:
        reasons.append((Held.SERVICE_UNKNOWN, f"No service with service_id {facts.service_ref!r}."))
    elif not service.active:
        reasons.append((Held.SERVICE_INACTIVE, f"Service {service.service_id!r} is inactive."))
    # A client may pay in several currencies (the ledger keeps each): no CURRENCY_MISMATCH hold.
    return reasons


def onboarding_start(
    onboarding: Onboarding,
    *,
    facts: SessionFacts,
    accepted: frozenset[str] = frozenset(),
    send_welcome_email: bool = True,
    charge: dict[str, Any] | None = None,
    untimed_lines: bool = True,
    page: PageRows | None = None,
) -> Onboarding:
    """Check a paid session; hold it for review, or record the client and payment and queue the steps.

    `accepted` holds the reasons staff have accepted for this onboarding (see crm.services.staff);
    `send_welcome_email=False` skips the email step (backfill --no-email); `charge` as in
    `onboarding_sync_from_session`; `untimed_lines=False`: the onboarding has no timeline lines
    without a client (created in this transaction, no event recorded), none to attach; `page` as in
    `onboarding_sync_locked`.
    """
    if page is not None:
        service = page.services.get(facts.service_ref)
    else:
        service = Service.objects.filter(service_id=facts.service_ref).first() if facts.service_ref else None
    if facts.email:
        lock_name_for_transaction(f"client-email:{facts.email}")
    client = Client.objects.filter(email=facts.email).first() if facts.email else None

    blocking = [
        (reason, detail) for reason, detail in hold_reasons(facts, service, client) if reason not in accepted
    ]
    if blocking:
        reason, detail = blocking[0]
        newly_held = onboarding.status != Status.HELD
        onboarding.status = Status.HELD
        onboarding.held_reason = reason
        onboarding.held_detail = detail
        onboarding.paid_at = onboarding.paid_at or timezone.now()
        onboarding.save(update_fields=["status", "held_reason", "held_detail", "paid_at", "updated"])
        # Ids and the reason's code only: the detail names the client (it is on the onboarding for staff).
        logger.info("Onboarding %s (%s) held: %s", onboarding.id, onboarding.checkout_session_id, reason)
        activity_record(
            kind=Kind.ONBOARDING,
            summary=f"Held for review: {onboarding.get_held_reason_display()}",
            detail=detail,
            onboarding=onboarding,
            client=client,
        )
        if newly_held:
            onboarding_alert(
                onboarding, kind=StaffAlert.Kind.HELD, what=f"held: {onboarding.get_held_reason_display()}"
            )
        return onboarding

    assert service is not None  # hold_reasons holds a session without a known service
    client = client_upsert(client=client, facts=facts, service=service)
    payment_record(client=client, facts=facts, service=service, charge=charge, page=page)

    onboarding.client = client
    onboarding.service = service
    onboarding.status = Status.IN_PROGRESS
    onboarding.held_reason = ""
    onboarding.paid_at = onboarding.paid_at or timezone.now()
    onboarding.email_status = (
        Step.PENDING if service.send_welcome_email and send_welcome_email else Step.SKIPPED
    )
    onboarding.workspace_status = Step.PENDING if service.provision_workspace else Step.SKIPPED
    if onboarding.email_status == onboarding.workspace_status == Step.SKIPPED:
        onboarding.status = Status.ONBOARDED
        onboarding.onboarded_at = timezone.now()
    onboarding.save()
    if untimed_lines:
        # Lines recorded before the client was known (Stripe events) join the client's timeline.
        Activity.objects.filter(onboarding=onboarding, client__isnull=True).update(client=client)
    activity_record(
        kind=Kind.ONBOARDING, summary=f"Onboarding started for {service.name}", onboarding=onboarding
    )
    if service.send_welcome_email and not send_welcome_email:
        activity_record(
            kind=Kind.EMAIL,
            summary="Welcome email skipped (historical backfill); staff can send it from the admin",
            onboarding=onboarding,
        )
    if onboarding.email_status == Step.PENDING:
        enqueue_transactionally(EMAIL_TASK, onboarding.id, first=True)
    if onboarding.workspace_status == Step.PENDING:
        enqueue_transactionally(WORKSPACE_TASK, onboarding.id, first=True)
    return onboarding


def client_upsert(*, client: Client | None, facts: SessionFacts, service: Service) -> Client:
    """The client for this email, created or updated with the session's name, customer and service.

    An existing client takes these from its newest payment, whichever order sessions arrive in
    (the backfill walks Stripe's history newest first; webhooks can arrive out of order).
    """
    if client is None:
        return Client.objects.create(
            email=facts.email,
            name=facts.name,
            stripe_customer_id=facts.customer_id,
            ordered_service=service,
            currency=facts.currency,
        )
    if client.payments.filter(paid_at__gt=facts.created).exists():
        client.currency = client.currency or facts.currency
        client.save(update_fields=["currency", "updated"])
        return client
    client.name = facts.name or client.name
    client.stripe_customer_id = facts.customer_id or client.stripe_customer_id
    client.ordered_service = service
    client.currency = client.currency or facts.currency
    client.save(update_fields=["name", "stripe_customer_id", "ordered_service", "currency", "updated"])
    return client


def payment_record(
    *,
    client: Client,
    facts: SessionFacts,
    service: Service,
    charge: dict[str, Any] | None = None,
    page: PageRows | None = None,
) -> Payment:
    """Record the session's payment once, and its ledger row (which recomputes the client's value).

    The caller holds the session's lock (`onboarding_session_lock`) and the client's (its email
    lock, and its row: `client_upsert` just wrote it).
    """
    # Payments are only created here, under the session's lock: no race between read and insert.
    if page is not None:
        payment = page.payments.get(facts.session_id)
    else:
        payment = Payment.objects.filter(checkout_session_id=facts.session_id).first()
    if payment is None:
        payment = Payment.objects.create(
            checkout_session_id=facts.session_id,
            client=client,
            service=service,
            payment_intent_id=facts.payment_intent_id,
            stripe_customer_id=facts.customer_id,
            amount=facts.amount or 0,
            currency=facts.currency,
            livemode=facts.livemode,
            paid_at=facts.created,
        )
    # The ledger's row: a subscription-mode session's payment is its first invoice, keyed by it,
    # so the session and that invoice's invoice.paid make one row in either order.
    from_invoice = facts.invoice_id == facts.session_id  # an onboarding from a stand-alone invoice
    ledger_payment_record(
        client=client,
        service=service,
        payment=payment,
        stripe_id=facts.invoice_id or facts.session_id,
        amount=facts.amount or 0,
        currency=facts.currency,
        status=facts.payment_status if facts.payment_status in PAID_STATUSES else "paid",
        occurred_at=facts.created,
        livemode=facts.livemode,
        payment_intent_id=facts.payment_intent_id,
        invoice_id=facts.invoice_id,
        subscription_id=facts.subscription_id,
        checkout_session_id="" if from_invoice else facts.session_id,
        customer_id=facts.customer_id,
        billing_reason="manual" if from_invoice else "",
        charge=charge if facts.payment_intent_id else None,
        client_locked=True,
    )
    return payment


def onboarding_finish_if_done(*, onboarding_id: int) -> str:
    """Mark the onboarding ONBOARDED once both steps are done (or FAILED if one gave up)."""
    finished = {Step.DONE, Step.SKIPPED}
    onboarding = Onboarding.objects.select_related("client").get(id=onboarding_id)
    if onboarding.status not in (Status.IN_PROGRESS, Status.FAILED):
        return onboarding.status
    steps = {onboarding.email_status, onboarding.workspace_status}
    if steps <= finished:
        # FAILED is included: a step that staff retried successfully completes the onboarding.
        if Onboarding.objects.filter(id=onboarding_id, status__in=[Status.IN_PROGRESS, Status.FAILED]).update(
            status=Status.ONBOARDED, onboarded_at=timezone.now(), updated=timezone.now()
        ):
            activity_record(kind=Kind.ONBOARDING, summary="Onboarded", onboarding=onboarding)
            # -- lifecycle: a workspace provisioned after its service ended is suspended (crm/lifecycle.py)
            if onboarding.client is not None:
                from .lifecycle import client_workspaces_check  # lifecycle imports this module

                client_workspaces_check(client=onboarding.client)
        return Status.ONBOARDED
    if Step.FAILED in steps:
        if Onboarding.objects.filter(id=onboarding_id, status=Status.IN_PROGRESS).update(
            status=Status.FAILED, updated=timezone.now()
        ):
            activity_record(
                kind=Kind.ONBOARDING, summary="Onboarding failed: a step gave up", onboarding=onboarding
            )
            onboarding_alert(onboarding, kind=StaffAlert.Kind.STEP_FAILED, what="failed: a step gave up")
        return Status.FAILED
    return onboarding.status


def onboarding_alert(onboarding: Onboarding, *, kind: str, what: str) -> None:
    """Tell staff (crm.services.alerts), linked to the page that fixes it; ids only, no PII."""
    page = (
        "admin:crm_heldonboarding_change" if kind == StaffAlert.Kind.HELD else "admin:crm_onboarding_change"
    )
    staff_alert_raise(
        kind=kind,
        summary=f"Onboarding {onboarding.id} ({onboarding.checkout_session_id}) {what}",
        url=admin_url(page, onboarding.id),
    )
