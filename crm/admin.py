"""The staff cockpit: clients, the needs-review queue, onboardings, payments, services, webhooks.

Actions call services (crm.staff) and report with message_user; each is guarded by a permission
(crm.approve_onboarding, …) so a role only sees, and can only post, what it may run.
"""

import csv

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse

from core.money import format_money
from provisioning.models import Workspace
from stripe_events.admin_mirror import ReadOnlyAdminMixin

from .models import (
    BackfillRun,
    Client,
    HeldOnboarding,
    Onboarding,
    Payment,
    ReconciliationRun,
    Service,
)
from .selectors import (
    client_search,
    client_stripe_links,
    client_timeline,
    onboarding_search,
    onboardings_latest,
    payment_search,
)
from .services import staff

Status = Onboarding.Status


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    show_change_link = True
    can_delete = False
    # Foreign keys shown in the rows, fetched in the same query (one query per inline, not per row).
    select_related_fields: list[str] = []

    def get_queryset(self, request):
        return super().get_queryset(request).select_related(*self.select_related_fields)

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class PaymentInline(ReadOnlyInline):
    model = Payment
    fields = ["checkout_session_id", "payment_intent_id", "amount_display", "service", "paid_at"]
    select_related_fields = ["service"]

    @admin.display(description="Amount")
    def amount_display(self, obj: Payment) -> str:
        return format_money(obj.amount, obj.currency)


class OnboardingInline(ReadOnlyInline):
    model = Onboarding
    fields = ["checkout_session_id", "service", "status", "held_reason", "email_status", "workspace_status"]
    select_related_fields = ["service"]


class WorkspaceInline(ReadOnlyInline):
    model = Workspace
    fields = ["service", "status", "url", "attempts", "last_error"]
    select_related_fields = ["service"]


class StaffActionsMixin:
    """Permission checks named by `@admin.action(permissions=[...])`, and shared actions."""

    def has_resend_welcome_email_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("crm.resend_welcome_email")

    def has_approve_onboarding_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("crm.approve_onboarding")

    def has_retry_provisioning_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("crm.retry_provisioning")

    def report(self, request: HttpRequest, done: int, total: int, what: str, skipped: str) -> None:
        self.message_user(request, f"{what}: {done} of {total}.", messages.SUCCESS if done else messages.INFO)
        if done < total:
            self.message_user(request, f"{total - done} skipped: {skipped}", messages.WARNING)


class CurrencyFilter(admin.SimpleListFilter):
    """Currency, offered from ONBOARDING_CURRENCIES rather than read from the table.

    Django's filter for a plain field runs SELECT DISTINCT over the whole table on every page:
    a full scan of 300,000 payments or onboardings, slower than all the page's other SQL.
    Clients and payments only exist in an accepted currency; anything else is under "Other".
    """

    title = "currency"
    parameter_name = "currency__exact"  # as the default filter spelled it: old links keep working
    OTHER = "other"

    def lookups(self, request, model_admin):
        return [*((code, code.upper()) for code in settings.ONBOARDING_CURRENCIES), (self.OTHER, "Other")]

    def queryset(self, request, queryset):
        if self.value() == self.OTHER:
            return queryset.exclude(currency__in=settings.ONBOARDING_CURRENCIES)
        return queryset.filter(currency=self.value()) if self.value() else queryset


class ClientOnboardingFilter(admin.SimpleListFilter):
    """Clients with at least one onboarding whose `onboarding_field` has the chosen value.

    An EXISTS semi-join rather than a join + DISTINCT: no de-duplication of 100,000 wide rows,
    and the changelist's LIMIT can stop early while walking clients in their -created order.
    """

    onboarding_field = ""

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        onboardings = Onboarding.objects.filter(
            client=OuterRef("pk"), **{self.onboarding_field: self.value()}
        )
        return queryset.filter(Exists(onboardings))


class OnboardingStatusFilter(ClientOnboardingFilter):
    title = "onboarding status"
    parameter_name = "onboarding_status"
    onboarding_field = "status"

    def lookups(self, request, model_admin):
        return Status.choices


class HeldReasonFilter(ClientOnboardingFilter):
    title = "held reason"
    parameter_name = "held_reason"
    onboarding_field = "held_reason"

    def lookups(self, request, model_admin):
        return Onboarding.HeldReason.choices


