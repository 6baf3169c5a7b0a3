"""Thin receivers at the boundary with dj-stripe: pull the session id out, call one service.

Anymail's tracking signal has its own module, email_tracking_receivers, connected from here.

Connected in CrmConfig.ready(). Checkout Session events come through stripe_events'
`checkout_session_synced`, sent by the worker once the session has been re-retrieved from Stripe
and mirrored, with the payment's charge from that same request.
"""

from typing import Any

from django.dispatch import receiver
from djstripe.models import Event

from provisioning.models import Workspace
from provisioning.signals import workspace_changed
from stripe_events.models import StripeWebhookJob
from stripe_events.signals import checkout_session_synced, webhook_job_failed, webhook_job_requeued

from . import email_tracking_receivers  # noqa: F401 - importing connects Anymail's tracking receiver
from .models import StaffAlert
from .services.alerts import admin_url, staff_alert_raise
from .services.onboarding import onboarding_sync_from_session
from .services.staff import webhook_reprocess_record
from .services.workspace_step import workspace_steps_wake

CHECKOUT_EVENTS = (
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
)


@receiver(checkout_session_synced, sender=Event)
def checkout_session_onboard(sender, event: Event, charge: dict[str, Any] | None, **kwargs) -> None:
    """Onboard (or advance) the Checkout Session this event is about."""
    if event.type not in CHECKOUT_EVENTS:  # checkout.session.expired: mirrored, nothing to onboard
        return
    onboarding_sync_from_session(
        session_id=event.data["object"]["id"], event_type=event.type, event_id=event.id, charge=charge
    )


@receiver(webhook_job_requeued, sender=StripeWebhookJob)
def webhook_job_requeued_record(sender, job: StripeWebhookJob, actor, **kwargs) -> None:
    """Staff sent a webhook job back to the worker: on the client's timeline."""
    webhook_reprocess_record(job=job, actor=actor)


@receiver(webhook_job_failed, sender=StripeWebhookJob)
def webhook_job_failed_alert(sender, job: StripeWebhookJob, **kwargs) -> None:
    """The worker gave up on a Stripe event: staff reprocess it from the admin."""
    staff_alert_raise(
        kind=StaffAlert.Kind.WEBHOOK_FAILED,
        summary=f"Stripe event {job.event_id} ({job.event_type}) gave up after {job.attempts} attempts",
        url=admin_url("admin:stripe_events_stripewebhookjob_change", job.id),
    )


@receiver(workspace_changed, sender=Workspace)
def workspace_changed_wake_steps(sender, workspace: Workspace, **kwargs) -> None:
    """A workspace became ready or failed (e.g. by a backend's callback): its waiting steps run now."""
    workspace_steps_wake(client_id=workspace.client_id, service_id=workspace.service_id)
