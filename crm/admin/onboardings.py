"""Onboardings and the needs-review queue: approve, reject, resend, retry."""

from typing import ClassVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.db.models import QuerySet
from django.utils.html import format_html, format_html_join

from ..models import HeldOnboarding, Onboarding, Service
from ..selectors.search import onboarding_search
from ..services import staff
from .common import CurrencyFilter, PipelineRecordAdmin, StaffActionsMixin

Status = Onboarding.Status
EMAIL_REPORT_COLUMNS = ("When", "ESP", "Event", "Recipient", "Message", "Reason")


class ApprovalFields(forms.Form):
    """What a hold lacked, supplied by staff when they approve."""

    service = forms.ModelChoiceField(
        queryset=Service.objects.filter(active=True),
        required=False,
        label="Service (for approve)",
        help_text="For a missing, unknown or inactive serviceId",
    )
    email = forms.EmailField(required=False, label="Client email (for approve)")


class ReviewActionForm(ActionForm, ApprovalFields):
    """The action bar's extra fields: a note for reject; the service and email for approve."""

    note = forms.CharField(
        required=False, label="Note (for reject)", widget=forms.TextInput(attrs={"size": 40})
    )


class OnboardingActionsMixin(StaffActionsMixin):
    action_form = ReviewActionForm

    @admin.action(
        description="Approve and resume (with the service / email given, if any)",
        permissions=["approve_onboarding"],
    )
    def approve(self, request, queryset: QuerySet[Onboarding]) -> None:
        form = ApprovalFields(request.POST)
        if not form.is_valid():
            self.message_user(request, f"Not approved: {form.errors.as_text()}", messages.ERROR)
            return
        service, email = form.cleaned_data["service"], form.cleaned_data["email"] or ""
        if email and len(queryset) > 1:
            self.message_user(request, "An email can be given for one onboarding at a time.", messages.ERROR)
            return
        for onboarding in queryset:
            result = staff.onboarding_approve(
                onboarding=onboarding, actor=request.user, service=service, email=email
            )
            self.message_user(request, result)

    @admin.action(description="Reject (with the note)", permissions=["approve_onboarding"])
    def reject(self, request, queryset: QuerySet[Onboarding]) -> None:
        note = request.POST.get("note", "").strip()
        if not note:
            self.message_user(request, "Write a note saying why, then reject.", messages.ERROR)
            return
        done = sum(staff.onboarding_reject(onboarding=o, actor=request.user, note=note) for o in queryset)
        self.report(request, done, len(queryset), "Rejected", "not held")

    @admin.action(description="Resend welcome email (fresh link)", permissions=["resend_welcome_email"])
    def resend_welcome_email(self, request, queryset: QuerySet[Onboarding]) -> None:
        done = sum(staff.welcome_email_resend(onboarding=o, actor=request.user) for o in queryset)
        self.report(request, done, len(queryset), "Welcome emails queued", "no client yet, or already queued")

    @admin.action(description="Retry workspace provisioning", permissions=["retry_provisioning"])
    def retry_provisioning(self, request, queryset: QuerySet[Onboarding]) -> None:
        done = sum(staff.provisioning_retry(onboarding=o, actor=request.user) for o in queryset)
        self.report(request, done, len(queryset), "Workspace steps queued", "not failed or waiting to retry")


@admin.register(Onboarding)
class OnboardingAdmin(OnboardingActionsMixin, PipelineRecordAdmin):
    list_display = [
        "checkout_session_id",
        "customer_email",
        "service",
        "amount_display",
        "status",
        "held_reason",
        "email_status",
        "email_delivery",
        "workspace_status",
        "created",
    ]
    list_select_related: ClassVar[bool | list[str] | tuple[str, ...]] = ["service"]
    list_filter = [
        "status",
        "held_reason",
        "service",
        CurrencyFilter,
        "email_status",
        "email_delivery",
        "workspace_status",
        "created",
    ]
    # Shows the search box; get_search_results does the search (Stripe ids exact, email prefix).
    search_fields = ["checkout_session_id", "payment_intent_id", "stripe_customer_id", "customer_email"]
    search_help_text = "Checkout Session, payment intent or customer id (exact), or the start of an email."
    readonly_fields = [*(f.name for f in Onboarding._meta.fields), "email_reports"]
    actions = ["approve", "reject", "resend_welcome_email", "retry_provisioning"]
    search = staticmethod(onboarding_search)

    @admin.display(description="Email provider's reports")
    def email_reports(self, obj: Onboarding) -> str:
        """Every tracking event the ESP sent about this onboarding's welcome emails, in one query."""
        events = obj.email_events.order_by("timestamp", "id") if obj.pk else []
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    e.timestamp or e.received,
                    e.esp,
                    e.event_type,
                    e.recipient,
                    e.message_id + ("" if e.message_id == obj.email_message_id else " (earlier send)"),
                    " — ".join(part for part in (e.description, e.mta_response) if part),
                )
                for e in events
            ),
        )
        if not rows:
            return "None yet"
        head = format_html_join("", "<th>{}</th>", ((h,) for h in EMAIL_REPORT_COLUMNS))
        return format_html('<table id="email-reports"><tr>{}</tr>{}</table>', head, rows)


@admin.register(HeldOnboarding)
class HeldOnboardingAdmin(OnboardingAdmin):
    """The needs-review queue: held onboardings, oldest first, with the reason."""

    list_display = [
        "checkout_session_id",
        "customer_email",
        "service_ref",
        "amount_display",
        "held_reason",
        "held_detail",
        "created",
    ]
    # The held queue is small (status = held, indexed): its real currencies are cheap to list.
    list_filter = ["held_reason", "currency", "created"]
    list_select_related = False  # service_ref is the id Stripe sent, no join to Service needed
    ordering = ["created"]
    actions = ["approve", "reject"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(status=Status.HELD)
