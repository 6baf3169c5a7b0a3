"""Reconciliation and backfill runs, read-only: the commands and the schedule write them."""

from django.contrib import admin

from stripe_events.admin_mirror import ReadOnlyAdminMixin

from ..models import BackfillRun, ReconciliationRun

# A reconciliation run's counts, in the list and in the run's page alike.
RUN_FINDINGS = (
    "missed_checkouts",
    "unfinished_onboardings",
    "failed_webhooks",
    "value_mismatches",
    "repaired",
    "for_staff",
)


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
