"""The local record of where Stripe sends webhooks and with which signing secret."""

from uuid import uuid4

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from djstripe.enums import WebhookEndpointStatus, WebhookEndpointValidation
from djstripe.models import WebhookEndpoint


@transaction.atomic
def webhook_endpoint_register(
    *, secret: str, base_url: str, livemode: bool = False
) -> tuple[WebhookEndpoint, bool]:
    """Create or update the endpoint for `secret` (no Stripe call); returns it and whether new."""
    endpoint = WebhookEndpoint.objects.select_for_update().filter(secret=secret).first()
    created = endpoint is None
    if created:
        endpoint = WebhookEndpoint(
            id=f"we_local_{uuid4().hex[:24]}",
            secret=secret,
            enabled_events=["*"],
            api_version=settings.STRIPE_API_VERSION,
            status=WebhookEndpointStatus.enabled,
            djstripe_validation_method=WebhookEndpointValidation.verify_signature,
            metadata={},
        )
    endpoint.livemode = livemode
    path = reverse("stripe-webhook", kwargs={"uuid": endpoint.djstripe_uuid})
    endpoint.url = base_url.rstrip("/") + path
    endpoint.save()
    return endpoint, created
