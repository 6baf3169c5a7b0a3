"""The staff cockpit: the client page, the needs-review queue, actions, search, roles, export."""

import csv
import io
import re

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crm.models import Activity, Client, Onboarding, Payment, Service
from provisioning.models import Workspace
from stripe_events.models import StripeWebhookJob
from tests.factories import ClientFactory, ServiceFactory
from tests.support.pipeline import run_with_commit_hooks
from tests.support.staff import staff_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("anymail_outbox")]

Status = Onboarding.Status
Held = Onboarding.HeldReason


@pytest.fixture
def operations(client):
    user = staff_user("Operations")
    client.force_login(user)
    return user


@pytest.fixture
def support(client):
    user = staff_user("Support")
    client.force_login(user)
    return user


def post_action(client, url: str, action: str, objects, **extra):
    """Run an admin action as a browser would; commit hooks (task enqueues) fire as after a commit."""
    data = {"action": action, "_selected_action": [str(o.pk) for o in objects], **extra}
    return run_with_commit_hooks(client.post, url, data, follow=True)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_client_page_shows_summary_stripe_links_and_whole_timeline(pipeline, operations, client):
    ServiceFactory()
    checkout = pipeline.pay_and_process(email="ada@example.com", name="Ada Lovelace", amount=49900)
    ada = Client.objects.get()
    # A staff edit and a note join the timeline too.
    client.post(
        f"/admin/crm/client/{ada.pk}/change/",
        {
            "email": ada.email,
            "name": "Ada King",
            "ordered_service": ada.ordered_service_id,
            **{
                f"{prefix}-{key}": "0"
                for prefix in ("payments", "onboardings", "workspaces")
                for key in ("TOTAL_FORMS", "INITIAL_FORMS")
            },
        },
    )
    client.post(f"/admin/crm/client/{ada.pk}/note/", {"note": "Called the client, all good."})

    page = client.get(f"/admin/crm/client/{ada.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200
    summary = html[html.index('id="client-summary"') :]
    assert "ada@example.com" in summary and "Ada King" in summary and "$499.00" in summary
    assert "Onboarded" in summary
    timeline = [entry.summary for entry in page.context["timeline"]]
    expected_order = [
        "Stripe checkout.session.completed",
        "Payment of $499.00 recorded",
        "Onboarding started",
        "Welcome email sent",
        "Workspace ready",
        "Onboarded",
        "Changed client",
        "Called the client",
    ]
    positions = [next(i for i, s in enumerate(timeline) if s.startswith(e)) for e in expected_order[:4]]
    assert positions == sorted(positions), timeline
    for prefix in expected_order:
        assert any(s.startswith(prefix) for s in timeline), (prefix, timeline)
    edit = next(e for e in page.context["timeline"] if e.summary.startswith("Changed client"))
    assert edit.actor == operations.username and "Name" in edit.detail
    whens = [entry.when for entry in page.context["timeline"]]
    assert whens == sorted(whens)

    links = dict((label, (dash, mirror)) for label, dash, mirror in page.context["stripe_links"])
    customer = f"Customer {checkout['session']['customer']}"
    assert (
        links[customer][0] == f"https://dashboard.stripe.com/test/customers/{checkout['session']['customer']}"
    )
    assert links[customer][1].startswith("/admin/djstripe/customer/")
    pi = f"Payment {checkout['session']['payment_intent']}"
    assert links[pi][0].endswith(f"/test/payments/{checkout['session']['payment_intent']}")
    assert client.get(links[pi][1]).status_code == 200


def test_needs_review_queue_lists_held_oldest_first_and_approval_resumes(pipeline, operations, client):
    pipeline.pay_and_process(email="first@example.com", service_id="brand-new")
    pipeline.pay_and_process(email="second@example.com", currency="chf", service_id="brand-new")
    queue = client.get("/admin/crm/heldonboarding/")
    rows = list(queue.context["cl"].result_list)
    assert [r.customer_email for r in rows] == ["first@example.com", "second@example.com"]
    assert "Unknown service" in queue.content.decode()

    # Approving before the cause is fixed keeps it held, and says why.
    response = post_action(client, "/admin/crm/heldonboarding/", "approve", rows[:1])
    assert any(m.startswith("Still held") for m in messages_of(response))
    assert Onboarding.objects.get(customer_email="first@example.com").status == Status.HELD

    ServiceFactory(service_id="brand-new", name="Brand new")
    response = post_action(client, "/admin/crm/heldonboarding/", "approve", rows)
    assert sum(m.startswith("Approved") for m in messages_of(response)) == 2  # CHF accepted by approval
    pipeline.work()
    assert set(Onboarding.objects.values_list("status", flat=True)) == {Status.ONBOARDED}
    assert len(mail.outbox) == 2 and Workspace.objects.count() == 2
    assert (
        Activity.objects.filter(kind="staff", actor=operations, summary__startswith="Approved").count() == 2
    )

    # A second click is harmless.
    response = post_action(client, "/admin/crm/onboarding/", "approve", Onboarding.objects.all())
    second_click = messages_of(response)
    assert len(second_click) == 2 and all("not held" in m for m in second_click)


def test_reject_needs_a_note_and_closes_the_onboarding(pipeline, operations, client):
    pipeline.pay_and_process(service_id="nope")
    held = Onboarding.objects.get()
    response = post_action(client, "/admin/crm/heldonboarding/", "reject", [held])
    assert any("Write a note" in m for m in messages_of(response))
    post_action(client, "/admin/crm/heldonboarding/", "reject", [held], note="Test purchase, refunded.")
    held.refresh_from_db()
    assert (held.status, held.held_detail) == (Status.REJECTED, "Test purchase, refunded.")
    assert not client.get("/admin/crm/heldonboarding/").context["cl"].result_list


def test_resend_welcome_email_sends_a_fresh_link_and_is_safe_to_click_twice(pipeline, support, client):
    ServiceFactory()
    pipeline.pay_and_process()
    ada = Client.objects.get()
    first = post_action(client, "/admin/crm/client/", "resend_welcome_email", [ada])
    second = post_action(client, "/admin/crm/client/", "resend_welcome_email", [ada])
    assert any("queued: 1 of 1" in m for m in messages_of(first))
    assert any("skipped" in m for m in messages_of(second))
    pipeline.work()
    assert len(mail.outbox) == 2
    # The resent link is minted at send time, so its validity starts again; it works.
    link = re.search(r"/portal/set-password/\S+/", mail.outbox[1].body).group(0)
    assert client.get(link, follow=True).context["validlink"]


def test_retry_provisioning_and_reprocess_webhook(pipeline, operations, client, sandbox, settings):
    ServiceFactory()
    settings.PROVISIONING_BACKEND = "tests.provisioning.test_provisioning.UnreachableBackend"
    pipeline.pay_and_process()
    onboarding = Onboarding.objects.get()
    Onboarding.objects.filter(id=onboarding.id).update(workspace_status="failed", status=Status.FAILED)
    settings.PROVISIONING_BACKEND = "provisioning.backends.LocalBackend"
    response = post_action(client, "/admin/crm/onboarding/", "retry_provisioning", [onboarding])
    assert any("queued: 1 of 1" in m for m in messages_of(response))
    pipeline.work()
    onboarding.refresh_from_db()
    assert (onboarding.workspace_status, onboarding.status) == ("done", Status.ONBOARDED)

    job = StripeWebhookJob.objects.get()
    StripeWebhookJob.objects.filter(id=job.id).update(status="failed")
    response = post_action(client, "/admin/stripe_events/stripewebhookjob/", "reprocess", [job])
    assert any("1 of 1" in m for m in messages_of(response))
    record = Activity.objects.filter(kind="staff", summary__contains=job.event_id).get()
    assert (record.actor, record.onboarding) == (operations, onboarding)
    pipeline.work()
    job.refresh_from_db()
    assert job.status == "succeeded"


def test_client_resend_goes_to_each_selected_clients_latest_onboarding(pipeline, support, client):
    ServiceFactory()
    pipeline.pay_and_process(email="ada@example.com")
    pipeline.pay_and_process(email="ada@example.com")  # a returning client: two onboardings
    pipeline.pay_and_process(email="grace@example.com")
    mail.outbox.clear()

    response = post_action(client, "/admin/crm/client/", "resend_welcome_email", list(Client.objects.all()))

    assert any("queued: 2 of 2" in m for m in messages_of(response))
    resent = Activity.objects.filter(summary="Welcome email resend requested")
    for each in Client.objects.all():
        latest = each.onboardings.order_by("-created").first()
        assert list(resent.filter(client=each).values_list("onboarding", flat=True)) == [latest.id]


def test_support_sees_only_the_actions_it_may_run_and_a_forged_post_is_refused(pipeline, support, client):
    pipeline.pay_and_process(service_id="unknown")
    onboarding_list = client.get("/admin/crm/onboarding/").content.decode()
    assert set(re.findall(r'<option value="(\w+)"', onboarding_list)) >= {"resend_welcome_email"}
    for action in ("approve", "reject", "retry_provisioning"):
        assert f'value="{action}"' not in onboarding_list
    assert 'value="retry_provisioning"' not in client.get("/admin/crm/client/").content.decode()

    held = Onboarding.objects.get()
    # A failed workspace step, so that the forged retry would do something if it were let through.
    Onboarding.objects.filter(id=held.id).update(workspace_status="failed")
    post_action(client, "/admin/crm/onboarding/", "approve", [held])
    post_action(client, "/admin/crm/onboarding/", "retry_provisioning", [held])
    held.refresh_from_db()
    assert (held.status, held.workspace_status) == (Status.HELD, "failed")
    assert not Activity.objects.filter(kind="staff").exists()
    # Support may not edit services; Operations may.
    assert client.post("/admin/crm/service/add/", {"service_id": "x", "name": "X"}).status_code == 403


def test_operations_can_edit_services(operations, client):
    response = client.post("/admin/crm/service/add/", {"service_id": "x", "name": "X", "active": "on"})
    assert response.status_code == 302 and Service.objects.filter(service_id="x").exists()


def test_stripe_mirror_is_read_only_for_everyone(pipeline, client):
    ServiceFactory()
    pipeline.pay_and_process()
    admin_user = User.objects.create_superuser("root", "root@example.com", "pw-for-tests-123")
    client.force_login(admin_user)
    from djstripe.models import Customer

    customer = Customer.objects.get()
    url = f"/admin/djstripe/customer/{customer.djstripe_id}/change/"
    page = client.get(url)
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert client.post(url, {"description": "edited"}).status_code == 403
    assert client.get("/admin/djstripe/customer/add/").status_code == 403
    # Our pipeline records too: a Save would overwrite what the worker writes.
    onboarding = Onboarding.objects.get()
    url = f"/admin/crm/onboarding/{onboarding.id}/change/"
    page = client.get(url)
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert client.post(url, {"status": "failed"}).status_code == 403
    onboarding.refresh_from_db()
    assert onboarding.status == Status.ONBOARDED


@pytest.mark.parametrize("field", ["payment_intent", "checkout_session", "customer", "email_prefix", "name"])
def test_client_search_finds_by_any_stripe_id_email_or_name(pipeline, operations, client, field):
    ServiceFactory()
    checkout = pipeline.pay_and_process(email="grace.hopper@example.com", name="Grace Hopper")
    pipeline.pay_and_process(email="other@example.com", name="Someone Else")
    session = checkout["session"]
    term = {
        "payment_intent": session["payment_intent"],
        "checkout_session": session["id"],
        "customer": session["customer"],
        "email_prefix": "Grace.Hop",
        "name": "hopper",
    }[field]
    rows = client.get("/admin/crm/client/", {"q": term}).context["cl"].result_list
    assert [c.email for c in rows] == ["grace.hopper@example.com"]


def test_onboarding_search_by_payment_intent_and_filters(pipeline, operations, client):
    ServiceFactory()
    checkout = pipeline.pay_and_process(email="a@example.com")
    pipeline.pay_and_process(email="b@example.com", currency="chf")
    found = client.get("/admin/crm/onboarding/", {"q": checkout["session"]["payment_intent"]}).context["cl"]
    assert [o.customer_email for o in found.result_list] == ["a@example.com"]
    held = client.get("/admin/crm/onboarding/", {"held_reason__exact": Held.CURRENCY_NOT_ALLOWED}).context[
        "cl"
    ]
    assert [o.customer_email for o in held.result_list] == ["b@example.com"]
    by_status = client.get("/admin/crm/client/", {"onboarding_status": Status.ONBOARDED}).context["cl"]
    assert [c.email for c in by_status.result_list] == ["a@example.com"]


def test_csv_export_follows_the_filtered_list(operations, client):
    care, seo = ServiceFactory(), ServiceFactory(service_id="seo", name="SEO")
    ClientFactory(email="a@example.com", ordered_service=care, invoiced_value=100)
    ClientFactory(email="b@example.com", ordered_service=seo, invoiced_value=250)
    response = client.get("/admin/crm/client/export.csv", {"ordered_service__id__exact": seo.id})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["email"], r["service"], r["invoiced_value_minor_units"]) for r in rows] == [
        ("b@example.com", "seo", "250")
    ]
    assert 'href="/admin/crm/client/export.csv' in client.get("/admin/crm/client/").content.decode()


