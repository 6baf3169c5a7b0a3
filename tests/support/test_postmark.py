"""The Postmark helper's answers are the ones Anymail's real Postmark backend acts on."""

import pytest
from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from django.core.mail import EmailMultiAlternatives


def welcome(to: list[str]) -> EmailMultiAlternatives:
    message = EmailMultiAlternatives("Welcome", "Hello", "onboarding@agency.example", to)
    message.attach_alternative("<p>Hello</p>", "text/html")
    message.tags = ["welcome"]
    message.metadata = {"onboarding_id": "7"}
    return message


def test_an_accepted_message_is_recorded_and_its_message_id_reaches_anymail(postmark):
    message = welcome(["Ada <ada@example.com>"])
    assert message.send() == 1
    [sent] = postmark.messages
    assert (sent["to"], sent["tag"]) == (["ada@example.com"], "welcome")
    assert sent["metadata"] == {"onboarding_id": "7"}
    assert sent["html_body"] == "<p>Hello</p>"
    assert message.anymail_status.message_id == sent["message_id"]
    assert message.anymail_status.status == {"sent"}


def test_a_refused_address_is_postmarks_406_and_anymail_raises_recipients_refused(postmark):
    postmark.refuse("ADA@example.com")
    with pytest.raises(AnymailRecipientsRefused):
        welcome(["ada@example.com"]).send()
    assert postmark.messages == [] and postmark.request_count == 1


def test_one_refused_address_of_two_is_rejected_and_the_other_sent(postmark):
    postmark.refuse("gone@example.com")
    message = welcome(["ada@example.com", "gone@example.com"])
    message.send()
    statuses = message.anymail_status.recipients
    assert (statuses["ada@example.com"].status, statuses["gone@example.com"].status) == ("sent", "rejected")


def test_an_outage_is_an_api_error_then_the_next_send_goes_through(postmark):
    postmark.fail_next(1, status=503)
    with pytest.raises(AnymailAPIError, match="503"):
        welcome(["ada@example.com"]).send()
    assert welcome(["ada@example.com"]).send() == 1
    assert len(postmark.messages) == 1 and postmark.request_count == 2
