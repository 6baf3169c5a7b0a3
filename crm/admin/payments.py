"""What the agency sells (services) and what was paid (payments)."""

from django.contrib import admin

from ..models import Payment, Service
from ..selectors.search import payment_search
from .common import CurrencyFilter, PipelineRecordAdmin


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
