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
from datetime import datetime

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection, models, transaction
from django.db.models import Case, Value, When
from djstripe.models import Customer, PaymentIntent, PaymentMethod, Session

from crm.models import Activity, Client, MoneyMovement, Onboarding, Payment
from provisioning.models import Workspace
from tests.factories import ServiceFactory
from tests.support.pipeline import run_queued_tasks

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("anymail_outbox"),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the bulk mirror is PostgreSQL's"),
]

T0 = int(datetime(2025, 3, 1).timestamp()) + 3600
MIRROR = (Customer, PaymentMethod, PaymentIntent, Session)
# Set by the clock or by the order rows were made in, not by the history.
CLOCK = {"created", "updated", "djstripe_created", "djstripe_updated", "djstripe_id"}
CLOCK_BY_MODEL = {
    Onboarding: {"paid_at", "onboarded_at", "email_sent_at", "email_claimed_at", "workspace_claimed_at"}
    | {"email_delivery_at", "email_message_id"},  # the test ESP numbers messages in send order
    Client: {"lifecycle_changed_at"},
    Workspace: {"ready_at", "callback_due", "suspended_at", "url", "external_id"},
}
NATURAL_KEYS = {  # a foreign key's target as something both runs share
    "client": "email",
    "ordered_service": "service_id",
    "service": "service_id",
    "onboarding": "checkout_session_id",
    "payment": "checkout_session_id",
    "djstripe_owner_account": "id",
    "user": "username",
}


def rows(model) -> list:
    """Every row of `model`, as comparable tuples sorted, ids replaced by natural keys."""
    names = []
    for field in model._meta.concrete_fields:
        if field.name in CLOCK or field.name in CLOCK_BY_MODEL.get(model, set()) or field.name == "id":
            continue
        if isinstance(field, models.ForeignKey) and field.name not in NATURAL_KEYS:
            names.append(f"{field.name}_id")  # dj-stripe's relations are Stripe ids already
            continue
        names.append(f"{field.name}__{NATURAL_KEYS[field.name]}" if field.is_relation else field.name)
    values = [list(row) for row in model.objects.values_list(*names)]
    if model is Customer:
        # A subscription's customer reaches the webhook path first through its own events
        # (customer.*, invoice.*), synced without `sources` expanded, and an existing customer is
        # not overwritten by the session's sync; the backfill's listing expands `sources`.
        for row in values:
            row[names.index("stripe_data")].pop("sources", None)
    return sorted(json.dumps(row, sort_keys=True, default=str) for row in values)


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


def history(pipeline) -> list[dict]:
    """Checkouts of every kind the backfill meets, created in the sandbox, not delivered."""
    specs = [
        {"email": "paid@example.com", "name": "Paid", "amount": 10000, "currency": "usd"},
        {"email": "delayed@example.com", "name": "Delayed", "amount": 5000, "delayed": "succeeded"},
        {"email": "failed@example.com", "name": "Failed", "amount": 5000, "delayed": "failed"},
        {"email": "swiss@example.com", "name": "Swiss", "amount": 7000, "currency": "chf"},
        {"email": "unknown@example.com", "name": "Unknown", "amount": 1000, "service_id": "no-such"},
        {"email": "return@example.com", "name": "Old Name", "amount": 2500, "service_id": "seo-audit"},
        {"email": "return@example.com", "name": "New Name", "amount": 4000},
        {"email": "sub@example.com", "name": "Sub", "amount": 3000, "mode": "subscription"},
        {"email": "coupon@example.com", "name": "Coupon", "amount": 8000, "percent_off": 25},
    ]
    checkouts = []
    for minute, spec in enumerate(specs, start=1):
        fields = {"service_id": "website-care", "currency": "usd", **spec, "created": T0 + 60 * minute}
        checkouts.append(pipeline.checkout(**fields))
    return checkouts


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