@admin.register(Client)
class ClientAdmin(StaffActionsMixin, admin.ModelAdmin):
    list_display = ["email", "name", "ordered_service", "lifetime_value", "latest_onboarding", "created"]
    list_select_related = ["ordered_service"]
    list_filter = [OnboardingStatusFilter, HeldReasonFilter, "ordered_service", CurrencyFilter, "created"]
    search_fields = ["email", "name"]  # see get_search_results: Stripe ids, email prefix, name
    search_help_text = "Email, name, or a Stripe id (cus_…, cs_…, pi_…)."
    fields = ["email", "name", "ordered_service", "invoiced_value", "currency", "stripe_customer_id", "user"]
    readonly_fields = ["invoiced_value", "currency", "stripe_customer_id", "user"]
    raw_id_fields = ["ordered_service"]
    inlines = [PaymentInline, OnboardingInline, WorkspaceInline]
    actions = ["resend_welcome_email", "retry_provisioning"]
    change_form_template = "admin/crm/client/change_form.html"
    change_list_template = "admin/crm/client/change_list.html"
    show_full_result_count = False  # no second COUNT(*) over 100,000 clients on every page

    def get_queryset(self, request):
        latest = Onboarding.objects.filter(client=OuterRef("pk")).order_by("-created").values("status")[:1]
        return super().get_queryset(request).annotate(latest_onboarding_status=Subquery(latest))

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        return client_search(queryset, search_term), False

    @admin.display(description="Lifetime value", ordering="invoiced_value")
    def lifetime_value(self, obj: Client) -> str:
        return format_money(obj.invoiced_value, obj.currency)

    @admin.display(description="Onboarding")
    def latest_onboarding(self, obj: Client) -> str:
        status = getattr(obj, "latest_onboarding_status", None)
        return Status(status).label if status else "—"

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # The client the change view already loaded (no second fetch, as change_view would need).
        client = obj
        if client is not None:
            latest = client.onboardings.order_by("-created").first()
            context = {
                **context,
                "summary": {
                    "email": client.email,
                    "name": client.name,
                    "service": client.ordered_service,
                    "lifetime_value": format_money(client.invoiced_value, client.currency),
                    "onboarding": latest,
                },
                "timeline": client_timeline(client),
                "stripe_links": client_stripe_links(client),
                "can_add_note": request.user.has_perm("crm.add_activity"),
            }
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self):
        return [
            path("export.csv", self.admin_site.admin_view(self.export_csv), name="crm_client_export"),
            path("<int:pk>/note/", self.admin_site.admin_view(self.add_note), name="crm_client_note"),
            *super().get_urls(),
        ]

    def export_csv(self, request):
        """The changelist as filtered and searched on screen, as CSV (streamed, any size)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        queryset = self.get_changelist_instance(request).get_queryset(request)
        rows = queryset.values_list(
            "email",
            "name",
            "ordered_service__service_id",
            "invoiced_value",
            "currency",
            "stripe_customer_id",
            "created",
        )

        class Echo:
            def write(self, value):
                return value

        writer = csv.writer(Echo())
        header = [
            "email",
            "name",
            "service",
            "invoiced_value_minor_units",
            "currency",
            "stripe_customer_id",
            "created",
        ]

        def lines():
            yield writer.writerow(header)
            for row in rows.iterator(chunk_size=2000):
                yield writer.writerow(row)

        response = StreamingHttpResponse(lines(), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="clients.csv"'
        return response

    def add_note(self, request, pk: int):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm("crm.add_activity"):
            raise PermissionDenied
        client = get_object_or_404(Client, pk=pk)
        text = request.POST.get("note", "").strip()
        if text:
            staff.client_note_add(client=client, actor=request.user, text=text)
            self.message_user(request, "Note added to the timeline.")
        return HttpResponseRedirect(reverse("admin:crm_client_change", args=[pk]))

    @admin.action(description="Resend welcome email (fresh link)", permissions=["resend_welcome_email"])
    def resend_welcome_email(self, request, queryset: QuerySet[Client]) -> None:
        onboardings = onboardings_latest(queryset)
        done = sum(staff.welcome_email_resend(onboarding=o, actor=request.user) for o in onboardings)
        self.report(
            request, done, len(queryset), "Welcome emails queued", "no onboarding, or one already queued"
        )

    @admin.action(description="Retry workspace provisioning", permissions=["retry_provisioning"])
    def retry_provisioning(self, request, queryset: QuerySet[Client]) -> None:
        retryable = [Onboarding.StepStatus.FAILED, Onboarding.StepStatus.RETRYING]
        onboardings = Onboarding.objects.filter(client__in=queryset, workspace_status__in=retryable)
        done = sum(staff.provisioning_retry(onboarding=o, actor=request.user) for o in onboardings)
        self.report(request, done, len(onboardings), "Workspace steps queued", "changed meanwhile")


class RejectForm(ActionForm):
    note = forms.CharField(
        required=False, label="Note (for reject)", widget=forms.TextInput(attrs={"size": 40})
    )


class OnboardingActionsMixin(StaffActionsMixin):
    action_form = RejectForm

    @admin.action(description="Approve and resume", permissions=["approve_onboarding"])
    def approve(self, request, queryset: QuerySet[Onboarding]) -> None:
        for onboarding in queryset:
            self.message_user(request, staff.onboarding_approve(onboarding=onboarding, actor=request.user))

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


class PipelineRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Records the pipeline writes (onboardings, payments): viewed, never added, edited or deleted
    by hand (a Save would rewrite every column of a row the worker may be updating; staff act
    through the actions), searched through an index-friendly selector, amounts in their currency."""

    search = None  # a selector (queryset, term) -> queryset
    show_full_result_count = False

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        return self.search(queryset, search_term), False

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, obj) -> str:
        return format_money(obj.amount, obj.currency)


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
        "workspace_status",
        "created",
    ]
    list_select_related = ["service"]
    list_filter = [
        "status",
        "held_reason",
        "service",
        CurrencyFilter,
        "email_status",
        "workspace_status",
        "created",
    ]
    # Shows the search box; get_search_results does the search (Stripe ids exact, email prefix).
    search_fields = ["checkout_session_id", "payment_intent_id", "stripe_customer_id", "customer_email"]
    search_help_text = "Checkout Session, payment intent or customer id (exact), or the start of an email."
    readonly_fields = [f.name for f in Onboarding._meta.fields]
    actions = ["approve", "reject", "resend_welcome_email", "retry_provisioning"]
    search = staticmethod(onboarding_search)


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


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ["service_id", "name", "active", "send_welcome_email", "provision_workspace"]
    list_filter = ["active"]
    search_fields = ["service_id", "name"]


