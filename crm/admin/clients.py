"""Clients: the list, search, CSV export and the client page with its timeline."""

import csv

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, QuerySet, Subquery
from django.http import HttpResponseNotAllowed, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse

from core.money import format_money
from core.spreadsheet import spreadsheet_safe
from provisioning.models import Workspace

from ..models import Client, Onboarding, Payment
from ..selectors.clients import client_stripe_links, client_timeline
from ..selectors.ledger import client_money_by_currency, client_movements, client_settlement_total
from ..selectors.search import client_search, onboardings_latest
from ..services import lifecycle, staff
from ..services.client_email import client_email_change, client_email_conflict
from ..services.onboarding import normalise_email
from .common import CurrencyFilter, ReadOnlyInline, StaffActionsMixin

Status = Onboarding.Status


class PaymentInline(ReadOnlyInline):
    model = Payment
    fields = ["checkout_session_id", "payment_intent_id", "amount_display", "service", "paid_at"]
    select_related_fields = ["service"]

    @admin.display(description="Amount")
    def amount_display(self, obj: Payment) -> str:
        return format_money(obj.amount, obj.currency)


class OnboardingInline(ReadOnlyInline):
    model = Onboarding
    fields = [
        "checkout_session_id",
        "service",
        "status",
        "held_reason",
        "email_status",
        "email_delivery",
        "workspace_status",
    ]
    select_related_fields = ["service"]


class WorkspaceInline(ReadOnlyInline):
    model = Workspace
    fields = ["service", "status", "url", "attempts", "last_error"]
    select_related_fields = ["service"]


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


class ClientAdminForm(forms.ModelForm):
    class Meta:
        model = Client
        fields = ["email", "name", "ordered_service"]

    def clean_email(self) -> str:
        email = normalise_email(self.cleaned_data["email"])
        changed = self.instance.pk and email != self.instance.email
        if changed and (problem := client_email_conflict(client=self.instance, email=email)):
            raise forms.ValidationError(problem)
        return email


def ledger_rows(client: Client) -> list[dict[str, object]]:
    """The client's money movements for the client page, oldest first, with what each counts for."""
    return [
        {
            "when": movement.occurred_at,
            "kind": movement.get_kind_display(),
            "stripe_id": movement.stripe_id,
            "service": movement.service,
            "amount": format_money(movement.amount, movement.currency),
            "status": movement.status.replace("_", " "),
            "counts": movement.counts,
            "settled": (
                format_money(movement.settlement_net, movement.settlement_currency)
                if movement.settlement_net is not None
                else "not available yet"
            ),
        }
        for movement in client_movements(client=client)
    ]


def settlement_row(client: Client) -> dict[str, object]:
    """What Stripe settled for the client, in the account's settlement currency."""
    total = client_settlement_total(client=client)

    def money(value: int) -> str:
        if len(total.currencies) == 1:
            return format_money(value, total.currencies[0])
        return "—" if not total.currencies else f"{value} (minor units of {', '.join(total.currencies)})"

    return {"net": money(total.net), "fee": money(total.fee), "unknown": total.unknown}


@admin.register(Client)
class ClientAdmin(StaffActionsMixin, admin.ModelAdmin):
    form = ClientAdminForm
    list_display = [
        "email",
        "name",
        "ordered_service",
        "lifetime_value",
        "lifecycle_status",
        "latest_onboarding",
        "created",
    ]
    list_select_related = ["ordered_service"]
    list_filter = [
        "lifecycle_status",
        OnboardingStatusFilter,
        HeldReasonFilter,
        "ordered_service",
        CurrencyFilter,
        "created",
    ]
    search_fields = ["email", "name"]  # see get_search_results: Stripe ids, email prefix, name
    search_help_text = "Email, name, or a Stripe id (cus_…, cs_…, pi_…)."
    fields = ["email", "name", "ordered_service", "invoiced_value", "currency", "stripe_customer_id", "user"]
    readonly_fields = ["invoiced_value", "currency", "stripe_customer_id", "user"]
    raw_id_fields = ["ordered_service"]
    inlines = [PaymentInline, OnboardingInline, WorkspaceInline]
    actions = ["resend_welcome_email", "retry_provisioning", "offboard", "reactivate", "keep_active"]
    change_form_template = "admin/crm/client/change_form.html"
    change_list_template = "admin/crm/client/change_list.html"
    show_full_result_count = False  # no second COUNT(*) over 100,000 clients on every page

    def save_model(self, request, obj: Client, form, change: bool) -> None:
        # An email change goes through its service, so the portal login follows (and old links die).
        new_email = obj.email
        if change and "email" in form.changed_data:
            obj.email = form.initial["email"]
        super().save_model(request, obj, form, change)
        if obj.email != new_email:
            client_email_change(client=obj, email=new_email, actor=request.user)

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
                    "lifecycle": client.get_lifecycle_status_display(),
                    "lifecycle_reason": client.lifecycle_reason,
                    "onboarding": latest,
                },
                "timeline": client_timeline(client),
                "ledger": ledger_rows(client),
                "ledger_totals": [
                    {"currency": cur, **{k: format_money(v, cur) for k, v in row.items()}}
                    for cur, row in sorted(client_money_by_currency(client=client).items())
                ],
                "settlement": settlement_row(client),
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
                yield writer.writerow([spreadsheet_safe(value) for value in row])

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

    @admin.action(description="Offboard (suspend their workspaces)", permissions=["change"])
    def offboard(self, request, queryset: QuerySet[Client]) -> None:
        for client in queryset:
            lifecycle.client_offboard(
                client_id=client.id, actor=request.user, reason="Offboarded from the admin"
            )
        self.report(request, len(queryset), len(queryset), "Offboarded", "")

    @admin.action(description="Reactivate (resume their workspaces)", permissions=["change"])
    def reactivate(self, request, queryset: QuerySet[Client]) -> None:
        for client in queryset:
            lifecycle.client_reactivate(client_id=client.id, actor=request.user)
        self.report(request, len(queryset), len(queryset), "Reactivated", "")

    @admin.action(description="Keep active despite refunds and disputes", permissions=["change"])
    def keep_active(self, request, queryset: QuerySet[Client]) -> None:
        for client in queryset:
            lifecycle.client_keep_active(client_id=client.id, actor=request.user, keep=True)
        self.report(request, len(queryset), len(queryset), "Kept active", "")

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
