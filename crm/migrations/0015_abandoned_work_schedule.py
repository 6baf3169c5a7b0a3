"""Every minute, work abandoned by a dead worker goes back to the queue (crm.reconcile.abandoned_work_requeue);
the workspace step gets its own claim time, as the email step has."""

from django.db import migrations, models
from django.db.models import F
from django.utils import timezone

SCHEDULE_NAME = "Requeue work abandoned by a worker"
SCHEDULE_FUNC = "crm.tasks.requeue_abandoned_work"
MINUTES = "I"  # django_q.models.Schedule.MINUTES (historical models have no class constants)


def schedule_create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={
            "func": SCHEDULE_FUNC,
            "schedule_type": MINUTES,
            "minutes": 1,
            "repeats": -1,
            "next_run": timezone.now(),
        },
    )


def running_workspaces_claimed_when_last_updated(apps, schema_editor):
    """A provision left running before this migration started no later than the row's last update."""
    Onboarding = apps.get_model("crm", "Onboarding")
    Onboarding.objects.filter(workspace_status="running", workspace_claimed_at__isnull=True).update(
        workspace_claimed_at=F("updated")
    )


def schedule_delete(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0014_money_ledger"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.AddField(
            model_name="onboarding",
            name="workspace_claimed_at",
            field=models.DateTimeField(
                blank=True, help_text="When the current (or last) provisioning attempt started", null=True
            ),
        ),
        migrations.RunPython(running_workspaces_claimed_when_last_updated, migrations.RunPython.noop),
        migrations.RunPython(schedule_create, schedule_delete),
    ]
