from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from .admin_mirror import ReadOnlyAdminMixin
from .models import StripeWebhookJob
from .webhook_jobs import webhook_job_reprocess


@admin.register(StripeWebhookJob)
class StripeWebhookJobAdmin(ReadOnlyAdminMixin, admin.ModelAdmin[StripeWebhookJob]):
    list_display = [
        "event_id",
        "event_type",
        "status",
        "attempts",
        "short_error",
        "next_attempt_at",
        "created",
    ]
    list_filter = ["status", "event_type"]
    search_fields = ["=event_id"]
    readonly_fields = [f.name for f in StripeWebhookJob._meta.fields]
    actions = ["reprocess"]

    def has_reprocess_webhook_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("stripe_events.reprocess_webhook")

    @admin.display(description="Last error")
    def short_error(self, obj: StripeWebhookJob) -> str:
        return format_html("<span title='{}'>{}</span>", obj.last_error, obj.last_error[:80])

    @admin.action(description="Reprocess now", permissions=["reprocess_webhook"])
    def reprocess(self, request: HttpRequest, queryset: QuerySet[StripeWebhookJob]) -> None:
        done = sum(webhook_job_reprocess(job=job, actor=request.user) for job in queryset)
        total = len(queryset)
        what, skipped = "Sent back to the worker", "already processed or running"
        self.message_user(request, f"{what}: {done} of {total}.", messages.SUCCESS if done else messages.INFO)
        if done < total:
            self.message_user(request, f"{total - done} skipped: {skipped}", messages.WARNING)
