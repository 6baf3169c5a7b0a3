from django.contrib import admin

from .models import PortalPasswordResetRequest, Workspace


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["client", "service", "status", "url", "attempts", "ready_at"]
    list_select_related = ["client", "service"]
    list_filter = ["status", "service"]
    search_fields = ["client__email", "client__name", "=external_id"]
    raw_id_fields = ["client", "service"]
    readonly_fields = ["status", "url", "backend", "external_id", "attempts", "last_error", "ready_at"]


@admin.register(PortalPasswordResetRequest)
class PortalPasswordResetRequestAdmin(admin.ModelAdmin):
    """What clients asked on the portal's "forgot password" page: read-only."""

    list_display = ["email", "ip_address", "sent", "created"]
    list_filter = ["sent"]
    search_fields = ["email", "=ip_address"]
    date_hierarchy = "created"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
