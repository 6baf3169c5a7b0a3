"""Reconcile compares Stripe's paid invoices, refunds and disputes (list requests) and its
cancellations (Events API) with the ledger: it reports what the ledger lacks or holds in another
status, and --fix records it once."""

import pytest

from crm.models import Client, MoneyMovement
from provisioning.models import Workspace
from tests.factories import ServiceFactory
from tests.support.commands import reconcile
from tests.support.money import assert_matches_sandbox, undelivered, work_all

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("anymail_outbox")]


def ledger_refs(report: dict) -> list[str]:
    return sorted(
        f["ref"]
        for f in report["findings"]
        if f["gap"] == "value_mismatch" and not f["ref"].startswith("client")
    )


def test_report_finds_refunds_and_disputes_the_ledger_missed_and_fix_records_them_once(pipeline, service):
    sandbox = pipeline.sandbox
    paid = pipeline.pay_and_process(email="ada@example.com", amount=10000)["session"]
    other = pipeline.pay_and_process(email="bob@example.com", amount=6000)["session"]
    work_all()
    # Money whose webhooks never arrived: a partial refund, a failed one, a lost dispute.
    refund = sandbox.refund(paid["id"], amount=2500, deliver=False)["refund"]
    failed = sandbox.refund(paid["id"], amount=500, fail=True, deliver=False)["refund"]
    dispute = undelivered(sandbox.dispute(other["id"], outcome="lost", deliver=False))
    assert dispute

    report = reconcile()
    missing = ledger_refs(report)
    assert f"refund {refund['id']}" in missing and f"refund {failed['id']}" in missing
    assert len([ref for ref in missing if ref.startswith("dispute ")]) == 1, missing
    assert len(missing) == 3
    assert MoneyMovement.objects.exclude(kind=MoneyMovement.Kind.PAYMENT).count() == 0  # report only
    assert Client.objects.get(email="ada@example.com").invoiced_value == 10000

    fixed = reconcile("--fix")
    assert (
        sorted(f["ref"] for f in fixed["findings"] if f["state"] == "repaired" and f["ref"] in missing)
        == missing
    )
    work_all()
    assert Client.objects.get(email="ada@example.com").invoiced_value == 10000 - 2500
    assert Client.objects.get(email="bob@example.com").invoiced_value == 0
    assert_matches_sandbox(sandbox)

    rows = MoneyMovement.objects.count()
    assert ledger_refs(reconcile()) == []
    assert MoneyMovement.objects.count() == rows


def test_a_cancellation_whose_webhook_never_arrived_is_found_and_fix_offboards_once(pipeline):
    ServiceFactory(service_id="retainer", name="Monthly retainer")
    sandbox = pipeline.sandbox
    checkout = pipeline.pay_and_process(email="ada@example.com", service_id="retainer", mode="subscription")
    subscription_id = checkout["session"]["subscription"]
    assert undelivered(sandbox.cancel_subscription(subscription_id, deliver=False))  # lost

    refs = [f["ref"] for f in reconcile()["findings"]]
    assert refs == [f"subscription {subscription_id}"]
    assert Client.objects.get().lifecycle_status == Client.LifecycleStatus.ACTIVE  # report only

    [finding] = reconcile("--fix")["findings"]
    assert finding["state"] == "repaired"
    work_all()
    ada = Client.objects.get()
    assert ada.lifecycle_status == Client.LifecycleStatus.CHURNED and "cancelled" in ada.lifecycle_reason
    assert Workspace.objects.get().status == Workspace.Status.SUSPENDED
    assert reconcile()["findings"] == []
    assert MoneyMovement.objects.filter(kind=MoneyMovement.Kind.CANCELLATION).count() == 1
