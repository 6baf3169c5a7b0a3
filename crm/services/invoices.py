"""Invoices into the CRM: every paid invoice is a payment in the ledger, a failed one puts the client
at risk, and a paid stand-alone invoice (not from a subscription) for a customer we do not know
onboards like a checkout: an Onboarding keyed by the invoice id (`source` invoice), the same checks
and held reasons, the service from the invoice's `metadata.serviceId`.

Read from the event's JSON (the pinned dahlia shape: the subscription under
`parent.subscription_details`, no `charge` or `payment_intent` on the invoice; the settle task
finds the payment through the invoice's payments). A renewal (`subscription_cycle`) adds to the
value and the timeline; it never onboards or emails.
"""

from datetime import datetime
from typing import Any

from django.db import transaction
from djstripe.models import Invoice, Session

from core.locks import lock_name_for_transaction

from ..models import Client, Onboarding, Service
from .activity import Kind, activity_record
from .ledger import NO_PAYMENT_REQUIRED, PAID, PAYMENT_FAILED, from_timestamp, ledger_payment_record
from .onboarding import (
    DECIDED,
    SessionFacts,
    fitted_name,
    normalise_email,
    onboarding_defaults,
    onboarding_start,
)


def invoice_subscription_id(invoice: dict[str, Any]) -> str:
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    subscription = details.get("subscription") or invoice.get("subscription") or ""
    return subscription.get("id", "") if isinstance(subscription, dict) else subscription


def invoice_service_ref(invoice: dict[str, Any]) -> str:
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    ref = (invoice.get("metadata") or {}).get("serviceId") or (details.get("metadata") or {}).get("serviceId")
    return str(ref or "").strip()


def invoice_period_days(invoice: dict[str, Any]) -> int | None:
    """The billing period of a subscription invoice's first line, in days (None: not given)."""
    lines = (invoice.get("lines") or {}).get("data") or []
    period = (lines[0].get("period") or {}) if lines and isinstance(lines[0], dict) else {}
    start, end = period.get("start"), period.get("end")
    if not start or not end or end <= start:
        return None
    return round((int(end) - int(start)) / 86400)


def invoice_paid_at(invoice: dict[str, Any]) -> datetime:
    paid_at = (invoice.get("status_transitions") or {}).get("paid_at")
    return from_timestamp(paid_at or invoice.get("created"))


def facts_from_invoice(invoice: dict[str, Any]) -> SessionFacts:
    """What onboarding needs, from a paid stand-alone invoice (its id stands for the session's)."""
    return SessionFacts(
        session_id=invoice["id"],
        payment_status=PAID if invoice.get("status") == "paid" else invoice.get("status") or "",
        email=normalise_email(invoice.get("customer_email")),
        name=fitted_name(invoice.get("customer_name")),
        service_ref=invoice_service_ref(invoice),
        amount=invoice.get("amount_paid"),
        currency=(invoice.get("currency") or "").lower(),
        livemode=bool(invoice.get("livemode")),
        payment_intent_id="",
        customer_id=str(invoice["customer"]) if isinstance(invoice.get("customer"), str) else "",
        created=invoice_paid_at(invoice),
        invoice_id=invoice["id"],
    )


def onboarding_facts_load(onboarding: Onboarding) -> SessionFacts:
    """The facts an onboarding was decided on, from dj-stripe's mirror (session or invoice)."""
    if onboarding.source == Onboarding.Source.INVOICE:
        return facts_from_invoice(Invoice.objects.get(id=onboarding.checkout_session_id).stripe_data)
    return SessionFacts.from_session(Session.objects.get(id=onboarding.checkout_session_id))


def _client_for(invoice: dict[str, Any]) -> Client | None:
    email = normalise_email(invoice.get("customer_email"))
    client = Client.objects.filter(email=email).first() if email else None
    customer = invoice.get("customer")
    if client is None and isinstance(customer, str) and customer:
        client = Client.objects.filter(stripe_customer_id=customer).first()
    return client


def invoice_event_record(*, invoice: dict[str, Any], event_type: str, event_id: str = "") -> None:
    """`invoice.paid` / `invoice.payment_failed`: a payment in the ledger, or an onboarding."""
    paid = event_type == "invoice.paid" or invoice.get("status") == "paid"
    subscription_id = invoice_subscription_id(invoice)
    if not subscription_id and paid:
        onboarding_exists = Onboarding.objects.filter(checkout_session_id=invoice["id"]).exists()
        if onboarding_exists or _client_for(invoice) is None:
            onboarding_sync_from_invoice(invoice=invoice, event_type=event_type, event_id=event_id)
            return
    with transaction.atomic():
        email = normalise_email(invoice.get("customer_email"))
        if email:
            lock_name_for_transaction(f"client-email:{email}")
        client = _client_for(invoice)
        if client is None and not subscription_id:
            return  # a failed stand-alone invoice of someone we do not know: nothing to record
        ref = invoice_service_ref(invoice)
        amount = invoice.get("amount_paid") if paid else invoice.get("amount_due")
        status = (NO_PAYMENT_REQUIRED if not amount else PAID) if paid else PAYMENT_FAILED
        customer = invoice.get("customer")
        ledger_payment_record(
            client=client,
            service=Service.objects.filter(service_id=ref).first() if ref else None,
            stripe_id=invoice["id"],
            amount=int(amount or 0),
            currency=invoice.get("currency") or "",
            status=status,
            occurred_at=invoice_paid_at(invoice),
            livemode=bool(invoice.get("livemode")),
            invoice_id=invoice["id"],
            subscription_id=subscription_id,
            customer_id=customer if isinstance(customer, str) else "",
            billing_reason=invoice.get("billing_reason") or "",
            period_days=invoice_period_days(invoice) if subscription_id else None,
        )
        if client is not None and event_id:
            activity_record(kind=Kind.STRIPE, summary=f"Stripe {event_type} ({event_id})", client=client)


def onboarding_sync_from_invoice(
    *, invoice: dict[str, Any], event_type: str = "", event_id: str = ""
) -> Onboarding:
    """Create or advance the onboarding of a paid stand-alone invoice; idempotent (like a session's)."""
    with transaction.atomic():
        lock_name_for_transaction(f"checkout-session:{invoice['id']}")
        facts = facts_from_invoice(invoice)
        onboarding, _ = Onboarding.objects.get_or_create(
            checkout_session_id=invoice["id"],
            defaults={**onboarding_defaults(facts), "source": Onboarding.Source.INVOICE},
        )
        if event_id:
            activity_record(
                kind=Kind.STRIPE, summary=f"Stripe {event_type} ({event_id})", onboarding=onboarding
            )
        if onboarding.status in DECIDED:
            return onboarding
        return onboarding_start(onboarding, facts=facts)
