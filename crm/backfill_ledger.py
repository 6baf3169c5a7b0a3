"""Backfill of the money that follows a checkout: paid invoices, refunds and disputes into the ledger.

Each kind is read with Stripe LIST requests (100 objects a request, the balance transactions
expanded), never one request per object, and handed to the same ledger service the webhook's
receivers call (crm/money_receivers.py), so a movement a webhook already recorded, or an earlier
backfill, is found by its Stripe id and changes nothing. Invoices come first, so refunds and
disputes find their payment (the ledger also copes with the other order).

No checkpoint of its own: the ledger is idempotent, so a resumed run reads the window again.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import stripe
from django.db import transaction
from djstripe.models import Invoice

from stripe_events.stripe_json import stripe_id_of, stripe_object_json

from .services.invoices import invoice_event_record, invoice_subscription_id
from .services.ledger import ledger_dispute_record, ledger_refund_record

logger = logging.getLogger(__name__)


def _invoice_import(invoice: dict[str, Any], listed: Any, api_key: str) -> None:
    customer = invoice.get("customer")
    if not invoice_subscription_id(invoice):
        # A stand-alone invoice may onboard, which reads it from dj-stripe's mirror (as the webhook's
        # dj-stripe sync would have left it); the customer came expanded, so no extra request.
        # dj-stripe syncs from the StripeObject (it iterates `lines` as a list object).
        Invoice.sync_from_stripe_data(listed, api_key=api_key)
    # The ledger reads the customer as an id, as in an event's invoice.
    invoice_event_record(invoice={**invoice, "customer": stripe_id_of(customer)}, event_type="invoice.paid")


def _refund_import(refund: dict[str, Any], listed: Any, api_key: str) -> None:
    ledger_refund_record(refund=refund, current=True)  # listed with its balance transactions


def _dispute_import(dispute: dict[str, Any], listed: Any, api_key: str) -> None:
    ledger_dispute_record(dispute=dispute, current=True)


@dataclass(frozen=True)
class Listing:
    """One kind of money object: its list call, the list's parameters and its import."""

    name: str
    list_call: Callable[..., Any]
    params: dict[str, Any]
    record: Callable[[dict[str, Any], Any, str], None]


LISTINGS = (
    Listing(
        "invoices",
        stripe.Invoice.list,
        {"status": "paid", "expand": ["data.customer"]},
        _invoice_import,
    ),
    Listing(
        "refunds",
        stripe.Refund.list,
        {"expand": ["data.balance_transaction", "data.failure_balance_transaction"]},
        _refund_import,
    ),
    # A dispute's balance_transactions are full objects in the list already.
    Listing("disputes", stripe.Dispute.list, {}, _dispute_import),
)


def ledger_counts_new() -> dict[str, int]:
    return {listing.name: 0 for listing in LISTINGS} | {"failed": 0}


def ledger_object_import(listing: Listing, obj: Any, *, api_key: str, dry_run: bool) -> bool:
    """Record one listed object in its own transaction (rolled back in a dry run); False on error."""
    data = stripe_object_json(obj)
    try:
        with transaction.atomic():
            listing.record(data, obj, api_key)
            if dry_run:
                transaction.set_rollback(True)
    except Exception:  # noqa: BLE001 - one bad object must not stop a long backfill
        logger.exception("Backfill of %s %s failed", listing.name, data.get("id"))
        return False
    return True
