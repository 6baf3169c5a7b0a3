"""Every welcome-email step ends in a state staff can act on: taken over, recorded, held or resendable."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.utils import timezone
from django_q.models import Schedule

from core.retry import abandoned_before
from crm.models import Client, Onboarding, Service
from crm.reconcile import Fix, reconciliation_run
from crm.services.emails import welcome_email_send
from crm.services.staff import onboarding_approve, welcome_email_resend
from tests.factories import ClientFactory
from tests.support.pipeline import run_queued_tasks, run_with_commit_hooks
from tests.support.staff import STAFF_PASSWORD, staff_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("service", "anymail_outbox")]

Status = Onboarding.Status
Step = Onboarding.StepStatus
Held = Onboarding.HeldReason


def left_running_by_a_dead_worker(onboarding: Onboarding, *, ago: timedelta) -> None:
    """The row as a worker SIGKILLed mid-send leaves it: claimed, running, never recorded."""
    claimed_at = timezone.now() - ago
    Onboarding.objects.filter(id=onboarding.id).update(
        email_status=Step.RUNNING, email_attempts=1, email_claimed_at=claimed_at, updated=claimed_at
    )


@pytest.fixture
def paid(pipeline):
    """A paid onboarding, workspace ready, whose welcome email is queued but not yet sent."""
    pipeline.pay_and_process()
    onboarding = Onboarding.objects.get()
    Onboarding.objects.filter(id=onboarding.id).update(
        status=Status.IN_PROGRESS, email_status=Step.PENDING, email_attempts=0, onboarded_at=None
    )
    mail.outbox.clear()
    onboarding.refresh_from_db()
    return onboarding


def test_send_abandoned_by_a_dead_worker_is_taken_over_after_the_queue_timeout(paid):
    left_running_by_a_dead_worker(paid, ago=timedelta(hours=2))

    assert welcome_email_send(onboarding_id=paid.id) == Step.DONE
    paid.refresh_from_db()
    assert (paid.email_status, paid.email_attempts, paid.status) == (Step.DONE, 2, Status.ONBOARDED)
    assert len(mail.outbox) == 1


def test_send_running_within_the_queue_timeout_is_left_to_its_worker(paid):
    left_running_by_a_dead_worker(paid, ago=timedelta(seconds=5))

    assert welcome_email_send(onboarding_id=paid.id) == Step.RUNNING
    assert mail.outbox == []


def test_message_id_is_stable_across_attempts_and_new_for_a_staff_resend(paid, settings):
    settings.DEFAULT_FROM_EMAIL = "Agency <hello@agency.example>"
    left_running_by_a_dead_worker(paid, ago=timedelta(hours=1))
    paid.refresh_from_db()
    welcome_email_send(onboarding_id=paid.id)
    first = mail.outbox[-1].extra_headers["Message-ID"]
    assert first == f"<welcome.{paid.id}.0@agency.example>"

    run_with_commit_hooks(welcome_email_resend, onboarding=paid, actor=None)
    run_queued_tasks()
    assert len(mail.outbox) == 2
    assert mail.outbox[-1].extra_headers["Message-ID"] == f"<welcome.{paid.id}.1@agency.example>"


def test_an_unexpected_error_is_recorded_and_retried_never_left_running(paid, settings):
    # A sender misconfigured with a line break: Django refuses the header (BadHeaderError, a
    # ValueError) when it builds the message, as its SMTP and locmem backends do.
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.DEFAULT_FROM_EMAIL = "Agency\n<hello@agency.example>"

    assert welcome_email_send(onboarding_id=paid.id) == Step.RETRYING
    paid.refresh_from_db()
    assert paid.email_status == Step.RETRYING
    assert "BadHeaderError" in paid.email_last_error
    assert Schedule.objects.filter(func="crm.tasks.welcome_email_run", args=repr((paid.id,))).exists()

    settings.DEFAULT_FROM_EMAIL = "Agency <hello@agency.example>"
    assert welcome_email_send(onboarding_id=paid.id) == Step.DONE


def test_subject_is_plain_text_on_one_line(paid):
    Service.objects.filter(id=paid.service_id).update(name="SEO & Ads")
    Client.objects.filter(id=paid.client_id).update(name="Miles O'Brien\n")

    welcome_email_send(onboarding_id=paid.id)
    assert mail.outbox[0].subject == "Welcome to SEO & Ads, Miles O'Brien"


def test_invalid_address_holds_the_onboarding_instead_of_running_forever(paid):
    Client.objects.filter(id=paid.client_id).update(email="not an address")

    assert welcome_email_send(onboarding_id=paid.id) == Step.REFUSED
    paid.refresh_from_db()
    assert (paid.status, paid.held_reason) == (Status.HELD, Held.EMAIL_REFUSED)
    assert "AnymailInvalidAddress" in paid.email_last_error


def test_payer_with_a_staff_email_is_held_for_review_not_retried(pipeline):
    staff = staff_user("Support")
    pipeline.pay_and_process(email=staff.username)

    onboarding = Onboarding.objects.get()
    assert (onboarding.status, onboarding.held_reason) == (Status.HELD, Held.EMAIL_LOGIN_CONFLICT)
    assert onboarding.email_status == Step.REFUSED and onboarding.email_attempts == 1
    assert not Schedule.objects.filter(func="crm.tasks.welcome_email_run").exists()
    assert User.objects.get(id=staff.id).check_password(STAFF_PASSWORD)  # the staff login is untouched
    assert mail.outbox == []

    # Staff correct the client's address, then approve: the email goes out and onboarding finishes.
    Client.objects.filter(id=onboarding.client_id).update(email="client-own@example.com")
    run_with_commit_hooks(onboarding_approve, onboarding=onboarding, actor=staff)
    run_queued_tasks()
    onboarding.refresh_from_db()
    assert (onboarding.status, onboarding.email_status) == (Status.ONBOARDED, Step.DONE)
    assert mail.outbox[0].to == ["client-own@example.com"]
    assert Client.objects.get().user.username == "client-own@example.com"


def test_email_taken_by_another_clients_login_is_held(pipeline):
    pipeline.pay_and_process(email="first@example.com")
    first = Client.objects.get()
    # Staff changed the first client's address; the old address pays again as a new client.
    Client.objects.filter(id=first.id).update(email="first-new@example.com")
    pipeline.pay_and_process(email="first@example.com")

    second = Onboarding.objects.get(client__email="first@example.com")
    assert (second.status, second.held_reason) == (Status.HELD, Held.EMAIL_LOGIN_CONFLICT)
    assert "another client" in second.email_last_error


@pytest.mark.parametrize("status", [Step.RUNNING, Step.RETRYING, Step.FAILED, Step.REFUSED, Step.DONE])
def test_staff_can_resend_from_any_state_with_a_client(paid, status):
    Onboarding.objects.filter(id=paid.id).update(email_status=status, email_claimed_at=timezone.now())

    assert run_with_commit_hooks(welcome_email_resend, onboarding=paid, actor=None) is True
    run_queued_tasks()
    paid.refresh_from_db()
    assert paid.email_status == Step.DONE
    assert len(mail.outbox) == 1


def test_a_send_overtaken_by_a_resend_does_not_overwrite_its_outcome(paid):
    """The first worker is slow, staff resend, the resend is sent; the first worker's late failure
    must not put the step back to retrying (and schedule a third email)."""
    left_running_by_a_dead_worker(paid, ago=timedelta(seconds=1))
    run_with_commit_hooks(welcome_email_resend, onboarding=paid, actor=None)
    run_queued_tasks()
    paid.refresh_from_db()
    assert paid.email_status == Step.DONE
    from crm.services.emails import welcome_email_record_failure

    stale = Onboarding.objects.get(id=paid.id)
    stale.email_attempts = 1  # what the first worker read after its claim
    welcome_email_record_failure(stale, error=OSError("connection reset"))
    paid.refresh_from_db()
    assert paid.email_status == Step.DONE
    assert not Schedule.objects.filter(func="crm.tasks.welcome_email_run").exists()


def test_reconcile_finds_and_repairs_a_stuck_send_of_any_age(paid):
    left_running_by_a_dead_worker(paid, ago=timedelta(days=40))
    Onboarding.objects.filter(id=paid.id).update(created=timezone.now() - timedelta(days=40))
    paid.refresh_from_db()
    assert paid.email_claimed_at < abandoned_before()

    _, report = run_with_commit_hooks(reconciliation_run, days=7, fix=Fix.SAFE)
    findings = [f for f in report.findings if f.ref.endswith(" email")]
    assert len(findings) == 1 and findings[0].state == "repaired", report.text()
    assert "resend" not in report.text()
    run_queued_tasks()
    paid.refresh_from_db()
    assert (paid.email_status, paid.status) == (Step.DONE, Status.ONBOARDED)
    assert len(mail.outbox) == 1


def test_resend_with_no_client_yet_does_nothing(db):
    onboarding = Onboarding.objects.create(checkout_session_id="cs_test_nothing", status=Status.HELD)
    assert welcome_email_resend(onboarding=onboarding, actor=None) is False
    ClientFactory()  # another client exists; still nothing to send for this onboarding
    assert welcome_email_resend(onboarding=onboarding, actor=None) is False
