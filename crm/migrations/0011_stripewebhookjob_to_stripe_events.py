"""StripeWebhookJob now belongs to stripe_events (its 0001 took over the model and its table).

State only: the table crm_stripewebhookjob stays. The staff roles are restated with the
permission's new app label (the groups already hold the moved rows; this keeps the roles' code,
which tests rerun after a flush, true to the models).
"""

from django.db import migrations

SEE_EVERYTHING_APPS = ["crm", "stripe_events", "provisioning", "djstripe", "django_q"]
SUPPORT = {"crm.resend_welcome_email", "crm.add_activity"}
OPERATIONS = SUPPORT | {
    "crm.approve_onboarding",
    "crm.retry_provisioning",
    "stripe_events.reprocess_webhook",
    "crm.add_service",
    "crm.change_service",
    "crm.change_client",
}
ROLES = {"Support": SUPPORT, "Operations": OPERATIONS}


def assign_roles(apps):
    """Create or update the groups; tests call this again after a flush empties the tables."""
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view = Permission.objects.filter(
        content_type__app_label__in=SEE_EVERYTHING_APPS, codename__startswith="view_"
    )
    for name, codes in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        extra = [
            Permission.objects.get(content_type__app_label=code.split(".")[0], codename=code.split(".")[1])
            for code in sorted(codes)
        ]
        group.permissions.set([*view, *extra])


def roles_update(apps, schema_editor):
    # Nothing to do on a database without permissions yet (post_migrate creates them later).
    if apps.get_model("auth", "Permission").objects.filter(codename="reprocess_webhook").exists():
        assign_roles(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0010_email_step_takeover"),
        ("stripe_events", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="StripeWebhookJob")],
            database_operations=[],
        ),
        migrations.RunPython(roles_update, migrations.RunPython.noop),
    ]
