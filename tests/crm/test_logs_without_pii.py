"""Logs carry ids, never a client's email or name (those stay on the records staff see)."""

import logging

import pytest

from crm.models import Onboarding
from tests.support.staff import staff_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("service")]

EMAIL, NAME = "private.person@example.com", "Private Person"


def test_a_whole_onboarding_with_a_hold_a_retry_and_a_refusal_logs_no_email_or_name(
    pipeline, postmark, caplog
):
    caplog.set_level(logging.DEBUG)
    pipeline.pay_and_process(email=EMAIL, name=NAME, service_id="no-such-service")  # held
    pipeline.pay_and_process(email=EMAIL, name=NAME)  # onboarded in USD ...
    pipeline.pay_and_process(email=EMAIL, name=NAME, currency="eur")  # ... and EUR too (a second currency)
    staff_user("Support", username="staff." + EMAIL)
    pipeline.pay_and_process(email="staff." + EMAIL, name=NAME)  # a staff login: held
    postmark.fail_next(1, status=503)
    pipeline.pay_and_process(email="other." + EMAIL, name=NAME)  # onboarded after a failed attempt
    postmark.refuse("refused." + EMAIL)
    pipeline.pay_and_process(email="refused." + EMAIL, name=NAME)  # refused by the ESP
    assert Onboarding.objects.filter(status=Onboarding.Status.HELD).count() == 3

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert logged  # the pipeline did log
    assert EMAIL not in logged and NAME not in logged, [
        r.getMessage() for r in caplog.records if EMAIL in r.getMessage() or NAME in r.getMessage()
    ]
