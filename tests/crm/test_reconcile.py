"""`manage.py reconcile_onboarding` finds every gap between Stripe and the CRM, and --fix closes it.

Gaps are planted the way they arise: a checkout whose webhook never arrived (the sandbox has the
events, nobody posted them), steps left waiting or given up, a webhook job that gave up, a tampered
lifetime value. Repairs run through the real worker code (run_queued_tasks).
"""

import math
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.db.migrations import RunPython
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone
from django_q.models import OrmQ, Schedule
from djstripe.models import Event

from core.retry import max_attempts
from crm import tasks
from crm.models import Activity, Client, Onboarding, ReconciliationRun
from provisioning.models import Workspace
from stripe_events.models import StripeWebhookJob
from tests.support.commands import reconcile
from tests.support.pipeline import run_queued_tasks

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("anymail_outbox")]

Status = Onboarding.Status
Step = Onboarding.StepStatus
MIGRATION = ("crm", "0007_reconcile_schedule")


def refs(report: dict, gap: str) -> list[str]:
    return [f["ref"] for f in report["findings"] if f["gap"] == gap]


def onboarding_for(email: str) -> Onboarding:
    return Onboarding.objects.get(client__email=email)


def stuck(onboarding: Onboarding, **fields) -> None:
    """Leave an onboarding as a dead worker or an exhausted retry would, two hours ago."""
    Onboarding.objects.filter(id=onboarding.id).update(
        onboarded_at=None, updated=timezone.now() - timedelta(hours=2), **fields
    )


def plant_gaps(pipeline, sandbox) -> dict:
    """One of each gap; returns what the assertions need."""
    # (a) Paid in Stripe, webhook never delivered.
    missed = pipeline.checkout(email="missed@example.com", name="Missed Payer", amount=25000)

    # (b) An email step waiting for a retry that never came, and a workspace step that gave up.
    pipeline.pay_and_process(email="stuck-email@example.com")
    stuck(
        onboarding_for("stuck-email@example.com"),
        status=Status.IN_PROGRESS,
        email_status=Step.RETRYING,
        email_attempts=2,
        email_last_error="AnymailAPIError: 503 from the ESP",
    )
    pipeline.pay_and_process(email="stuck-workspace@example.com")
    failed_workspace = onboarding_for("stuck-workspace@example.com")
    stuck(
        failed_workspace,
        status=Status.FAILED,
        workspace_status=Step.FAILED,
        workspace_attempts=6,
        workspace_last_error="ConnectionError: provisioning API down",
    )
    Workspace.objects.filter(client=failed_workspace.client).update(status=Workspace.Status.FAILED, url="")

    # (c) A delivered event whose processing failed until the job gave up.
    hook = pipeline.checkout(email="hook@example.com", name="Hook Payer")
    pipeline.deliver(hook["events"][0])
    sandbox.set_fault("*", "http_500", should_retry=False)
    pipeline.work()
    sandbox.clear_faults()
    job = StripeWebhookJob.objects.get(event_id=hook["events"][0]["id"])
    assert job.status == StripeWebhookJob.Status.RETRYING
    StripeWebhookJob.objects.filter(id=job.id).update(
        status=StripeWebhookJob.Status.FAILED, attempts=max_attempts(), next_attempt_at=None
    )

    # (d) A lifetime value that no longer matches the payments.
    pipeline.pay_and_process(email="tampered@example.com", amount=12345)
    Client.objects.filter(email="tampered@example.com").update(invoiced_value=99999)

    return {"missed": missed["session"]["id"], "hook": hook["session"]["id"], "job": job}


def crm_state() -> dict:
    """Everything reconciliation might change, to prove a report-only run changes nothing."""
    return {
        "onboardings": list(
            Onboarding.objects.order_by("id").values_list(
                "id", "status", "email_status", "workspace_status", "updated"
            )
        ),
        "jobs": list(StripeWebhookJob.objects.order_by("id").values_list("id", "status", "attempts")),
        "clients": list(Client.objects.order_by("id").values_list("id", "invoiced_value")),
        "workspaces": list(Workspace.objects.order_by("id").values_list("id", "status")),
        "activities": Activity.objects.count(),
        "events": Event.objects.count(),
        "queued_tasks": OrmQ.objects.count(),
        "emails": len(mail.outbox),
    }


