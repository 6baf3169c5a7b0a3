"""The dashboard's money figures, read from the rollups (crm/rollups.py), never from the ledger itself.

Per currency: revenue net of succeeded refunds and lost disputes per window, active subscriptions
and MRR; churn (clients churned now whose status became churned in the window) and the clients per
lifecycle status. A fixed, small number of queries on small tables, whatever the ledger's size.

The money windows are whole UTC days: "today", the last 7 days (today and the 6 before) and the
last 30; the rollups count per day.
"""

from dataclasses import dataclass
from datetime import date, timedelta

from django.db import connection
from django.db.models import Count, Sum

from ..models import ChurnDayRollup, ClientStatusCount, LedgerDayRollup, SubscriptionMrr, SubscriptionMrrTotal
from ..rollups import money_rollups_recount

WINDOW_DAYS = (("today", 1), ("last_7_days", 7), ("last_30_days", 30))


@dataclass(frozen=True)
class CurrencyRevenue:
    """One currency: per window (key as in WINDOW_DAYS) paid, refunded, lost to disputes, net."""

    currency: str
    paid: dict[str, int]
    refunded: dict[str, int]
    disputed: dict[str, int]
    active_subscriptions: int
    mrr: int

    @property
    def net(self) -> dict[str, int]:
        return {key: self.paid[key] - self.refunded[key] - self.disputed[key] for key in self.paid}


@dataclass(frozen=True)
class MoneyFigures:
    currencies: list[CurrencyRevenue]
    churn: dict[str, int]
    statuses: dict[str, int]


def _ledger_cells(since: date) -> list[tuple[date, str, int, int, int, int, int]]:
    """(day, currency, service, paid, refunded, disputed, payments) from `since` on; a cell can come
    in several rows (the rollup's shards): callers add them up."""
    if connection.vendor != "postgresql":  # no triggers: recount
        return [
            (day, currency, service, *cell)
            for (day, currency, service), cell in money_rollups_recount()["ledger"].items()
            if day >= since
        ]
    return list(
        LedgerDayRollup.objects.filter(day__gte=since).values_list(
            "day", "currency", "service_key", "paid", "refunded", "disputed", "payments"
        )
    )


def money_figures(*, today: date, cells: list | None = None) -> MoneyFigures:
    """`cells`: `_ledger_cells` from at least 30 days before `today`, if the caller has them."""
    starts = {key: today - timedelta(days=days - 1) for key, days in WINDOW_DAYS}
    sums: dict[str, dict[str, list[int]]] = {}
    if cells is None:
        cells = _ledger_cells(min(starts.values()))
    for day, currency, _service, paid, refunded, disputed, _n in cells:
        for key, start in starts.items():
            if start <= day <= today:
                cell = sums.setdefault(currency, {}).setdefault(key, [0, 0, 0])
                cell[0] += paid
                cell[1] += refunded
                cell[2] += disputed
    if connection.vendor != "postgresql":  # no trigger keeps the totals: sum the subscriptions
        active = SubscriptionMrr.objects.filter(active=True).values("currency").order_by()
        rows = list(active.annotate(n=Count("id"), mrr=Sum("monthly_amount")))
    else:
        totals = SubscriptionMrrTotal.objects.values("currency").order_by()
        rows = list(totals.annotate(n=Sum("subscriptions"), mrr=Sum("mrr")))
    subscriptions = {row["currency"]: row for row in rows if row["n"] or row["mrr"]}
    currencies = []
    for currency in sorted(set(sums) | set(subscriptions)):
        windows = {key: sums.get(currency, {}).get(key, [0, 0, 0]) for key, _ in WINDOW_DAYS}
        sub = subscriptions.get(currency) or {"n": 0, "mrr": 0}
        currencies.append(
            CurrencyRevenue(
                currency=currency,
                paid={key: cell[0] for key, cell in windows.items()},
                refunded={key: cell[1] for key, cell in windows.items()},
                disputed={key: cell[2] for key, cell in windows.items()},
                active_subscriptions=sub["n"],
                mrr=sub["mrr"] or 0,
            )
        )
    # The busiest currency (most paid in the last 30 days) first.
    currencies.sort(key=lambda c: (-c.paid["last_30_days"], -c.mrr, c.currency))
    if connection.vendor != "postgresql":
        counted = money_rollups_recount()
        churn_days, statuses = counted["churn"], counted["statuses"]
    else:
        churn_days = dict(
            ChurnDayRollup.objects.filter(day__gte=min(starts.values())).values_list("day", "churned")
        )
        statuses = dict(
            ClientStatusCount.objects.values("status").annotate(n=Sum("clients")).values_list("status", "n")
        )
    churn = {
        key: sum(n for day, n in churn_days.items() if start <= day <= today) for key, start in starts.items()
    }
    return MoneyFigures(currencies=currencies, churn=churn, statuses=statuses)
