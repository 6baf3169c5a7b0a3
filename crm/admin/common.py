"""What the crm model admins share: read-only inlines and records, staff-action permissions, filters."""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from core.money import format_money
from stripe_events.admin_mirror import ReadOnlyAdminMixin


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


if TYPE_CHECKING:  # the mixins below are only ever mixed into ModelAdmins
    _AdminBase = admin.ModelAdmin[Any]
else:
    _AdminBase = object


class StaffActionsMixin(_AdminBase):
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


class PipelineRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Records the pipeline writes (onboardings, payments): viewed, never added, edited or deleted
    by hand (a Save would rewrite every column of a row the worker may be updating; staff act
    through the actions), searched through an index-friendly selector, amounts in their currency."""

    search: Callable[[QuerySet[Any], str], QuerySet[Any]] | None = None  # a selector (queryset, term)
    show_full_result_count = False

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        return self.search(queryset, search_term), False

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, obj) -> str:
        return format_money(obj.amount, obj.currency)
