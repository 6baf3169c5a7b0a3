"""Reads of the ledger (crm.MoneyMovement): a client's money per currency and what was settled."""

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from ..models import Client, MoneyMovement

Kind = MoneyMovement.Kind


def client_movements(*, client: Client) -> QuerySet[MoneyMovement]:
    """The client's ledger, oldest first (payments, refunds, disputes, cancellations)."""
    return MoneyMovement.objects.filter(client=client).select_related("service").order_by("occurred_at", "id")


def client_money_by_currency(*, client: Client) -> dict[str, dict[str, int]]:
    """{currency: {"paid", "refunded", "disputed", "net"}} in minor units, counted movements only.

    A currency appears once the client has a counted payment in it (a no-cost order adds it with 0).
    """
    rows = (
        MoneyMovement.objects.filter(client=client, counts=True)
        .values("currency", "kind")
        .annotate(total=Coalesce(Sum("amount"), 0))
        .order_by("currency", "kind")
    )
    names: dict[str, str] = {Kind.PAYMENT: "paid", Kind.REFUND: "refunded", Kind.DISPUTE: "disputed"}
    result: dict[str, dict[str, int]] = {}
    for row in rows:
        entry = result.setdefault(row["currency"], {"paid": 0, "refunded": 0, "disputed": 0, "net": 0})
        entry[names[row["kind"]]] += row["total"]
    for entry in result.values():
        entry["net"] = entry["paid"] - entry["refunded"] - entry["disputed"]
    return result


@dataclass(frozen=True)
class SettlementTotal:
    """What Stripe's balance transactions say the agency received for a client (exact FX)."""

    currencies: tuple[str, ...]  # settlement currencies seen (one, for one Stripe account)
    amount: int
    fee: int
    net: int
    transactions: int
    unknown: int  # movements whose balance transactions are not available yet (not in the sums)


def client_settlement_total(*, client: Client) -> SettlementTotal:
    """Sums of the known settlements of the client's movements, and how many are not known yet."""
    movements = MoneyMovement.objects.filter(client=client).exclude(kind=Kind.CANCELLATION)
    known = Q(settlement_net__isnull=False)
    totals = movements.aggregate(
        amount=Coalesce(Sum("settlement_amount", filter=known), 0),
        fee=Coalesce(Sum("settlement_fee", filter=known), 0),
        net=Coalesce(Sum("settlement_net", filter=known), 0),
        transactions=Coalesce(Sum("settlement_transactions", filter=known), 0),
        unknown=Count("id", filter=~known & ~Q(kind=Kind.PAYMENT, counts=False)),
    )
    currencies = tuple(
        sorted(
            set(
                movements.filter(known)
                .exclude(settlement_currency="")
                .values_list("settlement_currency", flat=True)
            )
        )
    )
    return SettlementTotal(currencies=currencies, **totals)
