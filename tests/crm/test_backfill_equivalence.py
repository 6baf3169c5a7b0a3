"""The backfill ends where webhook processing ends: the same mirror rows and the same CRM.

The same Stripe history (the sandbox's) is worked twice from an empty database: once by signed
webhooks into the real endpoint and the real worker code, once by `backfill_onboarding`; the rows
each leaves are compared field by field (ids and clock times aside). On PostgreSQL, where the
backfill's bulk mirror runs its INSERT ... ON CONFLICT statements.
"""

import io
import json
import re
from collections import Counter

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection, models, transaction
from django.db.models import Case, Value, When
from djstripe.models import Session

from crm.models import Activity, Client, MoneyMovement, Onboarding, Payment
from provisioning.models import Workspace
from tests.factories import ServiceFactory
from tests.support.mirror_rows import MIRROR, history, rows
from tests.support.pipeline import run_queued_tasks

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("anymail_outbox"),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the bulk mirror is PostgreSQL's"),
]


def end_state() -> dict:
    state = {model.__name__: rows(model) for model in (*MIRROR, Client, Onboarding, Payment, MoneyMovement)}
    state["Workspace"] = rows(Workspace)
    # The webhook path adds a line per Stripe event ("Stripe checkout.session.completed (evt_…)");
    # the backfill has no events. Every other line is the same.
    # A welcome email's subject names the client as it is when the worker sends it: a returning
    # client's first email goes out before its newer session renames it when webhooks arrive
    # over time, after it when the backfill onboards the history first. Workspace ids differ.
    state["Activity"] = Counter(
        (kind, re.sub(r"/workspaces/\d+/", "/workspaces/<id>/", summary), *rest)
        for kind, summary, *rest in Activity.objects.exclude(kind="stripe").values_list(
            "kind",
            "summary",
            Case(When(kind="email", then=Value("")), default="detail", output_field=models.TextField()),
            "client__email",
            "onboarding__checkout_session_id",
        )
    )
    state["emails"] = sorted(message.to[0] for message in mail.outbox)
    return state


def test_backfill_leaves_the_mirror_and_crm_that_webhook_processing_leaves(sandbox, pipeline):
    ServiceFactory(service_id="website-care", name="Website Care Plan")
    ServiceFactory(service_id="seo-audit", name="SEO Audit")
    checkouts = history(pipeline)

    with transaction.atomic():
        for checkout in checkouts:
            for event in checkout["events"]:
                assert pipeline.deliver(event).status_code == 200
        pipeline.work()
        by_webhooks = end_state()
        transaction.set_rollback(True)
    mail.outbox.clear()
    assert not Onboarding.objects.exists() and not Session.objects.exists()

    out = io.StringIO()
    call_command(
        "backfill_onboarding", "--since", "2025-03-01", "--until", "2025-04-01", "--json", stdout=out
    )
    run_queued_tasks()
    by_backfill = end_state()

    summary = json.loads(out.getvalue())
    assert summary["counts"]["seen"] == len(checkouts) and summary["counts"]["failed"] == 0
    assert len(by_backfill["Session"]) == len(checkouts)
    assert by_backfill["MoneyMovement"], "the ledger has rows"
    for key in by_webhooks:
        if by_backfill[key] != by_webhooks[key]:
            _print_differences(by_backfill[key], by_webhooks[key])
        assert by_backfill[key] == by_webhooks[key], key


def _print_differences(backfill, webhooks):
    """Print what differs, row by row and field by field (pytest shows it with the failure)."""
    if isinstance(backfill, Counter):
        print("only after the backfill:", backfill - webhooks, "only after webhooks:", webhooks - backfill)
        return
    for backfill_rows, webhook_rows in zip(backfill, webhooks, strict=False):
        if backfill_rows == webhook_rows:
            continue
        for index, (row, other) in enumerate(
            zip(json.loads(backfill_rows), json.loads(webhook_rows), strict=False)
        ):
            if row == other:
                continue
            if not isinstance(row, dict):
                print("row", index, "backfill:", row, "webhooks:", other)
                continue
            for field in sorted(set(row) | set(other)):
                if row.get(field) != other.get(field):
                    print("row", index, field, "backfill:", row.get(field), "webhooks:", other.get(field))
