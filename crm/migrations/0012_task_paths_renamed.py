"""Scheduled task rows (retries, the daily reconciliation) name tasks by dotted path: rename moved ones.

Messages already in the queue still name the old paths; those stay importable as aliases
(crm.tasks, provisioning.tasks) until no row can name them.
"""

from django.db import migrations

RENAMED = {
    "crm.tasks.welcome_email_send": "crm.tasks.welcome_email_run",
    "provisioning.tasks.workspace_provision": "crm.tasks.workspace_step_run",
    "crm.tasks.webhook_job_process": "stripe_events.tasks.webhook_job_process",
}


def rename(apps, mapping):
    Schedule = apps.get_model("django_q", "Schedule")
    for old, new in mapping.items():
        Schedule.objects.filter(func=old).update(func=new)


def forwards(apps, schema_editor):
    rename(apps, RENAMED)


def backwards(apps, schema_editor):
    rename(apps, {new: old for old, new in RENAMED.items()})


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0011_stripewebhookjob_to_stripe_events"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
