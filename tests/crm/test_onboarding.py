"""A paid checkout becomes a client, a payment, one welcome email and one workspace.

Signed webhooks from the Stripe sandbox go into the real view; the worker's task code runs them.
"""

import itertools
import re

import pytest
from django.core import mail
from djstripe.models import Session

from core.money import format_money
from crm.models import Client, Onboarding, Payment
from provisioning.models import Workspace
from tests.factories import ServiceFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("anymail_outbox")]

Status = Onboarding.Status
Held = Onboarding.HeldReason


def set_password_link(message) -> str:
    return re.search(r"http://testserver(/portal/set-password/\S+/)", message.body).group(1)


def test_paid_checkout_onboards_client_with_email_and_workspace(pipeline, service, client):
    checkout = pipeline.pay_and_process(
        email="  Ada.Lovelace@Example.COM ", name="Ada Lovelace", amount=49900, currency="usd"
    )

    session_id = checkout["session"]["id"]
    ada = Client.objects.get()
    assert ada.email == "ada.lovelace@example.com"
    assert ada.name == "Ada Lovelace"
    assert (ada.invoiced_value, ada.currency) == (49900, "usd")
    assert ada.ordered_service == service
    assert ada.stripe_customer_id == checkout["session"]["customer"]
    payment = Payment.objects.get()
    assert (payment.client, payment.checkout_session_id, payment.amount) == (ada, session_id, 49900)
    assert payment.payment_intent_id == checkout["session"]["payment_intent"]

    onboarding = Onboarding.objects.get()
    assert (onboarding.status, onboarding.email_status, onboarding.workspace_status) == (
        Status.ONBOARDED,
        "done",
        "done",
    )
    workspace = Workspace.objects.get()
    assert (workspace.client, workspace.service, workspace.status) == (ada, service, "ready")
    assert workspace.url.endswith(f"/portal/workspaces/{workspace.id}/")

    [message] = mail.outbox
    assert message.to == ["ada.lovelace@example.com"]
    assert "Ada Lovelace" in message.body and "Website Care Plan" in message.body
    assert "log in at http://testserver/portal/ with ada.lovelace@example.com" in message.body
    html = message.alternatives[0][0]
    assert "Website Care Plan" in html and set_password_link(message) in html
    assert message.tags == ["welcome"]
    assert message.metadata["service_id"] == "website-care"
    assert message.metadata["onboarding_id"] == str(onboarding.id)
    assert not re.search(r"password\s*[:=]", message.body, re.IGNORECASE)  # a link, never a password
    assert ada.user is not None and not ada.user.has_usable_password()

    # The link lets the client set a password, then log in and see the workspace.
    link = set_password_link(message)
    form_page = client.get(link, follow=True)
    assert form_page.status_code == 200
    response = client.post(
        form_page.redirect_chain[-1][0] if form_page.redirect_chain else link,
        {"new_password1": "a-Long-portal-pass-42", "new_password2": "a-Long-portal-pass-42"},
    )
    assert response.status_code == 302
    client.logout()
    signed_in = client.post(
        "/portal/login/", {"username": "ada.lovelace@example.com", "password": "a-Long-portal-pass-42"}
    )
    assert signed_in.status_code == 302
    home = client.get("/portal/")
    assert "Website Care Plan" in home.content.decode() and "$499.00" in home.content.decode()
    # The link works once.
    client.logout()
    assert b"expired or was already used" in client.get(link, follow=True).content


def test_onboarding_reads_the_session_as_dj_stripe_synced_it(pipeline, service, sandbox):
    checkout = pipeline.checkout(email="grace@example.com", name="Grace")
    event = checkout["events"][0]
    # The event body claims another email; the synced session (retrieved from Stripe) wins.
    event["data"]["object"]["customer_details"]["email"] = "forged@example.com"
    pipeline.deliver(event)
    pipeline.work()
    assert Session.objects.filter(id=checkout["session"]["id"]).exists()
    assert list(Client.objects.values_list("email", flat=True)) == ["grace@example.com"]


def set_sandbox_payment_status(sandbox, session_id: str, payment_status: str) -> None:
    """Put Stripe's side of the session in the state it has before the delayed payment settles."""
    with sandbox.store.lock:
        sandbox.store.get("checkout.session", session_id)["payment_status"] = payment_status


