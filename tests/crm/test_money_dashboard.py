"""The admin's front page shows the money as the ledger has it, after real deliveries: revenue net
of refunds and lost disputes per currency, active subscriptions, MRR per currency, churn."""

import re

import pytest

from tests.factories import ServiceFactory
from tests.support.money import deliver_shuffled, undelivered

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("anymail_outbox", "service")]


def row_cells(html: str, row_id: str) -> list[str]:
    row = html[html.index(f'id="{row_id}"') :]
    row = row[: row.index("</tr>")]
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]


def test_dashboard_money_after_subscriptions_refunds_disputes_and_a_cancellation(pipeline, admin_client):
    """Everything happens now (the sandbox's clock), so it is in the 7 and 30 day windows."""
    ServiceFactory(service_id="retainer", name="Monthly retainer")
    sandbox = pipeline.sandbox
    events: list[str] = []

    def checkout(email, **fields):
        result = pipeline.checkout(email=email, name=email.split("@")[0], **fields)
        events.extend(event["id"] for event in result["events"])
        return result["session"]

    checkout("ada@example.com", service_id="retainer", amount=50000, currency="eur", mode="subscription")
    yearly = checkout(
        "dee@example.com", service_id="retainer", amount=120000, currency="eur", mode="subscription",
        interval="year",
    )  # fmt: skip
    events += undelivered(sandbox.cancel_subscription(yearly["subscription"], deliver=False))
    refunded = checkout("bob@example.com", amount=10000, currency="usd")
    events += undelivered(sandbox.refund(refunded["id"], amount=2500, deliver=False))
    lost = checkout("cy@example.com", amount=6000, currency="usd")
    events += undelivered(sandbox.dispute(lost["id"], outcome="lost", deliver=False))
    won = checkout("eve@example.com", amount=3000, currency="usd")
    events += undelivered(sandbox.dispute(won["id"], outcome="won", deliver=False))

    deliver_shuffled(pipeline, events, seed=21)

    html = admin_client.get("/admin/").content.decode()
    # Columns: today, last 7 days, last 30 days, active subscriptions, MRR.
    eur, usd = row_cells(html, "money-eur"), row_cells(html, "money-usd")
    assert eur[1:] == ["€1,700.00", "€1,700.00", "1", "€500.00"]  # the yearly one was cancelled
    assert usd[1:] == ["$105.00", "$105.00", "0", "$0.00"]  # 190 paid − 25 refunded − 60 lost
    churn = row_cells(html, "churn")
    assert churn[1:3] == ["2", "2"]  # dee (cancelled) and cy (lost dispute)
    assert "Active 3 · At risk 0 · Churned 2" in churn[3]
