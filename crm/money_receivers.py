"""Thin receivers for the money that follows a checkout: each pulls the object out of the event and
calls one service (crm/invoices.py, crm/ledger.py).

They read the event's JSON, not dj-stripe's mirror: the ledger needs Stripe's fields as sent in the
pinned version, and `money_movement_settle` reads each object's current state from Stripe anyway.
Connected in CrmConfig.ready(), after dj-stripe's own handlers, like crm/receivers.py.
"""

from djstripe.event_handlers import djstripe_receiver
from djstripe.models import Event

from .services.invoices import invoice_event_record
from .services.ledger import ledger_cancellation_record, ledger_dispute_record, ledger_refund_record

INVOICE_EVENTS = ("invoice.paid", "invoice.payment_failed")
REFUND_EVENTS = ("refund.created", "refund.updated", "refund.failed")
DISPUTE_EVENTS = (
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
)


@djstripe_receiver(INVOICE_EVENTS)
def invoice_money(sender, event: Event, **kwargs) -> None:
    """A paid invoice is a payment (or onboards); a failed one puts the client at risk."""
    invoice_event_record(invoice=event.data["object"], event_type=event.type, event_id=event.id)


@djstripe_receiver(REFUND_EVENTS)
def refund_money(sender, event: Event, **kwargs) -> None:
    """Record the refund; only a succeeded one counts."""
    ledger_refund_record(refund=event.data["object"])


@djstripe_receiver("charge.refunded")
def charge_refunds_money(sender, event: Event, **kwargs) -> None:
    """The refunds listed on the charge (when Stripe includes them; refund.* events cover the rest)."""
    for refund in (event.data["object"].get("refunds") or {}).get("data") or []:
        ledger_refund_record(refund=refund)


@djstripe_receiver(DISPUTE_EVENTS)
def dispute_money(sender, event: Event, **kwargs) -> None:
    """Record the dispute: open puts the client at risk, lost deducts, won does not."""
    ledger_dispute_record(dispute=event.data["object"])


@djstripe_receiver("customer.subscription.deleted")
def subscription_ended(sender, event: Event, **kwargs) -> None:
    """A cancelled subscription offboards its service."""
    ledger_cancellation_record(subscription=event.data["object"])
