"""Anymail's real Postmark backend against tests.fakes.esp.FakePostmark."""

import json
import urllib.error
import urllib.request

import pytest
from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from anymail.message import AnymailMessage
from django.core import mail

from tests.fakes.esp import FakePostmark


@pytest.fixture
def fake():
    with FakePostmark() as server:
        yield server


@pytest.fixture
def postmark(settings, fake):
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {
        "POSTMARK_SERVER_TOKEN": "test-token",
        "POSTMARK_API_URL": fake.url,
        "REQUESTS_TIMEOUT": 5,
    }
    return fake


def _message(**kwargs):
    defaults = {
        "subject": "Welcome aboard",
        "body": "Hello in plain text",
        "from_email": "Onboarding <onboarding@example.com>",
        "to": ["Ada Lovelace <ada@example.com>"],
    }
    defaults.update(kwargs)
    return mail.EmailMultiAlternatives(**defaults)


def test_start_returns_local_base_url_with_trailing_slash():
    fake = FakePostmark()
    url = fake.start()
    try:
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/")
        assert fake.url == url
    finally:
        fake.stop()


def test_full_message_is_recorded_and_message_id_round_trips(postmark):
    msg = _message(
        cc=["cc@example.com"],
        bcc=["bcc@example.com"],
        reply_to=["support@example.com"],
        headers={"X-Onboarding-Step": "welcome"},
    )
    msg.attach_alternative("<p>Hello in <b>HTML</b></p>", "text/html")
    msg.tags = ["onboarding"]
    msg.metadata = {"customer_id": "42", "plan": "pro"}

    assert msg.send() == 1

    assert postmark.request_count == 1
    assert len(postmark.messages) == 1
    sent = postmark.messages[0]
    assert sent["from"] == "Onboarding <onboarding@example.com>"
    assert sent["to"] == ["ada@example.com"]
    assert sent["raw"]["To"] == "Ada Lovelace <ada@example.com>"
    assert sent["cc"] == ["cc@example.com"]
    assert sent["bcc"] == ["bcc@example.com"]
    assert sent["reply_to"] == "support@example.com"
    assert sent["subject"] == "Welcome aboard"
    assert sent["text_body"] == "Hello in plain text"
    assert sent["html_body"] == "<p>Hello in <b>HTML</b></p>"
    assert sent["tag"] == "onboarding"
    assert sent["metadata"] == {"customer_id": "42", "plan": "pro"}
    assert sent["headers"] == {"X-Onboarding-Step": "welcome"}
    assert sent["message_stream"] == "outbound"
    assert sent["endpoint"] == "email"
    assert sent["server_token"] == "test-token"
    assert sent["inactive_recipients"] == []

    assert msg.anymail_status.message_id == sent["message_id"]
    assert msg.anymail_status.status == {"sent"}
    assert msg.anymail_status.recipients["ada@example.com"].message_id == sent["message_id"]

    request = postmark.requests[0]
    assert request["method"] == "POST"
    assert request["path"] == "/email"
    assert request["headers"]["x-postmark-server-token"] == "test-token"
    assert request["status"] == 200


def test_success_response_has_postmark_shape(fake):
    status, body = _raw_post(
        fake.url + "email",
        {"From": "a@example.com", "To": "b@example.com", "Subject": "s", "TextBody": "t"},
        token="test-token",
    )
    assert status == 200
    assert set(body) == {"To", "SubmittedAt", "MessageID", "ErrorCode", "Message"}
    assert body["To"] == "b@example.com"
    assert body["ErrorCode"] == 0
    assert body["Message"] == "OK"
    assert body["MessageID"] == fake.messages[0]["message_id"]


def test_send_mail_shortcut_and_message_stream(postmark, settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "POSTMARK_MESSAGE_STREAM": "broadcast"}
    assert mail.send_mail("Hi", "Body", "from@example.com", ["to@example.com"]) == 1
    assert postmark.messages[0]["message_stream"] == "broadcast"
    assert postmark.messages[0]["html_body"] is None


def test_server_error_raises_then_next_send_succeeds(postmark):
    postmark.fail_next(1)

    with pytest.raises(AnymailAPIError) as excinfo:
        _message().send()
    assert excinfo.value.status_code == 500
    assert postmark.messages == []

    assert _message().send() == 1
    assert len(postmark.messages) == 1
    assert postmark.request_count == 2
    assert [r["status"] for r in postmark.requests] == [500, 200]


def test_fail_next_counts_down_with_custom_status(postmark):
    postmark.fail_next(2, status=503)
    for _ in range(2):
        with pytest.raises(AnymailAPIError) as excinfo:
            _message().send()
        assert excinfo.value.status_code == 503
    assert _message().send() == 1
    assert postmark.request_count == 3


