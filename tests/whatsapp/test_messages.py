"""Message Structs encode to the Cloud API's JSON, validate input, and decode its webhooks."""

from __future__ import annotations

import pickle

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluiceway.whatsapp import (
    ErrorCategory,
    Interactive,
    InteractiveText,
    Language,
    OutboundMessage,
    SendError,
    SendRetryPolicy,
    Template,
    WebhookPayload,
    classify,
)


def test_text_message_encodes_to_the_api_body() -> None:
    """A text message is exactly the documented request body, unset fields left out."""
    body = msgspec.json.decode(msgspec.json.encode(OutboundMessage.of_text("15551234567", "hi")))
    assert body == {
        "to": "15551234567",
        "type": "text",
        "text": {"body": "hi"},
        "messaging_product": "whatsapp",
    }


def test_template_media_and_interactive_encode() -> None:
    """Template, media and interactive messages carry their objects under the field named by type."""
    tpl = OutboundMessage(to="1", type="template", template=Template("rent_due", Language("en_US"), [{"type": "body"}]))
    assert msgspec.to_builtins(tpl)["template"] == {
        "name": "rent_due",
        "language": {"code": "en_US"},
        "components": [{"type": "body"}],
    }
    img = OutboundMessage.of_media("1", "image", "https://x.test/a.png", caption="receipt")
    assert msgspec.to_builtins(img)["image"] == {"link": "https://x.test/a.png", "caption": "receipt"}
    buttons = Interactive(
        "button", InteractiveText("Pay now?"), {"buttons": [{"type": "reply", "reply": {"id": "y", "title": "Yes"}}]}
    )
    assert (
        msgspec.to_builtins(OutboundMessage(to="1", type="interactive", interactive=buttons))["interactive"]["type"]
        == "button"
    )


@pytest.mark.parametrize(
    ("build", "problem"),
    [
        (lambda: OutboundMessage.of_text("", "hi"), "recipient"),
        (lambda: OutboundMessage.of_text("1", "x" * 4097), "4096"),
        (lambda: OutboundMessage.of_text("1", ""), "empty"),
        (lambda: OutboundMessage(to="1", type="image"), "exactly its 'image'"),
        (lambda: OutboundMessage.of_media("1", "hologram", "https://x"), "media kind"),
    ],
)
def test_bad_messages_raise_value_error(build: object, problem: str) -> None:
    """Invalid messages fail at construction with a ValueError naming the problem."""
    with pytest.raises(ValueError, match=problem):
        build()  # type: ignore[operator]


def test_status_webhook_decodes() -> None:
    """A real-shaped status webhook body decodes and lists its statuses in order."""
    body = b"""{"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages",
      "value": {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "1555", "phone_number_id": "99"},
      "statuses": [{"id": "wamid.A", "status": "delivered", "timestamp": "1750857384", "recipient_id": "155",
                    "pricing": {"billable": true}},
                   {"id": "wamid.B", "status": "failed", "timestamp": "1750857385", "recipient_id": "156",
                    "errors": [{"code": 131026, "title": "Message undeliverable"}]}]}}]}]}"""
    statuses = msgspec.json.decode(body, type=WebhookPayload).statuses()
    assert [(s.id, s.status) for s in statuses] == [("wamid.A", "delivered"), ("wamid.B", "failed")]
    assert statuses[1].errors is not None and statuses[1].errors[0].code == 131026


def test_webhooks_are_lenient_and_encode_like_meta() -> None:
    """A status kind Meta adds later still decodes (the sender ignores it); encoded bodies keep
    ``messaging_product`` and leave out what is empty, as Meta's do."""
    body = b"""{"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages",
      "value": {"messaging_product": "whatsapp", "statuses": [{"id": "wamid.C", "status": "warned",
      "timestamp": "1", "recipient_id": "157", "new_field": 1}]}}]}]}"""
    payload = msgspec.json.decode(body, type=WebhookPayload)
    assert [(s.id, s.status) for s in payload.statuses()] == [("wamid.C", "warned")]
    value = msgspec.json.decode(msgspec.json.encode(payload))["entry"][0]["changes"][0]["value"]
    assert value == {
        "messaging_product": "whatsapp",
        "statuses": [{"id": "wamid.C", "status": "warned", "timestamp": "1", "recipient_id": "157"}],
    }


@pytest.mark.parametrize(
    ("code", "http", "category"),
    [
        (130429, 400, ErrorCategory.THROUGHPUT),
        (80007, 400, ErrorCategory.THROUGHPUT),
        (4, 400, ErrorCategory.THROUGHPUT),
        (131048, 400, ErrorCategory.THROUGHPUT),
        (131056, 400, ErrorCategory.PAIR_RATE),
        (131057, 400, ErrorCategory.TRANSIENT),
        (190, 401, ErrorCategory.AUTH),
        (100, 400, ErrorCategory.PERMANENT),
        (131026, 400, ErrorCategory.PERMANENT),
        (131047, 400, ErrorCategory.PERMANENT),
        (131047, 500, ErrorCategory.PERMANENT),  # named: a 5xx with this code is still never worth a retry
        (132001, 404, ErrorCategory.PERMANENT),
        (132001, 503, ErrorCategory.PERMANENT),
        (None, 503, ErrorCategory.TRANSIENT),
        (None, None, ErrorCategory.TRANSIENT),
        (999999, 400, ErrorCategory.PERMANENT),
        (999999, 500, ErrorCategory.TRANSIENT),
    ],
)
def test_classification_by_code_then_status(code: int | None, http: int | None, category: ErrorCategory) -> None:
    """Known codes decide the category; unknown ones fall back to the HTTP status."""
    assert classify(code, http) is category


def test_send_error_survives_pickling() -> None:
    """A SendError crosses process boundaries with its code, status and category."""
    err = pickle.loads(pickle.dumps(SendError("(#130429) Rate limit hit", code=130429, http_status=400)))
    assert (err.code, err.http_status, err.category) == (130429, 400, ErrorCategory.THROUGHPUT)
    assert "130429" in str(err)


@given(
    attempt=st.integers(min_value=1, max_value=2000),
    initial=st.floats(min_value=0.001, max_value=10),
    jitter=st.floats(min_value=0, max_value=1),
    r=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_backoff_stays_within_its_envelope(attempt: int, initial: float, jitter: float, r: float) -> None:
    """Every delay lies in [(1-jitter)·base, base] with base = min(cap, initial·2^(attempt-1))."""
    policy = SendRetryPolicy(max_retries=3, initial=initial, cap=60.0, jitter=jitter)
    base = min(60.0, initial * 2.0 ** min(attempt - 1, 64))
    delay = policy.delay(attempt, random=lambda: r)
    assert base * (1 - jitter) - 1e-9 <= delay <= base + 1e-9


def test_retries_are_exhausted_after_max_retries() -> None:
    """With max_retries=3 a message gets its first try plus three retries."""
    policy = SendRetryPolicy(max_retries=3)
    assert [policy.exhausted(n) for n in range(1, 6)] == [False, False, False, True, True]
    with pytest.raises(ValueError, match="start at 1"):
        policy.delay(0)
