"""Sign-in protection: lockout after repeated failures, the portal's forgot-password, staff two-factor."""

import re

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from provisioning.models import PortalPasswordResetRequest
from tests.factories import ClientFactory, UserFactory
from tests.support.staff import STAFF_PASSWORD, staff_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("anymail_outbox")]

CLIENT_PASSWORD = "a-long-client-pw-42"


@pytest.fixture
def ada(db):
    user = UserFactory(username="ada@example.com", password=CLIENT_PASSWORD)
    ClientFactory(email="ada@example.com", name="Ada", user=user)
    return user


def portal_login(client, password, username="ada@example.com"):
    return client.post("/portal/login/", {"username": username, "password": password})


def admin_login(client, username, password, **extra):
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password, **extra})


@pytest.mark.parametrize("door", ["portal", "admin"])
def test_repeated_wrong_passwords_lock_the_login_even_for_the_right_one(client, ada, settings, door):
    staff = staff_user("Support")
    username, password = (
        ("ada@example.com", CLIENT_PASSWORD) if door == "portal" else (staff.username, STAFF_PASSWORD)
    )
    login = (
        portal_login if door == "portal" else (lambda c, p, username=username: admin_login(c, username, p))
    )

    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login(client, "wrong-password").status_code == 200  # the form again, with an error
    assert login(client, "wrong-password").status_code == 429
    response = login(client, password)
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("door", ["portal", "admin"])
def test_a_username_longer_than_axes_stores_is_refused_then_locked_out_not_a_500(client, settings, door):
    username = "x" * 300 + "@example.com"
    login = (
        (lambda p: portal_login(client, p, username))
        if door == "portal"
        else (lambda p: admin_login(client, username, p))
    )
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login("wrong-password").status_code == 200
    assert login("wrong-password").status_code == 429


def test_a_successful_login_before_the_limit_resets_the_count(client, ada, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        portal_login(client, "wrong-password")
    assert portal_login(client, CLIENT_PASSWORD).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        portal_login(client, "wrong-password")
    assert portal_login(client, CLIENT_PASSWORD).status_code == 302


def forgot(client, email):
    return client.post("/portal/forgot-password/", {"email": email}, follow=True)


def test_forgot_password_sends_a_working_link_to_a_client(client, ada):
    response = forgot(client, "  ADA@example.com ")
    assert b"Check your email" in response.content
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ada@example.com"]
    link = re.search(r"/portal/set-password/\S+/", mail.outbox[0].body).group(0)
    page = client.get(link, follow=True)
    assert page.context["validlink"]
    new = "another-long-pw-77"
    client.post(page.request["PATH_INFO"], {"new_password1": new, "new_password2": new})
    assert User.objects.get(id=ada.id).check_password(new)


def test_forgot_password_answers_the_same_for_unknown_and_staff_addresses(client, ada):
    staff = staff_user("Support")
    known = forgot(client, "ada@example.com").content
    unknown = forgot(client, "nobody@example.com").content
    staff_page = forgot(client, staff.username).content
    assert known == unknown == staff_page
    assert [m.to for m in mail.outbox] == [["ada@example.com"]]  # never a staff account's reset
    assert list(PortalPasswordResetRequest.objects.order_by("created").values_list("sent", flat=True)) == [
        True,
        False,
        False,
    ]


def test_forgot_password_is_rate_limited_per_address_and_per_ip(client, ada, settings):
    for _ in range(settings.PORTAL_RESET_LIMIT_PER_EMAIL + 2):
        forgot(client, "ada@example.com")
    assert len(mail.outbox) == settings.PORTAL_RESET_LIMIT_PER_EMAIL

    settings.PORTAL_RESET_LIMIT_PER_IP = PortalPasswordResetRequest.objects.count()
    ClientFactory(email="grace@example.com", user=UserFactory(username="grace@example.com"))
    forgot(client, "grace@example.com")  # a new address, but this IP is over its limit
    assert len(mail.outbox) == settings.PORTAL_RESET_LIMIT_PER_EMAIL


@pytest.fixture
def otp_on(settings):
    settings.STAFF_OTP_REQUIRED = True


def current_code(device: TOTPDevice, *, steps_ahead: int = 0) -> str:
    """The code the user's app shows now (or `steps_ahead` periods later: a code is accepted once,
    and the device tolerates one period of drift, so the next login uses the next period's code)."""
    t0 = device.t0 - steps_ahead * device.step
    return f"{totp(device.bin_key, step=device.step, t0=t0, digits=device.digits):0{device.digits}d}"


def test_operations_enrol_an_authenticator_on_first_login_then_need_its_code(client, otp_on):
    ops = staff_user("Operations")
    response = admin_login(client, ops.username, STAFF_PASSWORD)
    assert client.get("/admin/").status_code == 302  # signed in with the password only: no admin yet
    setup = client.get("/admin/login/", follow=True)
    assert setup.request["PATH_INFO"] == "/admin/two-factor/" and b"<svg" in setup.content
    device = TOTPDevice.objects.get(user=ops, confirmed=False)
    response = client.post("/admin/two-factor/", {"token": current_code(device)})
    assert response.status_code == 302 and client.get("/admin/").status_code == 200

    # Next time the code is part of the login itself.
    client.logout()
    device.refresh_from_db()
    assert device.confirmed
    page = admin_login(client, ops.username, STAFF_PASSWORD)  # the password alone
    assert page.status_code == 200 and b"enter your otp token" in page.content.lower()
    assert client.get("/admin/").status_code == 302
    device.refresh_from_db()
    response = admin_login(
        client,
        ops.username,
        STAFF_PASSWORD,
        otp_device=device.persistent_id,
        otp_token=current_code(device, steps_ahead=1),
    )
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_superusers_need_two_factor_and_support_does_not(client, otp_on):
    User.objects.create_superuser("root@agency.example", "root@agency.example", STAFF_PASSWORD)
    admin_login(client, "root@agency.example", STAFF_PASSWORD)
    assert client.get("/admin/").status_code == 302
    client.logout()

    support = staff_user("Support")
    admin_login(client, support.username, STAFF_PASSWORD)
    assert client.get("/admin/").status_code == 200


def test_two_factor_is_required_by_default_in_production():
    from tests.support.processes import PRODUCTION, manage

    result = manage(
        "shell", "-c", "from django.conf import settings; print(settings.STAFF_OTP_REQUIRED)", env=PRODUCTION
    )
    assert result.stdout.strip().splitlines()[-1] == "True", result.stderr


def test_a_wrong_code_does_not_enrol_the_device(client, otp_on):
    ops = staff_user("Operations")
    admin_login(client, ops.username, STAFF_PASSWORD)
    client.get("/admin/two-factor/")
    response = client.post("/admin/two-factor/", {"token": "000000"})
    assert response.status_code == 200 and b"not valid" in response.content
    assert not TOTPDevice.objects.filter(user=ops, confirmed=True).exists()
    assert client.get("/admin/").status_code == 302
