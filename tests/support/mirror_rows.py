"""The mirror's and the CRM's rows as comparable values, and a Stripe history of every kind of
checkout: for tests that compare two ways of reaching the same state (backfill vs webhooks, the
session mirror vs dj-stripe's own sync)."""

import json
from datetime import UTC, datetime

from django.db import models
from djstripe.models import Customer, PaymentIntent, PaymentMethod, Session

from crm.models import Client, Onboarding
from provisioning.models import Workspace

T0 = int(datetime(2025, 3, 1, 1, tzinfo=UTC).timestamp())  # an hour into the test window
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
