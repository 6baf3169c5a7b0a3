"""StripeWebhookJob moves here from crm with its table (crm_stripewebhookjob): state only.

The table, its rows, indexes and constraints stay as they are; crm 0011 drops the model from crm's
state. The content type is renamed (crm -> stripe_events) rather than recreated, so its permissions,
the `reprocess_webhook` permission the Support/Operations groups hold, and admin log entries keep
pointing at it.
"""

import django.db.models.deletion
from django.db import migrations, models

MODEL = "stripewebhookjob"


def content_type_move(apps, *, from_label: str, to_label: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    old = ContentType.objects.filter(app_label=from_label, model=MODEL).first()
    if old is None:
        return  # a database whose permissions were never created: post_migrate creates them
    stale = ContentType.objects.filter(app_label=to_label, model=MODEL).first()
    if stale is not None:
        # Created by a post_migrate in between; the groups hold the old rows, so those win.
        Permission.objects.filter(content_type=stale).delete()
        stale.delete()
    old.app_label = to_label
    old.save(update_fields=["app_label"])
    ContentType.objects.clear_cache()


def forwards(apps, schema_editor):
    content_type_move(apps, from_label="crm", to_label="stripe_events")


def backwards(apps, schema_editor):
    content_type_move(apps, from_label="stripe_events", to_label="crm")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("djstripe", "0003_2_11"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
        # The table exists (crm 0001) and crm's roles (0004) hold its permissions.
        ("crm", "0009_dashboard_window_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='StripeWebhookJob',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('event_id', models.CharField(db_index=True, max_length=255)),
                        ('event_type', models.CharField(max_length=250)),
                        ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('retrying', 'Waiting to retry'), ('succeeded', 'Succeeded'), ('failed', 'Failed (gave up)')], default='queued', max_length=16)),
                        ('attempts', models.PositiveIntegerField(default=0)),
                        ('last_error', models.TextField(blank=True)),
                        ('next_attempt_at', models.DateTimeField(blank=True, null=True)),
                        ('created', models.DateTimeField(auto_now_add=True)),
                        ('updated', models.DateTimeField(auto_now=True)),
                        ('trigger', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='job', to='djstripe.webhookeventtrigger')),
                    ],
                    options={
                        'db_table': 'crm_stripewebhookjob',
                        'ordering': ['-created'],
                        'permissions': [('reprocess_webhook', 'Can reprocess Stripe webhooks')],
                        'indexes': [models.Index(fields=['status', 'created'], name='crm_stripew_status_6c572e_idx')],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(forwards, backwards),
    ]
