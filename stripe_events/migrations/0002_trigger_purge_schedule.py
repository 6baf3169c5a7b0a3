from datetime import UTC, datetime, time, timedelta

from django.db import migrations
from django.utils import timezone

SCHEDULE_NAME = "Purge old webhook bodies"
SCHEDULE_FUNC = "stripe_events.tasks.webhook_triggers_purge"
DAILY = "D"  # django_q.models.Schedule.DAILY


def schedule_create(apps, schema_editor):
    """Daily at 03:30 UTC, from tomorrow; an existing schedule keeps its time."""
    Schedule = apps.get_model("django_q", "Schedule")
    if Schedule.objects.filter(name=SCHEDULE_NAME).update(func=SCHEDULE_FUNC, schedule_type=DAILY):
        return
    tomorrow = timezone.now().date() + timedelta(days=1)
    Schedule.objects.create(
        name=SCHEDULE_NAME,
        func=SCHEDULE_FUNC,
        schedule_type=DAILY,
        repeats=-1,
        next_run=datetime.combine(tomorrow, time(3, 30), tzinfo=UTC),
    )


def schedule_delete(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("stripe_events", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(schedule_create, schedule_delete)]
