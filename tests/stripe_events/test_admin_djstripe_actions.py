"""dj-stripe's custom-action URLs (resync, sync all, cancel) are closed: no staff POST reaches Stripe."""

import pytest
from django.contrib.auth.models import User
from django.urls import Resolver404, resolve
from djstripe.admin.views import ConfirmCustomAction
from djstripe.models import Customer

from tests.support.staff import staff_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("anymail_outbox")]

# model admin, action, model the action runs on: the forms dj-stripe's confirm pages post.
FORGED_ACTIONS = [
    ("customer", "_resync_instances", "customer"),
    ("customer", "_sync_all_instances", "customer"),
    ("subscription", "_cancel", "subscription"),
    # The view takes the model from the URL, so any registered admin's prefix would do.
    ("product", "_resync_instances", "customer"),
]


def staff_without_permissions() -> User:
    return User.objects.create_user("nobody@agency.example", password="pw-for-tests-123", is_staff=True)


def superuser() -> User:
    return User.objects.create_superuser("root@agency.example", "root@agency.example", "pw-for-tests-123")


@pytest.mark.parametrize(
    "make_user",
    [lambda: staff_user("Support"), lambda: staff_user("Operations"), staff_without_permissions, superuser],
    ids=["support", "operations", "no-permissions", "superuser"],
)
def test_forged_djstripe_action_posts_make_no_stripe_call(pipeline, sandbox, client, make_user):
    pipeline.pay_and_process()
    customer = Customer.objects.get()
    client.force_login(make_user())
    sandbox.reset_request_counts()

    for admin_model, action, model in FORGED_ACTIONS:
        url = f"/admin/djstripe/{admin_model}/action/{action}/{model}/"
        response = client.post(url, {"_selected_action": [str(customer.djstripe_id)]}, follow=True)
        messages = [str(m) for m in response.context["messages"]] if response.context else []
        assert not any("Success" in m for m in messages), (url, messages)

    assert sandbox.request_counts()["total"] == 0, sandbox.request_counts()


def test_no_admin_url_resolves_to_djstripe_action_view():
    for admin_model, action, model in FORGED_ACTIONS:
        path = f"/admin/djstripe/{admin_model}/action/{action}/{model}/"
        try:
            match = resolve(path)
        except Resolver404:
            continue
        assert getattr(match.func, "view_class", None) is not ConfirmCustomAction, path
