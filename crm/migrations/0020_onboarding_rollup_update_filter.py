"""The onboarding rollup trigger fires on an update only when a counted input changes
(crm/onboarding_rollups.py: a WHEN clause on a separate update trigger)."""

from django.db import migrations


def install_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    from crm.onboarding_rollups import TRIGGERS_SQL

    with schema_editor.connection.cursor() as cursor:  # replaces 0018's functions and triggers
        cursor.execute(TRIGGERS_SQL)


class Migration(migrations.Migration):
    dependencies = [("crm", "0019_subscription_mrr_totals")]

    operations = [migrations.RunPython(install_triggers, migrations.RunPython.noop)]
