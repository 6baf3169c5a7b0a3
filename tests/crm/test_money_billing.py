"""Subscriptions, renewals, invoices, Payment Links and no-cost orders into the ledger and onboarding;
every history delivered twice and shuffled, compared with the sandbox's ledger."""

import pytest
from django.core import mail

from crm.models import Activity, Client, MoneyMovement, Onboarding, Payment
from provisioning.models import Workspace
from tests.support.money import DAY, T0, assert_matches_sandbox, deliver_shuffled, undelivered
from tests.support.pipeline import run_with_commit_hooks

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("anymail_outbox")]

Kind = MoneyMovement.Kind
Status = Onboarding.Status


def subscribe(pipeline, **fields):
    fields = {
        "service_id": "retainer",
        "amount": 50000,
        "currency": "eur",
        "mode": "subscription",
        "created": T0,
        **fields,
    }
    checkout = pipeline.checkout(**fields)
    return checkout, [event["id"] for event in checkout["events"]]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_subscription_checkout_and_its_first_invoice_are_one_payment(pipeline, retainer, seed):
    checkout, events = subscribe(pipeline)

    deliver_shuffled(pipeline, events, seed=seed)

    onboarding = Onboarding.objects.get()
    assert onboarding.status == Status.ONBOARDED and onboarding.client.invoiced_value == 50000
    [payment] = MoneyMovement.objects.filter(kind=Kind.PAYMENT)
    assert payment.stripe_id == checkout["session"]["invoice"] and payment.payment == Payment.objects.get()
    assert payment.subscription_id == checkout["session"]["subscription"]
    assert payment.settlement_net is not None
    assert len(mail.outbox) == 1
    assert_matches_sandbox(pipeline.sandbox)


def test_renewals_add_to_the_value_and_timeline_without_onboarding_again(pipeline, retainer):
    sandbox = pipeline.sandbox
    checkout, events = subscribe(pipeline)
    subscription_id = checkout["session"]["subscription"]
    events += undelivered(sandbox.renew_subscription(subscription_id, deliver=False))
    events += undelivered(sandbox.renew_subscription(subscription_id, deliver=False))

    deliver_shuffled(pipeline, events, seed=8)

    client = Client.objects.get()
    assert client.invoiced_value == 3 * 50000
    assert Onboarding.objects.count() == 1 and len(mail.outbox) == 1
    renewals = Activity.objects.filter(client=client, summary="Renewal payment of €500.00 recorded")
    assert renewals.count() == 2
    assert_matches_sandbox(sandbox)


def test_failed_renewal_puts_the_client_at_risk_until_paid(pipeline, retainer):
    sandbox = pipeline.sandbox
    checkout, events = subscribe(pipeline)
    failed = sandbox.renew_subscription(checkout["session"]["subscription"], fail=True, deliver=False)
    events += undelivered(failed)
    deliver_shuffled(pipeline, events, seed=9)

    client = Client.objects.get()
    assert client.lifecycle_status == Client.LifecycleStatus.AT_RISK and "Past due" in client.lifecycle_reason
    assert client.invoiced_value == 50000
    assert_matches_sandbox(sandbox)

    retried = sandbox.pay_invoice(failed["invoice"]["id"], deliver=False)
    deliver_shuffled(pipeline, undelivered(retried), seed=10)
    client.refresh_from_db()
    assert client.lifecycle_status == Client.LifecycleStatus.ACTIVE and client.invoiced_value == 100000
    assert_matches_sandbox(sandbox)


@pytest.mark.parametrize("seed", [1, 2])
def test_paid_standalone_invoice_for_an_unknown_customer_onboards(pipeline, retainer, seed):
    sandbox = pipeline.sandbox
    invoice = sandbox.create_invoice(
        amount=120000,
        service_id="retainer",
        currency="eur",
        email="Grace@Example.com",
        name="Grace",
        created=T0,
        deliver=False,
    )
    deliver_shuffled(pipeline, undelivered(invoice), seed=seed)

    onboarding = Onboarding.objects.get()
    assert onboarding.checkout_session_id == invoice["invoice"]["id"]
    assert (onboarding.source, onboarding.status) == (Onboarding.Source.INVOICE, Status.ONBOARDED)
    grace = Client.objects.get()
    assert (grace.email, grace.invoiced_value, grace.ordered_service) == (
        "grace@example.com",
        120000,
        retainer,
    )
    assert Workspace.objects.get(client=grace).status == Workspace.Status.READY and len(mail.outbox) == 1
    assert_matches_sandbox(sandbox)


