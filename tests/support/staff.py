"""Staff users in the roles the migrations create."""

import importlib

from django.apps import apps as django_apps
from django.contrib.auth.models import Group, User

STAFF_PASSWORD = "pw-for-tests-123"


def staff_user(role: str, *, username: str = "") -> User:
    """A staff user in the "Support" or "Operations" group made by crm/migrations/0004_staff_roles.py
    (restated in 0011).

    A transaction=True test ends by flushing every table, groups included, and a reused test
    database does not rerun data migrations, so the migration's own code recreates the groups.
    """
    importlib.import_module("crm.migrations.0011_stripewebhookjob_to_stripe_events").assign_roles(django_apps)
    username = username or f"{role.lower()}@agency.example"
    user = User.objects.create_user(username, password=STAFF_PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user
