"""The welcome email through Anymail's real Postmark backend, against Postmark at the network edge."""

import pytest
from django_q.models import Schedule

from crm.models import Onboarding
from crm.services.client_email import client_email_change
from crm.services.emails import welcome_email_send
from crm.services.staff import onboarding_approve
from tests.support.pipeline import run_queued_tasks, run_with_commit_hooks
from tests.support.staff import staff_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("service")]

Step = Onboarding.StepStatus


def test_esp_outage_then_recovery_sends_exactly_one_email(pipeline, postmark):
    postmark.fail_next(1, status=503)
    pipeline.pay_and_process(email="ada@example.com")

    onboarding = Onboarding.objects.get()
    assert (onboarding.email_status, onboarding.email_attempts) == (Step.RETRYING, 1)
    assert "503" in onboarding.email_last_error
    assert Schedule.objects.filter(func="crm.tasks.welcome_email_run", args=repr((onboarding.id,))).exists()
    assert postmark.messages == []

    assert welcome_email_send(onboarding_id=onboarding.id) == Step.DONE  # the scheduled retry
    assert welcome_email_send(onboarding_id=onboarding.id) == Step.DONE  # a duplicate run: no-op
    onboarding.refresh_from_db()
    assert len(postmark.messages) == 1
    message = postmark.messages[0]
    assert message["to"] == ["ada@example.com"]
    assert message["metadata"]["onboarding_id"] == str(onboarding.id)
    assert message["tag"] == "welcome"
    assert "/portal/set-password/" in message["html_body"]
    assert onboarding.email_message_id == message["message_id"]
    assert onboarding.status == Onboarding.Status.ONBOARDED


def test_refused_recipient_holds_the_onboarding_for_review(pipeline, postmark):
    postmark.refuse("bounce@example.com")
    pipeline.pay_and_process(email="bounce@example.com")

    onboarding = Onboarding.objects.get()
    assert onboarding.email_status == Step.REFUSED
    assert (onboarding.status, onboarding.held_reason) == (
        Onboarding.Status.HELD,
        Onboarding.HeldReason.EMAIL_REFUSED,
    )
    assert "bounce@example.com" in onboarding.held_detail
    assert not Schedule.objects.filter(func="crm.tasks.welcome_email_run").exists()


def test_staff_fix_a_refused_address_and_approve_then_the_email_goes_to_the_new_one(pipeline, postmark):
    postmark.refuse("ada@exmaple.com")
    pipeline.pay_and_process(email="ada@exmaple.com")  # a typo the provider refuses
    onboarding = Onboarding.objects.get()
    assert onboarding.held_reason == Onboarding.HeldReason.EMAIL_REFUSED
    operations = staff_user("Operations")

    run_with_commit_hooks(
        client_email_change, client=onboarding.client, email="ada@example.com", actor=operations
    )
    run_with_commit_hooks(onboarding_approve, onboarding=onboarding, actor=operations)
    run_queued_tasks()

    onboarding.refresh_from_db()
    assert (onboarding.status, onboarding.email_status) == (Onboarding.Status.ONBOARDED, Step.DONE)
    assert [message["to"] for message in postmark.messages] == [["ada@example.com"]]
    assert onboarding.email_message_id == postmark.messages[0]["message_id"]


def test_email_gives_up_after_the_retry_window(pipeline, postmark, settings):
    from core.retry import max_attempts

    settings.RETRY_WINDOW_HOURS = 0.1  # 30 s doubling: 5 attempts
    MAX_ATTEMPTS = max_attempts()
    postmark.fail_next(100)
    pipeline.pay_and_process()
    onboarding = Onboarding.objects.get()
    for _ in range(MAX_ATTEMPTS - 1):
        welcome_email_send(onboarding_id=onboarding.id)
    onboarding.refresh_from_db()
    assert (onboarding.email_status, onboarding.email_attempts) == (Step.FAILED, MAX_ATTEMPTS)
    assert onboarding.status == Onboarding.Status.FAILED
    assert welcome_email_send(onboarding_id=onboarding.id) == Step.FAILED
    assert postmark.messages == []
