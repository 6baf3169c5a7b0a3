"""Reads for the staff cockpit: a client's timeline, Stripe links, index-friendly searches."""

from dataclasses import dataclass
from datetime import datetime

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.urls import reverse
from djstripe.models import Customer, PaymentIntent, Session

from provisioning.models import Workspace

from .models import Activity, Client, Onboarding, Payment

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
            summary=f"{STAFF_EDIT_VERBS[entry.action_flag]} {entry.content_type.name} “{entry.object_repr}”",
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


STRIPE_ID_PREFIXES = ("cus_", "cs_", "pi_", "ch_")
# payment_search looks up at most this many clients by email prefix before reading payments.
PAYMENT_SEARCH_CLIENT_LIMIT = 1000


def client_ids_matching(term: str) -> QuerySet | None:
    """Client ids for a Stripe id (exact, indexed lookups), or None if the term is not one."""
    term = term.strip()
    if not term.startswith(STRIPE_ID_PREFIXES):
        return None
    if term.startswith("cus_"):
        return Client.objects.filter(stripe_customer_id=term).values("id")
    if term.startswith("cs_"):
        return Onboarding.objects.filter(checkout_session_id=term, client__isnull=False).values("client_id")
    return Payment.objects.filter(payment_intent_id=term).values("client_id")


def client_search(queryset: QuerySet[Client], term: str) -> QuerySet[Client]:
    """Search clients by a Stripe id, an email (prefix) or a name (substring), using indexes."""
    term = term.strip()
    stripe_match = client_ids_matching(term)
    if stripe_match is not None:
        return queryset.filter(id__in=stripe_match)
    if "@" in term:
        return queryset.filter(email__startswith=term.lower())
    return queryset.filter(Q(name__icontains=term) | Q(email__startswith=term.lower()))


def stripe_id_filter(term: str) -> Q | None:
    """Exact match on the column a Stripe id of this kind lives in, or None if it is not one.

    Stripe ids are case-sensitive, so exact (indexed) lookups, not the admin's `=` (iexact,
    UPPER(column) = UPPER(term), which no plain index serves).
    """
    if term.startswith("cus_"):
        return Q(stripe_customer_id=term)
    if term.startswith("cs_"):
        return Q(checkout_session_id=term)
    if term.startswith("pi_"):
        return Q(payment_intent_id=term)
    return None


def onboarding_search(queryset: QuerySet[Onboarding], term: str) -> QuerySet[Onboarding]:
    """Onboardings by a Stripe id (exact) or the start of the customer's email, using indexes."""
    term = term.strip()
    stripe_match = stripe_id_filter(term)
    if stripe_match is not None:
        return queryset.filter(stripe_match)
    # customer_email is stored normalised (lower case), so a case-sensitive prefix match on the
    # lower-cased term finds the same rows as istartswith, and can use a pattern-ops index.
    return queryset.filter(customer_email__startswith=term.lower())


def payment_search(queryset: QuerySet[Payment], term: str) -> QuerySet[Payment]:
    """Payments by a Stripe id (exact) or the start of the client's email, using indexes."""
    term = term.strip()
    stripe_match = stripe_id_filter(term)
    if stripe_match is not None:
        return queryset.filter(stripe_match)
    prefix = term.lower()
    clients = Client.objects.filter(email__startswith=prefix).order_by().values_list("id", flat=True)
    client_ids = list(clients[: PAYMENT_SEARCH_CLIENT_LIMIT + 1])
    if len(client_ids) <= PAYMENT_SEARCH_CLIENT_LIMIT:
        # A short, known list: PostgreSQL reads those clients' payments by the client index and
        # sorts them. With the join instead, an over-estimate of the matching clients led it to
        # walk all 300,000 payments newest first looking for 100 matches (1 s, bench/admin_scale.py).
        return queryset.filter(client_id__in=client_ids)
    return queryset.filter(client__email__startswith=prefix)


def onboardings_latest(clients: QuerySet[Client]) -> QuerySet[Onboarding]:
    """Each of the clients' most recent onboarding, in one query."""
    latest = Onboarding.objects.filter(client=OuterRef("pk")).order_by("-created").values("id")[:1]
    return Onboarding.objects.filter(id__in=clients.annotate(latest_id=Subquery(latest)).values("latest_id"))
