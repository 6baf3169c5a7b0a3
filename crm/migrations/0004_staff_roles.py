"""Create the staff roles as groups.

Support sees everything, resends welcome emails and writes notes; Operations can also approve or
reject held onboardings, retry provisioning, reprocess webhooks and edit services and clients.
Mirrored Stripe data is read-only for everyone (crm/admin_stripe.py), so neither role gets change
permissions on dj-stripe models.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

# Frozen here, as migrations must be: a later change of roles is a new migration.
SEE_EVERYTHING_APPS = ["crm", "provisioning", "djstripe", "django_q"]
SUPPORT = {"crm.resend_welcome_email", "crm.add_activity"}
OPERATIONS = SUPPORT | {
    "crm.approve_onboarding",
    "crm.retry_provisioning",
    "crm.reprocess_webhook",
    "crm.add_service",
    "crm.change_service",
    "crm.change_client",
}
ROLES = {"Support": SUPPORT, "Operations": OPERATIONS}


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations; make sure they exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    assign_roles(apps)


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


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0003_needs_review_queue"),
        ("provisioning", "0001_initial"),
        ("djstripe", "0003_2_11"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
