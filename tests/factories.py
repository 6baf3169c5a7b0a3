"""A factory per model the tests create directly (most data arrives through the pipeline)."""

import factory

from crm.models import Client, Service


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
