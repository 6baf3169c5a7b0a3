"""Every factory builds a valid row of its model."""

import pytest

from tests import factories

FACTORIES = [
    value
    for value in vars(factories).values()
    if isinstance(value, type)
    and issubclass(value, factories.factory.django.DjangoModelFactory)
    and value is not factories.factory.django.DjangoModelFactory
]


@pytest.mark.django_db
@pytest.mark.parametrize("factory_class", FACTORIES, ids=lambda f: f.__name__)
def test_each_factory_saves_a_row_that_passes_full_clean(factory_class):
    row = factory_class()
    row.full_clean(exclude=["password"])
    assert type(row).objects.filter(pk=row.pk).exists()
