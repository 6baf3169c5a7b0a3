"""What `make demo` prints once the paid checkout has gone through the pipeline."""

from pathlib import Path

from django.conf import settings
from djstripe.models import Event, Session

from core.money import format_money
from crm.models import Client, Onboarding
from provisioning.links import set_password_url
from stripe_events.models import StripeWebhookJob


def latest_email_file() -> str:
    """Where the file email backend wrote the last message (the demo's "inbox")."""
    if settings.EMAIL_BACKEND != "django.core.mail.backends.filebased.EmailBackend":
        return f"sent through {settings.EMAIL_BACKEND}"
    files = sorted(Path(settings.EMAIL_FILE_PATH).glob("*.log"), key=lambda path: path.stat().st_mtime)
    return f"read it in {files[-1]}" if files else f"no file yet in {settings.EMAIL_FILE_PATH}"


def demo_report(*, site_url: str, admin_password: str, session_id: str, event_ids: list[str]) -> str:
    """A plain-text account of one checkout: events, mirrors, client, email, workspace, logins."""
    lines = ["", "=" * 72, "What happened", "=" * 72]
    jobs = (
        StripeWebhookJob.objects.filter(event_id__in=event_ids).select_related("trigger").order_by("created")
    )
    for job in jobs:
        processed = "processed" if job.trigger.processed else "NOT processed"
        lines.append(
            f"Webhook {job.event_type} {job.event_id}: stored (trigger {job.trigger_id}), {processed}"
        )
        lines.append(f"  worker job: {job.get_status_display()} after {job.attempts} attempt(s)")
    synced = Event.objects.filter(id__in=event_ids).count()
    lines.append(f"dj-stripe mirror: {synced} of {len(event_ids)} event(s) synced")
    session = Session.objects.select_related("customer", "payment_intent").filter(id=session_id).first()
    if session:
        lines.append(f"  Checkout Session {session.id}: {session.stripe_data.get('payment_status')}")
        for obj in (session.customer, session.payment_intent):
            if obj:
                lines.append(f"  {type(obj).__name__} {obj.id}")

    onboarding = (
        Onboarding.objects.select_related("client", "service").filter(checkout_session_id=session_id).first()
    )
    lines += onboarding_lines(onboarding) if onboarding else ["No onboarding was recorded for this checkout."]
    lines += [
        "",
        f"Client portal: {site_url}/portal/  (log in with the client's email once the password is set)",
        f"Admin:         {site_url}/admin/   (user admin, password {admin_password})",
        "=" * 72,
    ]
    return "\n".join(lines)


def onboarding_lines(onboarding: Onboarding) -> list[str]:
    lines = [f"Onboarding {onboarding.checkout_session_id}: {onboarding.get_status_display()}"]
    if onboarding.held_reason:
        lines.append(f"  held: {onboarding.get_held_reason_display()}: {onboarding.held_detail}")
    client: Client | None = onboarding.client
    if client:
        lines += [
            f"Client: {client.name} <{client.email}>, service {client.ordered_service}, "
            f"lifetime value {format_money(client.invoiced_value, client.currency)}",
            f"Welcome email: {onboarding.get_email_status_display()}, {latest_email_file()}",
        ]
        for workspace in client.workspaces.all():
            lines.append(f"Workspace: {workspace.get_status_display()} at {workspace.url}")
        if client.user:
            lines.append(f"Set-password link (as in the email): {set_password_url(client.user)}")
    return lines