def test_refused_recipient_raises_recipients_refused(postmark):
    postmark.refuse("ADA@example.com")  # case-insensitive, like Postmark's suppression list

    with pytest.raises(AnymailRecipientsRefused):
        _message().send()

    assert postmark.messages == []
    assert postmark.request_count == 1
    assert postmark.requests[0]["status"] == 422
    body = json.loads(postmark.requests[0]["body"])
    assert body["To"] == "Ada Lovelace <ada@example.com>"


def test_refused_recipient_response_body_is_postmark_406(fake):
    fake.refuse("gone@example.com")
    status, body = _raw_post(
        fake.url + "email",
        {"From": "a@example.com", "To": "gone@example.com", "TextBody": "t"},
        token="t",
    )
    assert status == 422
    assert body["ErrorCode"] == 406
    assert "Found inactive addresses: gone@example.com." in body["Message"]


def test_partially_refused_recipients_are_marked_rejected(postmark):
    postmark.refuse("gone@example.com")
    msg = _message(to=["ada@example.com", "gone@example.com"])

    assert msg.send() == 1

    status = msg.anymail_status
    assert status.recipients["ada@example.com"].status == "sent"
    assert status.recipients["gone@example.com"].status == "rejected"
    assert postmark.messages[0]["inactive_recipients"] == ["gone@example.com"]


def test_refused_recipient_can_be_ignored_with_anymail_setting(postmark, settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "IGNORE_RECIPIENT_STATUS": True}
    postmark.refuse("ada@example.com")
    msg = _message()
    msg.send()
    assert msg.anymail_status.status == {"rejected"}


def test_missing_token_header_is_rejected_with_401(postmark):
    msg = _message()
    msg.esp_extra = {"server_token": None}  # requests then omits the header entirely

    with pytest.raises(AnymailAPIError) as excinfo:
        msg.send()

    assert excinfo.value.status_code == 401
    assert "x-postmark-server-token" not in postmark.requests[0]["headers"]
    assert postmark.messages == []


def test_missing_token_raw_response_body(fake):
    status, body = _raw_post(fake.url + "email", {"From": "a@example.com", "To": "b@example.com"})
    assert status == 401
    assert body["ErrorCode"] == 10
    assert "X-Postmark-Server-Token" in body["Message"]


def test_wrong_token_rejected_when_fake_pins_one(settings):
    with FakePostmark(server_token="right-token") as fake:
        settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
        settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "wrong-token", "POSTMARK_API_URL": fake.url}
        with pytest.raises(AnymailAPIError) as excinfo:
            _message().send()
        assert excinfo.value.status_code == 401

        settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "right-token", "POSTMARK_API_URL": fake.url}
        assert _message().send() == 1


def test_batch_send_uses_batch_endpoint_with_per_recipient_ids(postmark):
    postmark.refuse("gone@example.com")
    msg = AnymailMessage(
        subject="Batch",
        body="Hi",
        from_email="from@example.com",
        to=["one@example.com", "two@example.com", "gone@example.com"],
    )
    msg.merge_metadata = {"one@example.com": {"n": 1}, "two@example.com": {"n": 2}}

    assert msg.send() == 1

    assert postmark.requests[0]["path"] == "/email/batch"
    assert [m["to"] for m in postmark.messages] == [["one@example.com"], ["two@example.com"]]
    assert [m["metadata"] for m in postmark.messages] == [{"n": 1}, {"n": 2}]
    recipients = msg.anymail_status.recipients
    assert recipients["one@example.com"].message_id == postmark.messages[0]["message_id"]
    assert recipients["two@example.com"].message_id == postmark.messages[1]["message_id"]
    assert recipients["gone@example.com"].status == "rejected"


def test_reset_clears_state_and_knobs(postmark):
    postmark.refuse("ada@example.com")
    postmark.fail_next(3)
    with pytest.raises(AnymailAPIError):
        _message().send()

    postmark.reset()

    assert postmark.request_count == 0
    assert postmark.messages == []
    assert postmark.refused == frozenset()
    assert _message().send() == 1


def test_stop_releases_the_port():
    fake = FakePostmark()
    url = fake.start()
    fake.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "email", data=b"{}", timeout=2)


def _raw_post(url, payload, token=None):
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token is not None:
        headers["X-Postmark-Server-Token"] = token
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_template_send_is_recorded(postmark):
    msg = AnymailMessage(from_email="from@example.com", to=["ada@example.com"])
    msg.template_id = "welcome-email"
    msg.merge_global_data = {"name": "Ada"}

    assert msg.send() == 1

    assert postmark.requests[0]["path"] == "/email/withTemplate/"
    sent = postmark.messages[0]
    assert sent["template_alias"] == "welcome-email"
    assert sent["template_model"] == {"name": "Ada"}
    assert msg.anymail_status.message_id == sent["message_id"]
