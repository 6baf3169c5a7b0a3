"""Transaction-scoped locks on a name, for work keyed by a Stripe id rather than by a row."""

from collections.abc import Iterable

from django.db import connection


def lock_name_for_transaction(name: str) -> None:
    """Block until no other transaction holds `name`; released at commit or rollback.

    PostgreSQL's advisory locks serialise work on something that may not have a row yet (a
    Stripe event or Checkout Session being processed by two workers at once). SQLite allows
    one writer at a time anyway, so there is nothing to do there.
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [name])


def lock_names_for_transaction(names: Iterable[str]) -> None:
    """`lock_name_for_transaction` for each name, in one statement, in sorted order (so two callers
    locking overlapping sets cannot each hold a name the other waits for)."""
    ordered = sorted(set(names))
    if connection.vendor != "postgresql" or not ordered:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(name, 0)) "
            "FROM unnest(%s::text[]) WITH ORDINALITY AS t(name, n) ORDER BY n",
            [ordered],
        )
