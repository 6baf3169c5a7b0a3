"""Production settings: refuse to start without secrets, and pass `check --deploy`."""

import pytest

from tests.support.processes import PRODUCTION, manage


def test_production_settings_pass_check_deploy():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("missing", "extra"),
    [
        ("DJANGO_SECRET_KEY", {}),
        ("STRIPE_TEST_SECRET_KEY", {}),
        ("STRIPE_LIVE_SECRET_KEY", {"STRIPE_LIVE_MODE": "1"}),
    ],
)
def test_production_refuses_to_start_without_its_secrets(missing, extra):
    env = {k: v for k, v in {**PRODUCTION, **extra}.items() if k != missing}
    result = manage("check", env=env)
    assert result.returncode != 0
    assert f"{missing} must be set" in result.stderr


def test_development_check_shows_no_warning():
    result = manage("check", "--fail-level", "WARNING", env={"DJANGO_DEBUG": "1"})
    assert result.returncode == 0, result.stderr


def test_debug_defaults_to_off_so_a_bare_server_fails_closed():
    result = manage("check", env={})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


@pytest.mark.parametrize("backend", ["filebased", "console"])
def test_production_refuses_email_backends_that_deliver_nothing(backend):
    env = {**PRODUCTION, "EMAIL_BACKEND": f"django.core.mail.backends.{backend}.EmailBackend"}
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "delivers no email" in result.stderr
    # ... unless the operator says it is meant.
    assert manage("check", env={**env, "EMAIL_ALLOW_LOCAL_BACKEND": "1"}).returncode == 0


def test_production_without_an_email_backend_is_refused():
    env = {k: v for k, v in PRODUCTION.items() if k != "EMAIL_BACKEND"}
    assert "delivers no email" in manage("check", env=env).stderr


def test_production_does_not_install_the_stripe_sandbox():
    probe = "from django.conf import settings; print('stripe_sandbox' in settings.INSTALLED_APPS)"
    result = manage("shell", "-c", probe, env=PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "False"