@admin.register(Payment)
class PaymentAdmin(PipelineRecordAdmin):
    list_display = ["checkout_session_id", "client", "amount_display", "service", "paid_at"]
    list_select_related = ["client", "service"]
    list_filter = [CurrencyFilter, "service", "livemode", "paid_at"]
    # Shows the search box; get_search_results does the search (Stripe ids exact, email prefix).
    search_fields = ["checkout_session_id", "payment_intent_id", "stripe_customer_id", "client__email"]
    search_help_text = "Checkout Session, payment intent or customer id (exact), or the start of an email."
    readonly_fields = [f.name for f in Payment._meta.fields]
    search = staticmethod(payment_search)


# A reconciliation run's counts, in the list and in the run's page alike.
RUN_FINDINGS = [
    "missed_checkouts",
    "unfinished_onboardings",
    "failed_webhooks",
    "value_mismatches",
    "repaired",
    "for_staff",
]


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Each reconciliation (daily schedule or command), read-only: the latest result is on top."""

    list_display = [
        "started",
        "triggered_by",
        "days",
        "fixed",
        *RUN_FINDINGS,
        "finished",
        "error",
    ]
    list_filter = ["triggered_by", "fixed"]
    date_hierarchy = "started"
    readonly_fields = [f.name for f in ReconciliationRun._meta.fields]
    fieldsets = [
        (None, {"fields": ["started", "finished", "triggered_by", "days", "fixed", "events_scanned"]}),
        ("Findings", {"fields": RUN_FINDINGS}),
        ("Report", {"fields": ["report", "error"]}),
    ]


@admin.register(BackfillRun)
class BackfillRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """`manage.py backfill_onboarding` runs and their checkpoints; read-only (the command writes them)."""

    list_display = ["id", "since", "window_end", "service_ref", "no_email", "status", "pages", "started"]
    list_filter = ["status", "no_email"]
    readonly_fields = [f.name for f in BackfillRun._meta.fields]