def test_standalone_invoice_with_an_unknown_service_is_held(pipeline, retainer):
    invoice = pipeline.sandbox.create_invoice(
        amount=1000, service_id="nope", currency="eur", email="h@example.com", created=T0, deliver=False
    )
    deliver_shuffled(pipeline, undelivered(invoice), seed=1)
    onboarding = Onboarding.objects.get()
    assert (onboarding.status, onboarding.held_reason) == (Status.HELD, Onboarding.HeldReason.SERVICE_UNKNOWN)
    assert not Client.objects.exists() and not MoneyMovement.objects.exists()


def test_standalone_invoice_for_a_known_client_is_a_payment(pipeline, retainer):
    sandbox = pipeline.sandbox
    checkout, events = subscribe(pipeline)
    deliver_shuffled(pipeline, events, seed=1)
    invoice = sandbox.create_invoice(
        amount=7000,
        service_id="retainer",
        currency="eur",
        customer=checkout["session"]["customer"],
        created=T0 + DAY,
        deliver=False,
    )
    deliver_shuffled(pipeline, undelivered(invoice), seed=2)

    assert Onboarding.objects.count() == 1 and len(mail.outbox) == 1
    assert Client.objects.get().invoiced_value == 57000
    assert MoneyMovement.objects.get(stripe_id=invoice["invoice"]["id"]).billing_reason == "manual"
    assert_matches_sandbox(sandbox)


def test_payment_link_metadata_onboards_its_service(pipeline, retainer):
    sandbox = pipeline.sandbox
    link = sandbox.create_payment_link(service_id="retainer", amount=25000, currency="eur")["payment_link"]
    checkout = pipeline.checkout(payment_link=link["id"], service_id="ignored", created=T0)
    deliver_shuffled(pipeline, [event["id"] for event in checkout["events"]], seed=1)

    onboarding = Onboarding.objects.get()
    assert onboarding.status == Status.ONBOARDED and onboarding.service == retainer
    assert Client.objects.get().invoiced_value == 25000
    assert_matches_sandbox(sandbox)


@pytest.mark.parametrize("mode", ["payment", "subscription"])
def test_no_cost_order_onboards_with_value_zero(pipeline, retainer, mode):
    checkout, events = subscribe(pipeline, mode=mode, percent_off=100)
    assert checkout["session"]["payment_status"] == "no_payment_required"
    deliver_shuffled(pipeline, events, seed=1)

    onboarding = Onboarding.objects.get()
    assert onboarding.status == Status.ONBOARDED
    client = Client.objects.get()
    assert (client.invoiced_value, client.currency) == (0, "eur")
    assert_matches_sandbox(pipeline.sandbox)


@pytest.mark.parametrize("returning", [False, True], ids=["new client", "returning client"])
@pytest.mark.parametrize("first", ["invoice.paid", "checkout.session.completed"])
def test_first_invoice_of_a_subscription_checkout_counts_once_whichever_arrives_first(
    pipeline, retainer, first, returning
):
    """The first invoice's events (each twice) are worked before the session's, or after them."""
    sandbox = pipeline.sandbox
    earlier = 0
    if returning:  # a client we know already: invoice.paid finds it and records the payment itself
        deliver_shuffled(pipeline, subscribe(pipeline, mode="payment", amount=7000)[1], seed=1)
        earlier = 7000
    checkout, events = subscribe(pipeline, created=T0 + DAY)
    invoice_id = checkout["session"]["invoice"]
    leading = [e for e in events if sandbox.store.get("event", e)["type"] == first]
    assert leading

    deliver_shuffled(pipeline, leading, seed=2)
    deliver_shuffled(pipeline, [e for e in events if e not in leading], seed=3)

    client = Client.objects.get()
    assert client.invoiced_value == earlier + 50000
    [payment] = MoneyMovement.objects.filter(invoice_id=invoice_id)
    assert (payment.stripe_id, payment.counts, payment.client) == (invoice_id, True, client)
    assert payment.checkout_session_id == checkout["session"]["id"] and payment.payment is not None
    assert MoneyMovement.objects.filter(kind=Kind.PAYMENT, counts=True).count() == 1 + returning
    session_onboarding = Onboarding.objects.get(checkout_session_id=checkout["session"]["id"])
    assert session_onboarding.status == Status.ONBOARDED
    payment_lines = Activity.objects.filter(client=client, kind="payment", summary__contains="€500.00")
    assert payment_lines.count() == 1
    assert_matches_sandbox(sandbox)


