"""A client's email change moves their portal login with it and retires links sent before."""

import re

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.core.exceptions import ValidationError

from crm.models import Activity, Client, Onboarding
from crm.services.client_email import client_email_change
from crm.services.staff import welcome_email_resend
from tests.factories import ClientFactory
from tests.support.pipeline import run_queued_tasks, run_with_commit_hooks
from tests.support.staff import staff_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("service", "anymail_outbox")]


def set_password_link(message) -> str:
    return re.search(r"/portal/set-password/\S+/", message.body).group(0)


def test_fixing_a_mistyped_email_moves_the_login_and_retires_the_old_link(pipeline, client):
    pipeline.pay_and_process(email="ada@exmaple.com")  # a typo: the welcome email went nowhere useful
    ada = Client.objects.get()
    stale_link = set_password_link(mail.outbox[0])
    operations = staff_user("Operations")

    run_with_commit_hooks(client_email_change, client=ada, email=" Ada@Example.com ", actor=operations)
    user = User.objects.get(id=ada.user_id)
    assert (user.username, user.email) == ("ada@example.com", "ada@example.com")
    assert Activity.objects.filter(client=ada, actor=operations, summary__startswith="Email changed").exists()

    assert not client.get(stale_link, follow=True).context["validlink"]
    run_with_commit_hooks(welcome_email_resend, onboarding=Onboarding.objects.get(), actor=operations)
    run_queued_tasks()
    assert mail.outbox[-1].to == ["ada@example.com"]
    page = client.get(set_password_link(mail.outbox[-1]), follow=True)
    assert page.context["validlink"]
    client.post(
        page.request["PATH_INFO"], {"new_password1": "a-long-pw-4242", "new_password2": "a-long-pw-4242"}
    )
    client.logout()
    signed_in = client.post("/portal/login/", {"username": "ada@example.com", "password": "a-long-pw-4242"})
    assert signed_in.status_code == 302


def test_an_email_taken_by_another_client_or_a_staff_login_is_refused(pipeline):
    pipeline.pay_and_process(email="ada@example.com")
    ada = Client.objects.get()
    ClientFactory(email="grace@example.com")
    staff = staff_user("Support")
    for taken in ("grace@example.com", staff.username):
        with pytest.raises(ValidationError):
            client_email_change(client=ada, email=taken, actor=None)
    ada.refresh_from_db()
    assert ada.email == "ada@example.com" and User.objects.get(id=ada.user_id).username == "ada@example.com"


def test_editing_the_email_in_the_admin_moves_the_login(pipeline, client):
    pipeline.pay_and_process(email="ada@exmaple.com")
    ada = Client.objects.get()
    client.force_login(staff_user("Operations"))
    url = f"/admin/crm/client/{ada.id}/change/"
    form = {"email": "Ada@Example.com", "name": ada.name, "ordered_service": ada.ordered_service_id}
    for prefix in ("payments", "onboardings", "workspaces"):
        form.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    response = client.post(url, form)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    assert User.objects.get(id=ada.user_id).username == "ada@example.com"
    assert Activity.objects.filter(client=ada, summary__startswith="Email changed").exists()


def test_the_admin_refuses_an_email_that_is_a_staff_login(pipeline, client):
    pipeline.pay_and_process(email="ada@example.com")
    ada = Client.objects.get()
    ops = staff_user("Operations")
    client.force_login(ops)
    form = {"email": ops.username, "name": ada.name, "ordered_service": ada.ordered_service_id}
    for prefix in ("payments", "onboardings", "workspaces"):
        form.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    response = client.post(f"/admin/crm/client/{ada.id}/change/", form)
    assert response.status_code == 200 and "staff account" in str(response.context["adminform"].form.errors)
    ada.refresh_from_db()
    assert ada.email == "ada@example.com"
