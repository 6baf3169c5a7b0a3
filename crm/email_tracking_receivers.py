"""The thin receiver at the boundary with Anymail: its tracking signal (any ESP) -> one service.

Imported by crm.receivers, so it is connected in CrmConfig.ready() with the others.
"""

from anymail.signals import AnymailTrackingEvent, tracking
from django.dispatch import receiver

from .services.email_tracking import TrackingFacts, email_event_record


@receiver(tracking, dispatch_uid="crm.email_tracking")
def email_tracking_record(sender, event: AnymailTrackingEvent, esp_name: str, **kwargs) -> None:
    """Record a delivery or engagement event the ESP reported for a message."""
    metadata = event.metadata if isinstance(event.metadata, dict) else {}
    email_event_record(
        facts=TrackingFacts(
            esp=esp_name,
            event_type=event.event_type or "unknown",
            message_id=event.message_id or "",
            event_id=event.event_id or "",
            timestamp=event.timestamp,
            recipient=event.recipient or "",
            reject_reason=event.reject_reason or "",
            description=event.description or "",
            mta_response=event.mta_response or "",
            onboarding_ref=str(metadata.get("onboarding_id") or ""),
        )
    )
