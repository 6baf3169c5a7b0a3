"""The client portal: set a password from the welcome link, sign in by email, see only your own things."""

import time
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import AbstractUser

from crm.models import Client, Service
from provisioning.links import set_password_url
from provisioning.models import Workspace
from tests.factories import (
    ClientFactory,
    OnboardingFactory,
    PaymentFactory,
    ServiceFactory,
    UserFactory,
    WorkspaceFactory,
)

PASSWORD = "correct-horse-battery-staple"
NEW_PASSWORD = "a-much-longer-new-secret-42"
PAID_AT = datetime(2026, 11, 1, tzinfo=UTC)


def portal_user_create(email: str, *, password: str | None = PASSWORD) -> AbstractUser:
    """A portal login; password=None leaves it unusable, as the welcome email creates them."""
    return UserFactory(username=email, password=password)


def workspace_create(client: Client, service: Service) -> Workspace:
    """A ready workspace whose URL is its portal page."""
    workspace = WorkspaceFactory(client=client, service=service, status=Workspace.Status.READY)
    workspace.url = f"http://testserver/portal/workspaces/{workspace.id}/"
    workspace.save(update_fields=["url"])
    return workspace


@pytest.fixture
def seo(db) -> Service:
    return ServiceFactory(service_id="seo-audit", name="SEO audit")


@pytest.fixture
def ada(seo) -> Client:
    """A client with a ready workspace and two payments."""
    client = ClientFactory(email="ada@example.com", name="Ada", user=portal_user_create("ada@example.com"))
    translation = ServiceFactory(service_id="translation", name="Japanese translation")
    OnboardingFactory(client=client, service=seo)
    workspace_create(client, seo)
    PaymentFactory(client=client, service=seo, amount=12345, currency="usd", paid_at=PAID_AT)
    PaymentFactory(client=client, service=translation, amount=1234, currency="jpy", paid_at=PAID_AT)
    return client


@pytest.fixture
def bob(seo) -> Client:
    client = ClientFactory(email="bob@example.com", name="Bob", user=portal_user_create("bob@example.com"))
    workspace_create(client, seo)
    return client


def relative(url: str, settings) -> str:
    assert url.startswith(f"{settings.SITE_URL}/portal/set-password/")
    return url.removeprefix(settings.SITE_URL)


def test_set_password_link_works_once_and_signs_the_client_in(client, db, settings):
    user = portal_user_create("new@example.com", password=None)
    ClientFactory(email="new@example.com", user=user)
    link = relative(set_password_url(user), settings)

    form_page = client.get(link, follow=True)
    assert form_page.status_code == 200
    assert form_page.context["validlink"] is True
    response = client.post(
        form_page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )

    assert response.status_code == 302
    assert response.url == "/portal/"
    home = client.get("/portal/")
    assert home.status_code == 200
    assert "Your password is set and you are signed in." in home.text
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)

    client.logout()
    used = client.get(link, follow=True)
    assert used.context["validlink"] is False
    assert "This link has expired or was already used" in used.text


def test_expired_set_password_link_is_refused_with_what_to_do(client, db, settings):
    settings.PASSWORD_RESET_TIMEOUT = 1
    user = portal_user_create("late@example.com", password=None)
    link = relative(set_password_url(user), settings)
    time.sleep(2)

    response = client.get(link, follow=True)

    assert response.context["validlink"] is False
    assert "This link has expired or was already used" in response.text
    assert "/portal/login/" in response.text


def test_login_with_email_in_any_case_shows_workspace_services_and_amounts(client, ada, bob):
    logo = ServiceFactory(service_id="logo-design", name="Logo design")
    OnboardingFactory(client=bob, service=logo)
    bobs_workspace = workspace_create(bob, logo)
    PaymentFactory(client=bob, service=logo, amount=77777, currency="usd")

    response = client.post("/portal/login/", {"username": "  Ada@Example.COM ", "password": PASSWORD})

    assert response.status_code == 302
    assert response.url == "/portal/"
    home = client.get("/portal/")
    assert home.status_code == 200
    workspace = ada.workspaces.get()
    assert f'href="{workspace.url}"' in home.text
    assert "SEO audit" in home.text
    assert "Japanese translation" in home.text
    assert "$123.45" in home.text
    assert "¥1,234" in home.text
    assert "¥1,234.00" not in home.text
    # Another client's workspaces, services and payments never show.
    assert bobs_workspace.url not in home.text and bob.workspaces.first().url not in home.text
    assert "Logo design" not in home.text and "$777.77" not in home.text


def test_login_form_labels_the_username_as_email(client, db):
    response = client.get("/portal/login/")

    assert response.status_code == 200
    assert "Email" in response.text


def test_wrong_password_is_refused(client, ada):
    response = client.post("/portal/login/", {"username": "ada@example.com", "password": "nope"})

    assert response.status_code == 200
    assert response.context["form"].errors
    assert "_auth_user_id" not in client.session


def test_client_sees_own_workspace_dashboard(client, ada):
    client.force_login(ada.user)
    workspace = ada.workspaces.get()

    response = client.get(f"/portal/workspaces/{workspace.id}/")

    assert response.status_code == 200
    assert "SEO audit" in response.text
    assert "Your workspace is ready" in response.text


def test_client_gets_404_for_another_clients_workspace(client, ada, bob):
    client.force_login(ada.user)

    response = client.get(f"/portal/workspaces/{bob.workspaces.get().id}/")

    assert response.status_code == 404


def test_user_without_a_client_gets_a_friendly_404(client, db, bob):
    client.force_login(portal_user_create("stranger@example.com"))

    home = client.get("/portal/")
    assert home.status_code == 404
    assert "not linked to a client account" in home.text
    assert client.get(f"/portal/workspaces/{bob.workspaces.get().id}/").status_code == 404


def test_portal_user_cannot_reach_the_admin(client, ada):
    client.force_login(ada.user)

    response = client.get("/admin/")

    assert response.status_code == 302
    assert response.url == "/admin/login/?next=/admin/"


@pytest.mark.parametrize("path", ["/portal/", "/portal/workspaces/1/"])
def test_anonymous_visitor_is_sent_to_portal_login(client, db, path):
    response = client.get(path)

    assert response.status_code == 302
    assert response.url == f"/portal/login/?next={path}"


def test_logout_signs_out_and_returns_to_login(client, ada):
    client.force_login(ada.user)

    response = client.post("/portal/logout/")

    assert response.status_code == 302
    assert response.url == "/portal/login/"
    assert client.get("/portal/").status_code == 302
