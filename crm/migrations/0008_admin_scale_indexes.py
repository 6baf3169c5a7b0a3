"""Indexes for the admin at 100,000 clients and 300,000 payments (bench/admin_scale.py).

The changelists' orderings and date filters, the filters the dashboard's queues link to, the
onboarding email-prefix search and the Stripe customer id on payments: plain model indexes,
declared in Meta, valid on every database.

The client name search (`name__icontains`, i.e. UPPER(name) LIKE UPPER('%term%')) needs a
trigram GIN index, which only PostgreSQL has (with the pg_trgm extension). The test suite also
migrates SQLite, so that part is raw SQL run on PostgreSQL only, and the index stays out of
Client.Meta: declared there, makemigrations would emit an AddIndex that fails on SQLite. Nothing
in the model state refers to it, so `makemigrations --check` stays clean.
"""

from django.conf import settings
from django.db import migrations, models

TRIGRAM_INDEX = "client_name_trgm_idx"


def name_trigram_index_create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    # pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it.
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    # The expression must be the one Django's icontains compiles to: UPPER("name"::text).
    schema_editor.execute(
        f'CREATE INDEX IF NOT EXISTS {TRIGRAM_INDEX} ON crm_client USING gin (UPPER("name"::text) gin_trgm_ops)'
    )


def name_trigram_index_drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    # The extension stays: other objects may have come to use it.
    schema_editor.execute(f"DROP INDEX IF EXISTS {TRIGRAM_INDEX}")


class Migration(migrations.Migration):

    dependencies = [
        ('crm', '0007_reconcile_schedule'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name='client',
            index=models.Index(fields=['created', 'id'], name='client_created_idx'),
        ),
        migrations.AddIndex(
            model_name='onboarding',
            index=models.Index(fields=['created', 'id'], name='onboarding_created_idx'),
        ),
        migrations.AddIndex(
            model_name='onboarding',
            index=models.Index(fields=['held_reason', 'created'], name='onboarding_held_reason_idx'),
        ),
        migrations.AddIndex(
            model_name='onboarding',
            index=models.Index(fields=['email_status', 'created'], name='onboarding_email_status_idx'),
        ),
        migrations.AddIndex(
            model_name='onboarding',
            index=models.Index(fields=['workspace_status', 'created'], name='onboarding_workspace_st_idx'),
        ),
        migrations.AddIndex(
            model_name='onboarding',
            index=models.Index(fields=['customer_email'], name='onboarding_email_prefix_idx', opclasses=['varchar_pattern_ops']),
        ),
        migrations.AddIndex(
            model_name='payment',
            index=models.Index(fields=['paid_at', 'id'], name='payment_paid_at_idx'),
        ),
        migrations.AddIndex(
            model_name='payment',
            index=models.Index(fields=['stripe_customer_id'], name='payment_customer_idx'),
        ),
        migrations.RunPython(name_trigram_index_create, name_trigram_index_drop, elidable=False),
    ]
