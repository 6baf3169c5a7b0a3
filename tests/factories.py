"""A factory_boy factory per model of ours (and dj-stripe's WebhookEventTrigger, which a job needs).

Most data arrives through the pipeline (signed webhooks into the real view); these are for tests
that start from rows. HeldOnboarding is a proxy of Onboarding: OnboardingFactory(status=HELD, …).
"""

from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone
from djstripe.models import WebhookEventTrigger

from crm.models import (
    Activity,
    BackfillRun,
    Client,
    Onboarding,
    Payment,
    ReconciliationRun,
    Service,
    StaffAlert,
    StaffAlertBatch,
)
from provisioning.models import PortalPasswordResetRequest, Workspace
from stripe_events.models import StripeWebhookJob


class UserFactory(factory.django.DjangoModelFactory):
    """A portal login: the username is the email, as the welcome email creates them."""

    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"user{n}@example.com")
    email = factory.SelfAttribute("username")
    password = factory.django.Password("correct-horse-battery-staple")


class ServiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Service
        django_get_or_create = ["service_id"]

    service_id = "website-care"
    name = "Website Care Plan"


class ClientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Client

    email = factory.Sequence(lambda n: f"client{n}@example.com")
    name = factory.Faker("name")
    currency = "usd"


class PaymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Payment

    client = factory.SubFactory(ClientFactory)
    service = factory.SubFactory(ServiceFactory)
    checkout_session_id = factory.Sequence(lambda n: f"cs_test_payment_{n}")
    amount = 49900
    currency = factory.SelfAttribute("client.currency")
    paid_at = factory.LazyFunction(timezone.now)


class OnboardingFactory(factory.django.DjangoModelFactory):
    """An onboarding as the first delivery leaves it (awaiting payment, no client yet)."""

    class Meta:
        model = Onboarding

    checkout_session_id = factory.Sequence(lambda n: f"cs_test_onboarding_{n}")


class ActivityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Activity

    client = factory.SubFactory(ClientFactory)
    kind = Activity.Kind.NOTE
    summary = "Called the client"


class ReconciliationRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReconciliationRun

    days = 3
    triggered_by = ReconciliationRun.TriggeredBy.COMMAND


class BackfillRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BackfillRun

    since = factory.LazyFunction(lambda: timezone.now() - timedelta(days=30))
    window_end = factory.LazyFunction(timezone.now)


class StaffAlertBatchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StaffAlertBatch

    kind = StaffAlert.Kind.HELD
    count = 1
    text = "1 onboarding held for review"
    channels_pending = factory.LazyFunction(lambda: ["slack"])


class StaffAlertFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StaffAlert

    kind = StaffAlert.Kind.HELD
    summary = factory.Sequence(lambda n: f"cs_test_{n} held: unknown service")
    url = "/admin/crm/heldonboarding/"


class WebhookEventTriggerFactory(factory.django.DjangoModelFactory):
    """dj-stripe's record of one delivery, as the webhook view stores it."""

    class Meta:
        model = WebhookEventTrigger

    remote_ip = "127.0.0.1"
    body = "{}"
    headers = factory.LazyFunction(lambda: {"Content-Type": "application/json"})


class StripeWebhookJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StripeWebhookJob

    trigger = factory.SubFactory(WebhookEventTriggerFactory)
    event_id = factory.Sequence(lambda n: f"evt_test_{n}")
    event_type = "checkout.session.completed"


class WorkspaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workspace

    client = factory.SubFactory(ClientFactory)
    service = factory.SubFactory(ServiceFactory)


class PortalPasswordResetRequestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PortalPasswordResetRequest

    email = factory.Sequence(lambda n: f"client{n}@example.com")
    ip_address = "127.0.0.1"
