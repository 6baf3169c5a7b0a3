from django.contrib import admin

from .models import Workspace


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["client", "service", "status", "url", "attempts", "ready_at"]
    list_select_related = ["client", "service"]
    list_filter = ["status", "service"]
    search_fields = ["client__email", "client__name", "=external_id"]
    raw_id_fields = ["client", "service"]
    readonly_fields = ["status", "url", "backend", "external_id", "attempts", "last_error", "ready_at"]