def test_unpaid_checkout_waits_for_async_payment_succeeded(pipeline, service, sandbox):
    checkout = pipeline.checkout(delayed="succeeded")
    completed, succeeded = checkout["events"]
    assert completed["data"]["object"]["payment_status"] == "unpaid"
    session_id = checkout["session"]["id"]

    set_sandbox_payment_status(sandbox, session_id, "unpaid")
    pipeline.deliver(completed)
    pipeline.work()
    onboarding = Onboarding.objects.get()
    assert onboarding.status == Status.AWAITING_PAYMENT
    assert not Client.objects.exists() and not mail.outbox and not Workspace.objects.exists()

    set_sandbox_payment_status(sandbox, session_id, "paid")
    pipeline.deliver(succeeded)
    pipeline.work()
    onboarding.refresh_from_db()
    assert onboarding.status == Status.ONBOARDED
    assert len(mail.outbox) == 1 and Workspace.objects.count() == 1


def test_async_payment_failed_records_failure_and_onboards_nothing(pipeline, service):
    checkout = pipeline.checkout(delayed="failed")
    for event in checkout["events"]:
        pipeline.deliver(event)
    pipeline.work()

    onboarding = Onboarding.objects.get()
    assert onboarding.status == Status.PAYMENT_FAILED
    assert "failed" in onboarding.held_detail
    assert not Client.objects.exists() and not Payment.objects.exists()
    assert not mail.outbox and not Workspace.objects.exists()


@pytest.mark.parametrize(
    ("checkout_fields", "settings_changes", "reason"),
    [
        ({"currency": "chf"}, {}, Held.CURRENCY_NOT_ALLOWED),
        ({"livemode": True}, {}, Held.LIVEMODE_MISMATCH),
        ({}, {"STRIPE_LIVE_MODE": True}, Held.LIVEMODE_MISMATCH),
        ({"service_id": ""}, {}, Held.SERVICE_MISSING),
        ({"service_id": "no-such-service"}, {}, Held.SERVICE_UNKNOWN),
        ({"service_id": "retired"}, {}, Held.SERVICE_INACTIVE),
        ({"email": None}, {}, Held.EMAIL_MISSING),
        # Longer than the columns: held with the whole value in the detail, never a failing INSERT.
        ({"email": "a" * 250 + "@example.com"}, {}, Held.EMAIL_MISSING),
        ({"service_id": "s" * 150}, {}, Held.SERVICE_UNKNOWN),
    ],
)
def test_checkout_is_held_for_review(pipeline, service, settings, checkout_fields, settings_changes, reason):
    ServiceFactory(service_id="retired", name="Retired", active=False)
    if checkout_fields.get("livemode"):
        settings.STRIPE_LIVE_SECRET_KEY = "sk_live_offlineSandboxKeyForLaptopsOnly000000"
    for name, value in settings_changes.items():
        setattr(settings, name, value)

    pipeline.pay_and_process(**checkout_fields)

    onboarding = Onboarding.objects.get()
    assert (onboarding.status, onboarding.held_reason) == (Status.HELD, reason)
    assert onboarding.held_detail
    assert not mail.outbox and not Workspace.objects.exists() and not Payment.objects.exists()


def test_a_name_longer_than_the_crm_keeps_onboards_with_the_name_cut_to_fit(pipeline, service):
    """Checkout takes longer names than the CRM's 200 characters: the onboarding's INSERT failed
    on every retry, so the client was never onboarded (found by the backfill's page test)."""
    long_name = "Dr. " + "Verylongname " * 20  # 264 characters
    pipeline.pay_and_process(name=long_name)

    onboarding = Onboarding.objects.get()
    assert onboarding.status == Status.ONBOARDED
    client = Client.objects.get()
    assert client.name == onboarding.customer_name == long_name[:200].strip()


def test_payment_in_another_currency_than_the_clients_is_not_held(pipeline, service):
    pipeline.pay_and_process(email="ada@example.com", currency="eur", amount=1000, created=1_767_225_600)
    pipeline.pay_and_process(email="ada@example.com", currency="usd", amount=700, created=1_767_225_700)
    assert list(Onboarding.objects.values_list("status", flat=True)) == [Status.ONBOARDED] * 2
    ada = Client.objects.get()
    assert (ada.currency, ada.invoiced_value) == ("eur", 1000)  # the first currency's net


