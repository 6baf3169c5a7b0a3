"""Staff sessions end after hours of inactivity; a client's portal session keeps Django's two weeks."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.utils import timezone

from tests.support.staff import STAFF_PASSWORD, staff_user

pytestmark = pytest.mark.django_db


def test_staff_session_expires_after_the_idle_timeout_and_each_request_extends_it(client):
    staff = staff_user("Support")
    client.post("/admin/login/", {"username": staff.username, "password": STAFF_PASSWORD})
    assert client.get("/admin/").status_code == 200
    assert client.session.get_expiry_age() == settings.STAFF_SESSION_IDLE_SECONDS
    assert settings.STAFF_SESSION_IDLE_SECONDS < settings.SESSION_COOKIE_AGE

    # Idle for longer than the timeout: the stored session has expired, the admin asks to log in.
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_client_portal_session_keeps_the_default_age(client):
    User.objects.create_user("ada@example.com", password="a-long-client-pw-42")
    client.post("/portal/login/", {"username": "ada@example.com", "password": "a-long-client-pw-42"})
    client.get("/portal/")
    assert client.session.get_expiry_age() == settings.SESSION_COOKIE_AGE
