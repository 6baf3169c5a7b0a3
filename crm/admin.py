"""Staff admin for clients, payments, onboardings, services and webhook processing."""

from django.contrib import admin

from provisioning.models import Workspace

from .models import Client, Onboarding, Payment, Service, StripeWebhookJob
from .money import format_money
from .webhook_jobs import webhook_job_retry_now


class PaymentInline(admin.TabularInline):
    model = Payment
    extra = 0
    show_change_link = True
    fields = ["checkout_session_id", "payment_intent_id", "amount_display", "service", "paid_at"]
    readonly_fields = fields
    can_delete = False

    @admin.display(description="Amount")
    def amount_display(self, obj: Payment) -> str:
        return format_money(obj.amount, obj.currency)

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class OnboardingInline(admin.TabularInline):
    model = Onboarding
    extra = 0
    show_change_link = True
    fields = ["checkout_session_id", "service", "status", "held_reason", "email_status", "workspace_status"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class WorkspaceInline(admin.TabularInline):
    model = Workspace
    extra = 0
    show_change_link = True
    fields = ["service", "status", "url", "attempts", "last_error"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Client)
class ClientAdmin(admin.ModelAdmin):
    list_display = ["email", "name", "ordered_service", "lifetime_value", "created"]
    list_select_related = ["ordered_service"]
    list_filter = ["ordered_service", "currency"]
    search_fields = [
        "email",
        "name",
        "=stripe_customer_id",
        "=payments__payment_intent_id",
        "=payments__checkout_session_id",
    ]
    readonly_fields = ["invoiced_value", "currency", "stripe_customer_id", "user", "created", "updated"]
    raw_id_fields = ["ordered_service"]
    inlines = [PaymentInline, OnboardingInline, WorkspaceInline]

    @admin.display(description="Lifetime value", ordering="invoiced_value")
    def lifetime_value(self, obj: Client) -> str:
        return format_money(obj.invoiced_value, obj.currency)


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ["service_id", "name", "active", "send_welcome_email", "provision_workspace"]
    list_filter = ["active"]
    search_fields = ["service_id", "name"]


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = ["checkout_session_id", "client", "amount_display", "service", "paid_at"]
    list_select_related = ["client", "service"]
    list_filter = ["currency", "service", "livemode"]
    search_fields = ["=checkout_session_id", "=payment_intent_id", "=stripe_customer_id", "client__email"]
    raw_id_fields = ["client", "service"]
    readonly_fields = [f.name for f in Payment._meta.fields]
    date_hierarchy = "paid_at"

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, obj: Payment) -> str:
        return format_money(obj.amount, obj.currency)


@admin.register(Onboarding)
class OnboardingAdmin(admin.ModelAdmin):
    list_display = [
        "checkout_session_id",
        "customer_email",
        "service",
        "status",
        "held_reason",
        "email_status",
        "workspace_status",
        "created",
    ]
    list_select_related = ["service"]
    list_filter = ["status", "held_reason", "email_status", "workspace_status", "service"]
    search_fields = [
        "=checkout_session_id",
        "=payment_intent_id",
        "=stripe_customer_id",
        "customer_email",
        "client__email",
    ]
    raw_id_fields = ["client", "service"]
    readonly_fields = [f.name for f in Onboarding._meta.fields]
    date_hierarchy = "created"


@admin.register(StripeWebhookJob)
class StripeWebhookJobAdmin(admin.ModelAdmin):
    list_display = ["event_id", "event_type", "status", "attempts", "next_attempt_at", "created"]
    list_filter = ["status", "event_type"]
    search_fields = ["=event_id"]
    readonly_fields = [f.name for f in StripeWebhookJob._meta.fields]
    actions = ["retry_now"]

    @admin.action(description="Retry processing now", permissions=["change"])
    def retry_now(self, request, queryset) -> None:
        retried = sum(webhook_job_retry_now(job=job) for job in queryset)
        self.message_user(request, f"{retried} of {queryset.count()} webhook job(s) sent back to the queue.")
