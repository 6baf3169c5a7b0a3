"""Production settings for the tracking webhooks: mounted only behind ANYMAIL_WEBHOOK_SECRET."""

from tests.support.processes import PRODUCTION, manage

PROBE = (
    "from django.urls import resolve, Resolver404\n"
    "try:\n    print(resolve('/anymail/postmark/tracking/').func.view_class.__name__)\n"
    "except Resolver404:\n    print('not-mounted')"
)


def test_production_without_a_webhook_secret_mounts_no_tracking_webhooks():
    result = manage("shell", "-c", PROBE, env=PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "not-mounted"


def test_production_with_a_webhook_secret_mounts_them_and_passes_check_deploy():
    env = {**PRODUCTION, "ANYMAIL_WEBHOOK_SECRET": "postmark:long-random-secret"}
    result = manage("shell", "-c", PROBE, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "PostmarkTrackingWebhookView"
    deploy = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert deploy.returncode == 0, deploy.stderr


def test_a_webhook_secret_that_is_not_user_colon_password_is_refused():
    result = manage("check", env={**PRODUCTION, "ANYMAIL_WEBHOOK_SECRET": "no-colon"})
    assert result.returncode != 0
    assert "ANYMAIL_WEBHOOK_SECRET must be user:password" in result.stderr
