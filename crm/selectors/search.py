"""Index-friendly searches for the admin: Stripe ids exact, email prefix, name."""

from django.db.models import OuterRef, Q, QuerySet, Subquery

from ..models import Client, Onboarding, Payment

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