def seed_rows(count: int) -> None:
    service = ServiceFactory()
    clients = Client.objects.bulk_create(
        Client(email=f"c{i}@example.com", name=f"Client {i}", ordered_service=service, currency="usd")
        for i in range(count)
    )
    now = timezone.now()
    Onboarding.objects.bulk_create(
        Onboarding(
            checkout_session_id=f"cs_{c.id}",
            client=c,
            service=service,
            status=Status.ONBOARDED,
            customer_email=c.email,
            amount=100,
            currency="usd",
        )
        for c in clients
    )
    Payment.objects.bulk_create(
        Payment(
            client=c,
            checkout_session_id=f"cs_{c.id}",
            amount=100,
            currency="usd",
            paid_at=now,
            service=service,
        )
        for c in clients
    )


@pytest.mark.parametrize(
    "url",
    ["/admin/crm/client/", "/admin/crm/onboarding/", "/admin/crm/payment/", "/admin/crm/heldonboarding/"],
)
def test_changelist_query_count_does_not_grow_with_rows(operations, client, url):
    def queries_for(rows: int) -> int:
        Payment.objects.all().delete()
        Onboarding.objects.all().delete()
        Client.objects.all().delete()
        seed_rows(rows)
        if "held" in url:
            Onboarding.objects.update(status=Status.HELD, held_reason=Held.SERVICE_UNKNOWN)
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(f"{url}?all=")  # "Show all": up to list_max_show_all (200) rows
        assert response.status_code == 200
        assert len(response.context["cl"].result_list) == rows
        return len(ctx)

    assert queries_for(10) == queries_for(200)


def test_payment_and_onboarding_search_by_id_and_any_case_email_prefix(pipeline, operations, client):
    ServiceFactory()
    checkout = pipeline.pay_and_process(email="grace.hopper@example.com")
    pipeline.pay_and_process(email="other@example.com")
    by_pi = client.get("/admin/crm/payment/", {"q": checkout["session"]["payment_intent"]}).context["cl"]
    assert [p.checkout_session_id for p in by_pi.result_list] == [checkout["session"]["id"]]
    by_email = client.get("/admin/crm/payment/", {"q": "GRACE.h"}).context["cl"]
    assert [p.client.email for p in by_email.result_list] == ["grace.hopper@example.com"]
    onboardings = client.get("/admin/crm/onboarding/", {"q": "Grace.Hop"}).context["cl"]
    assert [o.customer_email for o in onboardings.result_list] == ["grace.hopper@example.com"]