def test_report_finds_every_gap_and_changes_nothing(pipeline, sandbox, service):
    gaps = plant_gaps(pipeline, sandbox)
    before = crm_state()
    sandbox.reset_request_counts()

    report = reconcile()

    assert report["counts"]["missed_checkout"] == 1
    assert refs(report, "missed_checkout") == [gaps["missed"]]
    unfinished = refs(report, "unfinished_onboarding")
    email_onboarding = onboarding_for("stuck-email@example.com")
    workspace_onboarding = onboarding_for("stuck-workspace@example.com")
    assert unfinished == [
        f"onboarding {email_onboarding.id} ({email_onboarding.checkout_session_id}, "
        "stuck-email@example.com) email",
        f"onboarding {workspace_onboarding.id} ({workspace_onboarding.checkout_session_id}, "
        "stuck-workspace@example.com) workspace",
    ]
    [job_ref] = refs(report, "failed_webhook")
    assert job_ref.startswith(f"job {gaps['job'].id} (checkout.session.completed {gaps['job'].event_id}")
    [value_ref] = refs(report, "value_mismatch")
    assert "tampered@example.com" in value_ref
    assert {f["state"] for f in report["findings"]} == {"open"}
    assert crm_state() == before
    # Only list requests: one page holds every checkout event here, one the cancellation events,
    # and one each for the ledger's invoices, refunds and disputes.
    assert sandbox.request_counts() == {
        "GET /v1/events": 2,
        "GET /v1/invoices": 1,
        "GET /v1/refunds": 1,
        "GET /v1/disputes": 1,
        "total": 5,
    }

    run = ReconciliationRun.objects.get(id=report["run_id"])
    assert (run.triggered_by, run.fixed, run.days) == ("command", False, 7)
    assert (run.missed_checkouts, run.unfinished_onboardings, run.failed_webhooks, run.value_mismatches) == (
        1,
        2,
        1,
        1,
    )
    assert run.finished and gaps["missed"] in run.report and "Summary:" in run.report


def test_fix_repairs_every_gap_and_a_second_run_finds_nothing(pipeline, sandbox, service):
    gaps = plant_gaps(pipeline, sandbox)

    report = reconcile("--fix")

    assert report["counts"]["repaired"] == 5, report["findings"]
    assert report["counts"]["for_staff"] == 0
    run_queued_tasks()

    # (a) The missed checkout went through dj-stripe and our receiver: client, payment, email, workspace.
    missed = Onboarding.objects.get(checkout_session_id=gaps["missed"])
    assert (missed.status, missed.email_status, missed.workspace_status) == (Status.ONBOARDED, "done", "done")
    assert Event.objects.filter(type="checkout.session.completed", data__object__id=gaps["missed"]).exists()
    payer = Client.objects.get(email="missed@example.com")
    assert payer.invoiced_value == 25000
    assert Workspace.objects.get(client=payer).status == Workspace.Status.READY
    assert "missed@example.com" in [message.to[0] for message in mail.outbox]
    # (b) The stuck steps finished, and so did their onboardings.
    for email in ("stuck-email@example.com", "stuck-workspace@example.com"):
        onboarding = onboarding_for(email)
        assert (onboarding.status, onboarding.email_status, onboarding.workspace_status) == (
            Status.ONBOARDED,
            "done",
            "done",
        )
    assert Workspace.objects.get(client__email="stuck-workspace@example.com").status == "ready"
    # (c) The failed job was reprocessed and onboarded its client.
    gaps["job"].refresh_from_db()
    assert gaps["job"].status == StripeWebhookJob.Status.SUCCEEDED
    assert Onboarding.objects.get(checkout_session_id=gaps["hook"]).status == Status.ONBOARDED
    # (d) The value is the sum of the payments again, and the timeline says so.
    tampered = Client.objects.get(email="tampered@example.com")
    assert tampered.invoiced_value == 12345
    assert tampered.activities.filter(summary__startswith="Lifetime value corrected").count() == 1

    again = reconcile("--fix")
    assert again["findings"] == [], again["findings"]
    assert list(ReconciliationRun.objects.values_list("fixed", "repaired")) == [(True, 0), (True, 5)]


def test_daily_schedule_makes_safe_repairs_and_leaves_what_gave_up_for_staff(pipeline, sandbox, service):
    gaps = plant_gaps(pipeline, sandbox)

    summary = tasks.reconcile_onboarding_daily()

    run = ReconciliationRun.objects.get()
    assert (run.triggered_by, run.fixed, run.days) == ("schedule", True, 7)
    assert summary in run.report
    # Safe: the missed event, the step waiting for a lost retry, the value. Not: what gave up.
    assert (run.repaired, run.for_staff) == (3, 2)
    assert "Left for staff (2):" in run.report
    assert f"job {gaps['job'].id}" in run.report.split("Left for staff")[1]
    run_queued_tasks()
    assert onboarding_for("stuck-email@example.com").status == Status.ONBOARDED
    assert onboarding_for("stuck-workspace@example.com").workspace_status == Step.FAILED
    assert StripeWebhookJob.objects.get(id=gaps["job"].id).status == StripeWebhookJob.Status.FAILED
    assert Onboarding.objects.get(checkout_session_id=gaps["missed"]).status == Status.ONBOARDED
    assert Client.objects.get(email="tampered@example.com").invoiced_value == 12345