def test_returning_client_second_purchase_updates_the_same_client(pipeline, service):
    other = ServiceFactory(service_id="seo-audit", name="SEO audit")
    pipeline.pay_and_process(email="ada@example.com", amount=10000, service_id="website-care")
    pipeline.pay_and_process(email="ADA@example.com ", amount=2550, service_id="seo-audit", name="Ada L.")

    ada = Client.objects.get()
    assert ada.invoiced_value == 12550
    assert ada.ordered_service == other and ada.name == "Ada L."
    assert Payment.objects.filter(client=ada).count() == 2
    assert Onboarding.objects.filter(client=ada, status=Status.ONBOARDED).count() == 2
    assert Workspace.objects.filter(client=ada).count() == 2
    assert len(mail.outbox) == 2


def test_zero_decimal_currency_is_recorded_in_its_own_units(pipeline, service, client):
    pipeline.pay_and_process(email="kenji@example.jp", amount=5000, currency="jpy")
    kenji = Client.objects.get()
    assert (kenji.invoiced_value, kenji.currency) == (5000, "jpy")
    assert format_money(kenji.invoiced_value, kenji.currency) == "¥5,000"


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_any_order_and_repetition_of_the_three_events_gives_one_onboarding(pipeline, service, order):
    succeeded = pipeline.checkout(delayed="succeeded")["events"]
    failed_event = pipeline.checkout(email="other@example.com", delayed="failed")["events"][1]
    # The same session's completed + succeeded, with a stray failed event of another session.
    events = [succeeded[0], succeeded[1], failed_event]
    for index in order:
        # Every delivery twice, the worker running after each: a later delivery meets a decided onboarding.
        for _ in range(2):
            pipeline.deliver(events[index])
            pipeline.work()

    assert Client.objects.count() == 1 and Payment.objects.count() == 1
    assert Client.objects.get().invoiced_value == 49900  # valued once
    assert len(mail.outbox) == 1 and Workspace.objects.count() == 1
    statuses = dict(Onboarding.objects.values_list("customer_email", "status"))
    assert statuses == {"ada@example.com": Status.ONBOARDED, "other@example.com": Status.PAYMENT_FAILED}


def test_welcome_email_templates_can_be_overridden_per_service(pipeline, service, settings, tmp_path):
    override = tmp_path / "emails" / "welcome"
    override.mkdir(parents=True)
    (override / "website-care.txt").write_text(
        "Care plan welcome for {{ client.name }}: {{ set_password_url }}"
    )
    (override / "website-care.html").write_text(
        "<p>Care plan welcome</p><a href='{{ set_password_url }}'>Set</a>"
    )
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path, *settings.TEMPLATES[0]["DIRS"]]}]
    ServiceFactory(service_id="seo-audit", name="SEO audit")

    pipeline.pay_and_process(email="care@example.com", name="Carla", service_id="website-care")
    pipeline.pay_and_process(email="seo@example.com", name="Sam", service_id="seo-audit")

    care, seo = sorted(mail.outbox, key=lambda m: m.to[0])
    assert care.body.startswith("Care plan welcome for Carla: http://testserver/portal/set-password/")
    assert "Care plan welcome" in care.alternatives[0][0]
    assert seo.body.startswith("Hello Sam,") and "SEO audit" in seo.body  # the default template


def test_a_service_without_a_welcome_email_onboards_with_the_email_step_skipped(pipeline):
    ServiceFactory(send_welcome_email=False)
    pipeline.pay_and_process()

    onboarding = Onboarding.objects.get()
    assert (onboarding.status, onboarding.email_status) == (Status.ONBOARDED, Onboarding.StepStatus.SKIPPED)
    assert onboarding.workspace_status == Onboarding.StepStatus.DONE
    assert not mail.outbox and Workspace.objects.count() == 1


def test_a_service_without_a_workspace_onboards_with_the_workspace_step_skipped(pipeline):
    ServiceFactory(provision_workspace=False)
    pipeline.pay_and_process()

    onboarding = Onboarding.objects.get()
    assert (onboarding.status, onboarding.workspace_status) == (
        Status.ONBOARDED,
        Onboarding.StepStatus.SKIPPED,
    )
    assert onboarding.email_status == Onboarding.StepStatus.DONE
    assert len(mail.outbox) == 1 and not Workspace.objects.exists()
