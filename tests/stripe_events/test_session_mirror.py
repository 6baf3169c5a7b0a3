"""The session mirror (the backfill's pages, the worker's single session) writes the rows that
dj-stripe's own sync writes for the same Stripe data, object by object.

The same expanded sessions, retrieved from the sandbox as the worker retrieves them, are mirrored
twice from an empty mirror: once through dj-stripe's `sync_from_stripe_data` for each object,
innermost first (what the worker did before it used the page mirror), once through
`checkout_sessions_mirror` a session at a time; the rows are compared field by field.
"""

import pytest
import stripe
from django.db import connection, transaction
from djstripe.models import Customer, PaymentIntent, PaymentMethod, Session
from djstripe.settings import djstripe_settings

from stripe_events.session_mirror import checkout_sessions_mirror
from stripe_events.session_sync import EXPAND
from stripe_events.stripe_client import stripe_api_key
from stripe_events.stripe_json import stripe_object_json
from tests.support.mirror_rows import MIRROR, history, rows

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the bulk mirror is PostgreSQL's"),
]


def _id(value):
    return value.get("id") if isinstance(value, dict) else value


def dj_stripe_sync(data: dict, api_key: str) -> None:
    """dj-stripe's own sync of an expanded session: customer, method, intent, then the session,
    each only created when not mirrored yet (the session itself is always synced)."""
    customer, intent = data.get("customer"), data.get("payment_intent")
    if isinstance(customer, dict) and not Customer.objects.filter(id=customer["id"]).exists():
        Customer.sync_from_stripe_data(customer, api_key=api_key)
    if isinstance(intent, dict) and not PaymentIntent.objects.filter(id=intent["id"]).exists():
        method = intent.get("payment_method")
        if isinstance(method, dict) and not PaymentMethod.objects.filter(id=method["id"]).exists():
            PaymentMethod.sync_from_stripe_data(method, api_key=api_key)
        flat_intent = {
            **intent,
            "payment_method": _id(method),
            "latest_charge": _id(intent.get("latest_charge")),
        }
        PaymentIntent.sync_from_stripe_data(flat_intent, api_key=api_key)
    Session.sync_from_stripe_data(
        {**data, "customer": _id(customer), "payment_intent": _id(intent)}, api_key=api_key
    )


def mirror_rows() -> dict:
    return {model.__name__: rows(model) for model in MIRROR}


def test_the_session_mirror_writes_the_rows_dj_stripes_own_sync_writes(pipeline):
    api_key = stripe_api_key()
    sessions = [
        stripe_object_json(
            stripe.checkout.Session.retrieve(
                checkout["session"]["id"],
                api_key=api_key,
                expand=EXPAND,
                stripe_version=djstripe_settings.STRIPE_API_VERSION,
            )
        )
        for checkout in history(pipeline)
    ]
    twice = [*sessions, *sessions]  # a redelivered event: the second sync meets mirrored rows

    with transaction.atomic():
        for data in twice:
            dj_stripe_sync(data, api_key)
        by_dj_stripe = mirror_rows()
        transaction.set_rollback(True)
    assert not Session.objects.exists() and not Customer.objects.exists()
    for data in twice:
        checkout_sessions_mirror([data], api_key=api_key)
    by_mirror = mirror_rows()

    assert len(by_mirror["Session"]) == len(sessions)
    assert by_mirror["PaymentIntent"] and by_mirror["PaymentMethod"]
    for model in MIRROR:
        assert by_mirror[model.__name__] == by_dj_stripe[model.__name__], model.__name__
