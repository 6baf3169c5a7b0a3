"""Helpers for the money tests: build a history in the sandbox undelivered, deliver it twice and
shuffled through the real signed webhook endpoint, run the worker, compare with the sandbox's ledger."""

import random

from crm.models import Client
from crm.selectors.ledger import client_money_by_currency, client_settlement_total
from stripe_events.models import StripeWebhookJob
from tests.support.pipeline import run_queued_tasks

T0 = 1_767_225_600  # 2026-01-01 00:00 UTC
DAY = 86_400


def undelivered(result: dict) -> list[str]:
    return list(result["events"])


def deliver_shuffled(pipeline, event_ids: list[str], *, seed: int = 0, times: int = 2) -> None:
    """Deliver every event `times` times in a shuffled order, then let the worker run everything."""
    events = [pipeline.sandbox.store.get("event", event_id) for event_id in event_ids] * times
    random.Random(seed).shuffle(events)
    for event in events:
        assert pipeline.deliver(event).status_code == 200
    work_all()
    failed = StripeWebhookJob.objects.exclude(status=StripeWebhookJob.Status.SUCCEEDED)
    assert not failed.exists(), list(failed.values_list("event_type", "last_error"))


def crm_money(email: str) -> dict:
    """The CRM's view of a client, in the sandbox ledger's shape."""
    client = Client.objects.get(email=email)
    settlement = client_settlement_total(client=client)
    return {
        "currencies": client_money_by_currency(client=client),
        "first_currency": client.currency,
        "invoiced_value": client.invoiced_value,
        "settlement": {
            "amount": settlement.amount,
            "fee": settlement.fee,
            "net": settlement.net,
            "transactions": settlement.transactions,
            "unknown": settlement.unknown,
        },
    }


def sandbox_money(sandbox, email: str) -> dict:
    truth = sandbox.ledger()["customers"][email]
    settlement = truth["settlement"]
    return {
        "currencies": truth["currencies"],
        "first_currency": truth["first_currency"],
        "invoiced_value": truth["invoiced_value"],
        "settlement": {
            **{key: settlement[key] for key in ("amount", "fee", "net", "transactions")},
            "unknown": 0,
        },
    }


def assert_matches_sandbox(sandbox) -> None:
    """Every customer in the sandbox's ledger is a client whose money is the same."""
    truth = sandbox.ledger()["customers"]
    assert truth
    for email in truth:
        assert crm_money(email) == sandbox_money(sandbox, email), email


def work_all() -> int:
    """The worker until the queue is empty (the ORM broker hands out one task at a time)."""
    return run_queued_tasks(max_rounds=5000)
