"""Reads for the staff cockpit's client page: the timeline and the links to Stripe."""

from dataclasses import dataclass
from datetime import datetime

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import Q, QuerySet
from django.urls import reverse
from djstripe.models import Customer, PaymentIntent, Session

from provisioning.models import Workspace

from ..models import Activity, Client, Onboarding, Payment

STRIPE_DASHBOARD = "https://dashboard.stripe.com/"
STAFF_EDIT_VERBS = {ADDITION: "Added", CHANGE: "Changed", DELETION: "Deleted"}


@dataclass(frozen=True)
class TimelineEntry:
    when: datetime
    kind: str
    summary: str
    detail: str = ""
    actor: str = ""


def client_timeline(client: Client) -> list[TimelineEntry]:
    """Everything that happened to a client, oldest first: pipeline activity and staff edits."""
    entries = [
        TimelineEntry(
            when=activity.created,
            kind=activity.get_kind_display(),
            summary=activity.summary,
            detail=activity.detail,
            actor=activity.actor.get_username() if activity.actor else "",
        )
        for activity in Activity.objects.filter(client=client).select_related("actor")
    ]
    entries += [
        TimelineEntry(
            when=entry.action_time,
            kind="Staff edit",
            summary=f"{STAFF_EDIT_VERBS[entry.action_flag]} {model_name(entry)} “{entry.object_repr}”",
            detail=entry.get_change_message(),
            actor=entry.user.get_username(),
        )
        for entry in staff_edits_for(client)
    ]
    return sorted(entries, key=lambda entry: entry.when)


def staff_edits_for(client: Client) -> QuerySet[LogEntry]:
    """Admin log entries for the client and the records hanging off it."""
    related = {
        Client: [client.pk],
        Onboarding: list(client.onboardings.values_list("pk", flat=True)),
        Payment: list(client.payments.values_list("pk", flat=True)),
        Workspace: list(client.workspaces.values_list("pk", flat=True)),
    }
    types = ContentType.objects.get_for_models(*related)
    condition = Q(pk__in=[])
    for model, pks in related.items():
        if pks:
            condition |= Q(content_type=types[model], object_id__in=[str(pk) for pk in pks])
    return LogEntry.objects.filter(condition).select_related("user", "content_type")


def stripe_dashboard_url(path: str, *, livemode: bool) -> str:
    """A Stripe dashboard page, in the test-mode area unless live."""
    return f"{STRIPE_DASHBOARD}{'' if livemode else 'test/'}{path}"


def client_stripe_links(client: Client) -> list[tuple[str, str, str]]:
    """(label, Stripe dashboard URL or "", mirror admin URL or "") for the client's Stripe objects."""
    payments = list(client.payments.order_by("paid_at"))
    livemode = any(payment.livemode for payment in payments)
    mirrors = {
        (model, obj_id): pk
        for model in (Customer, PaymentIntent, Session)
        for obj_id, pk in model.objects.filter(
            id__in=[client.stripe_customer_id]
            + [p.payment_intent_id for p in payments]
            + [p.checkout_session_id for p in payments]
        ).values_list("id", "djstripe_id")
    }

    def mirror(model, obj_id: str) -> str:
        pk = mirrors.get((model, obj_id))
        meta = model._meta
        return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[pk]) if pk else ""

    links = []
    if client.stripe_customer_id:
        links.append(
            (
                f"Customer {client.stripe_customer_id}",
                stripe_dashboard_url(f"customers/{client.stripe_customer_id}", livemode=livemode),
                mirror(Customer, client.stripe_customer_id),
            )
        )
    for payment in payments:
        if payment.payment_intent_id:
            links.append(
                (
                    f"Payment {payment.payment_intent_id}",
                    stripe_dashboard_url(f"payments/{payment.payment_intent_id}", livemode=payment.livemode),
                    mirror(PaymentIntent, payment.payment_intent_id),
                )
            )
        # The Stripe dashboard shows sessions on their payment's page; the mirror has its own.
        links.append(
            (
                f"Checkout Session {payment.checkout_session_id}",
                "",
                mirror(Session, payment.checkout_session_id),
            )
        )
    return links


def model_name(entry: LogEntry) -> str:
    """The verbose name of what a staff edit changed ("" if its content type was deleted)."""
    return entry.content_type.name if entry.content_type else ""