def test_free_trial_onboards_with_value_zero_and_its_first_bill_adds_without_onboarding_again(
    pipeline, retainer
):
    sandbox = pipeline.sandbox
    checkout, events = subscribe(pipeline, trial_days=14)
    assert checkout["session"]["payment_status"] == "no_payment_required"
    deliver_shuffled(pipeline, events, seed=4)

    client = Client.objects.get()
    assert Onboarding.objects.get().status == Status.ONBOARDED and len(mail.outbox) == 1
    assert (client.invoiced_value, client.currency) == (0, "eur")
    assert Workspace.objects.get(client=client).status == Workspace.Status.READY
    assert_matches_sandbox(sandbox)

    billed = sandbox.renew_subscription(checkout["session"]["subscription"], deliver=False)
    deliver_shuffled(pipeline, undelivered(billed), seed=5)
    client.refresh_from_db()
    assert (client.invoiced_value, client.lifecycle_status) == (50000, Client.LifecycleStatus.ACTIVE)
    assert Onboarding.objects.count() == 1 and len(mail.outbox) == 1
    assert_matches_sandbox(sandbox)


@pytest.mark.parametrize(
    ("held_for", "invoice_fields", "reason"),
    [
        ("currency", {"currency": "chf"}, Onboarding.HeldReason.CURRENCY_NOT_ALLOWED),
        ("no service", {"service_id": ""}, Onboarding.HeldReason.SERVICE_MISSING),
        ("inactive service", {}, Onboarding.HeldReason.SERVICE_INACTIVE),
    ],
)
def test_held_standalone_invoice_is_approved_like_a_checkout_and_counted_once(
    pipeline, retainer, held_for, invoice_fields, reason
):
    from crm.services.staff import onboarding_approve

    sandbox = pipeline.sandbox
    if held_for == "inactive service":
        retainer.active = False
        retainer.save()
    fields = {"service_id": "retainer", "currency": "eur", **invoice_fields}
    invoice = sandbox.create_invoice(
        amount=30000, email="grace@example.com", name="Grace", created=T0, deliver=False, **fields
    )
    deliver_shuffled(pipeline, undelivered(invoice), seed=1)
    onboarding = Onboarding.objects.get()
    assert (onboarding.source, onboarding.status, onboarding.held_reason) == (
        Onboarding.Source.INVOICE,
        Status.HELD,
        reason,
    )
    assert not Client.objects.exists() and not MoneyMovement.objects.exists()

    if held_for == "inactive service":
        retainer.active = True
        retainer.save()
    supplied = retainer if held_for == "no service" else None
    outcome = run_with_commit_hooks(onboarding_approve, onboarding=onboarding, actor=None, service=supplied)
    assert outcome.startswith("Approved"), outcome
    pipeline.work()
    deliver_shuffled(pipeline, undelivered(invoice), seed=2)  # Stripe's retries after the approval

    onboarding.refresh_from_db()
    assert (onboarding.status, onboarding.service) == (Status.ONBOARDED, retainer)
    grace = Client.objects.get()
    assert (grace.invoiced_value, grace.currency) == (30000, fields["currency"])
    [payment] = MoneyMovement.objects.all()
    assert (payment.stripe_id, payment.counts) == (invoice["invoice"]["id"], True)
    assert len(mail.outbox) == 1
    assert_matches_sandbox(sandbox)