def test_caught_up_checkout_that_needs_review_is_left_for_staff(pipeline, service):
    missed = pipeline.checkout(email="odd@example.com", service_id="not-sold-here")

    report = reconcile("--fix")

    [finding] = report["findings"]
    assert finding["state"] == "for_staff" and "Unknown service" in finding["outcome"]
    onboarding = Onboarding.objects.get(checkout_session_id=missed["session"]["id"])
    assert onboarding.status == Status.HELD
    Onboarding.objects.filter(id=onboarding.id).update(updated=timezone.now() - timedelta(hours=2))
    [held] = reconcile("--fix")["findings"]
    assert held["gap"] == "unfinished_onboarding" and held["state"] == "for_staff"


def test_lost_queue_message_is_requeued(pipeline, service):
    checkout = pipeline.checkout(email="lost@example.com")
    event_id = checkout["events"][0]["id"]
    last_message = OrmQ.objects.order_by("id").values_list("id", flat=True).last() or 0
    pipeline.deliver(checkout["events"][0])
    OrmQ.objects.filter(id__gt=last_message).delete()  # the queue message is lost; the job stays queued
    StripeWebhookJob.objects.filter(event_id=event_id).update(created=timezone.now() - timedelta(minutes=11))

    [finding] = reconcile("--fix")["findings"]

    assert finding["gap"] == "failed_webhook" and event_id in finding["ref"]
    assert finding["state"] == "repaired"
    run_queued_tasks()
    assert Onboarding.objects.get(checkout_session_id=checkout["session"]["id"]).status == Status.ONBOARDED


def test_events_scan_reads_pages_of_100_with_a_fixed_number_of_queries(
    sandbox, service, django_assert_max_num_queries
):
    sessions = 250
    sandbox.seed(count=sessions, service_id="website-care", currency="usd")
    sandbox.reset_request_counts()

    with django_assert_max_num_queries(20):
        report = reconcile()

    assert report["events_scanned"] == sessions
    assert report["counts"]["missed_checkout"] == sessions
    counts = sandbox.request_counts()
    assert counts["GET /v1/events"] == math.ceil(sessions / 100) + 1  # + the cancellations (none)
    assert counts["total"] == counts["GET /v1/events"] + 3  # + invoices, refunds, disputes (empty)


def test_events_outside_the_window_are_not_read(sandbox, service):
    eight_days_ago = int((timezone.now() - timedelta(days=8)).timestamp())
    sandbox.create_checkout(
        email="old@example.com",
        name="Old",
        service_id="website-care",
        amount=100,
        currency="usd",
        deliver=False,
        created=eight_days_ago,
    )
    assert reconcile()["events_scanned"] == 0
    assert reconcile("--days", "9")["counts"]["missed_checkout"] == 1


def test_migrations_create_the_daily_schedule_once(db):
    loader = MigrationLoader(connection)
    assert MIGRATION in loader.applied_migrations
    # Run the migration's RunPython again on its own historical models: a transactional test's
    # flush may have emptied the (reused) test database since it was migrated, and a second run
    # must not add a second schedule.
    [create] = [op for op in loader.get_migration(*MIGRATION).operations if isinstance(op, RunPython)]
    historical_apps = loader.project_state(MIGRATION).apps
    create.code(historical_apps, None)
    create.code(historical_apps, None)

    schedule = Schedule.objects.get(name="Daily onboarding reconciliation")
    assert schedule.func == "crm.tasks.reconcile_onboarding_daily"
    assert schedule.schedule_type == Schedule.DAILY
    assert schedule.repeats == -1 and schedule.next_run > timezone.now()


def test_runs_are_listed_read_only_in_the_admin(admin_client, sandbox):
    run = ReconciliationRun.objects.get(id=reconcile()["run_id"])

    changelist = admin_client.get("/admin/crm/reconciliationrun/")
    assert changelist.status_code == 200
    page = admin_client.get(f"/admin/crm/reconciliationrun/{run.id}/change/")
    assert page.status_code == 200 and "Summary:" in page.content.decode()
    assert admin_client.get("/admin/crm/reconciliationrun/add/").status_code == 403


def test_missed_async_payment_success_moves_an_awaiting_onboarding_on(pipeline, service):
    checkout = pipeline.checkout(email="slow@example.com", delayed="succeeded")
    completed, succeeded = checkout["events"]
    assert (completed["type"], succeeded["type"]) == (
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
    )
    # As if completed had been processed while the bank transfer was still pending.
    onboarding = Onboarding.objects.create(
        checkout_session_id=checkout["session"]["id"], status=Status.AWAITING_PAYMENT
    )

    [finding] = reconcile("--fix")["findings"]

    assert succeeded["id"] in finding["detail"] and "awaiting payment" in finding["detail"]
    assert finding["state"] == "repaired"
    run_queued_tasks()
    onboarding.refresh_from_db()
    assert onboarding.status == Status.ONBOARDED
