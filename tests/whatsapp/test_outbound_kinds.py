"""Every outbound kind encodes to Meta's request body, and Meta's limits are checked where a message is built.

Each limit is a property over lengths and counts around it: at and under the limit the message
builds, over it a ``ValueError`` names the field and the limit; the reference model is the
documented number itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluiceway.whatsapp import ListRow, ListSection, OutboundMessage, ReadReceipt, ReplyButton


def _body(message: msgspec.Struct) -> dict[str, Any]:
    decoded: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(message))
    return decoded


def _buttons(n: int) -> list[ReplyButton]:
    return [ReplyButton(f"b{i}", f"Choice {i}") for i in range(n)]


def _section(title: str | None, rows: int, start: int = 0) -> ListSection:
    return ListSection([ListRow(f"r{start + i}", f"Row {start + i}") for i in range(rows)], title)


#: field named in the error -> (limit, a builder taking a string of the tested length)
LENGTH_LIMITS: dict[str, tuple[int, Callable[[str], object]]] = {
    "text body": (4096, lambda s: OutboundMessage.of_text("1", s)),
    "caption": (1024, lambda s: OutboundMessage.of_media("1", "image", "https://x.test/a.png", caption=s)),
    "interactive body text": (1024, lambda s: OutboundMessage.of_buttons("1", s, _buttons(1))),
    "header text": (60, lambda s: OutboundMessage.of_buttons("1", "b", _buttons(1), header=s)),
    "footer text": (60, lambda s: OutboundMessage.of_buttons("1", "b", _buttons(1), footer=s)),
    "button title": (20, lambda s: OutboundMessage.of_buttons("1", "b", [ReplyButton("y", s)])),
    "button id": (256, lambda s: OutboundMessage.of_buttons("1", "b", [ReplyButton(s, "Yes")])),
    "list button text": (20, lambda s: OutboundMessage.of_list("1", "b", s, [_section(None, 1)])),
    "section title": (24, lambda s: OutboundMessage.of_list("1", "b", "Open", [_section(s, 1)])),
    "row title": (24, lambda s: OutboundMessage.of_list("1", "b", "Open", [ListSection([ListRow("r", s)])])),
    "row description": (
        72,
        lambda s: OutboundMessage.of_list("1", "b", "Open", [ListSection([ListRow("r", "Row", s)])]),
    ),
}


@pytest.mark.parametrize("field", sorted(LENGTH_LIMITS))
@given(delta=st.integers(-3, 3), char=st.sampled_from(["x", "é", "🏠"]))
def test_each_length_limit_holds_at_and_under_and_fails_over(field: str, delta: int, char: str) -> None:
    """A length at or under Meta's limit builds; one over raises naming the field, the limit and the length."""
    limit, build = LENGTH_LIMITS[field]
    length = limit + delta
    if delta <= 0:
        build(char * length)
    else:
        with pytest.raises(ValueError, match=f"{field} must be at most {limit} characters, got {length}"):
            build(char * length)


@given(n=st.integers(0, 6))
def test_reply_buttons_number_one_to_three(n: int) -> None:
    """1-3 reply buttons build; none or more than three raise."""
    if 1 <= n <= 3:
        assert len(_body(OutboundMessage.of_buttons("1", "b", _buttons(n)))["interactive"]["action"]["buttons"]) == n
    else:
        with pytest.raises(ValueError, match=f"reply buttons must number 1 to 3, got {n}"):
            OutboundMessage.of_buttons("1", "b", _buttons(n))


def test_button_ids_must_be_unique() -> None:
    with pytest.raises(ValueError, match="button ids must be unique, 'y' appears twice"):
        OutboundMessage.of_buttons("1", "b", [ReplyButton("y", "Yes"), ReplyButton("y", "Yeah")])


@given(sizes=st.lists(st.integers(1, 4), min_size=1, max_size=12))
def test_lists_allow_ten_sections_and_ten_rows_in_total(sizes: list[int]) -> None:
    """A list builds iff it has at most 10 sections and at most 10 rows over all of them."""
    sections, start = [], 0
    for i, rows in enumerate(sizes):
        sections.append(_section(f"Section {i}", rows, start))
        start += rows
    if len(sizes) <= 10 and sum(sizes) <= 10:
        built = _body(OutboundMessage.of_list("1", "b", "Open", sections))["interactive"]["action"]
        assert [len(s["rows"]) for s in built["sections"]] == sizes
    else:
        with pytest.raises(ValueError, match="at most 10 rows in total|list sections must number 1 to 10"):
            OutboundMessage.of_list("1", "b", "Open", sections)


def test_several_sections_need_titles_and_row_ids_are_unique() -> None:
    with pytest.raises(ValueError, match="section title is required when a list has more than one section"):
        OutboundMessage.of_list("1", "b", "Open", [_section(None, 1), _section("Two", 1, 1)])
    with pytest.raises(ValueError, match="row ids must be unique, 'r0' appears twice"):
        OutboundMessage.of_list("1", "b", "Open", [_section("One", 1), _section("Two", 1)])


@pytest.mark.parametrize(
    ("build", "problem"),
    [
        (lambda: OutboundMessage.of_media("1", "image"), "exactly one of `link` or `id`"),
        (lambda: OutboundMessage.of_media("1", "image", "https://x", media_id="7"), "exactly one of `link` or `id`"),
        (lambda: OutboundMessage.of_media("1", "audio", media_id="7", caption="hi"), "caption is not allowed on audio"),
        (lambda: OutboundMessage.of_media("1", "sticker", media_id="7", caption="x"), "not allowed on sticker"),
        (lambda: OutboundMessage.of_media("1", "image", media_id="7", filename="a.png"), "filename is only allowed"),
        (lambda: OutboundMessage.of_location("1", 91.0, 0.0), "latitude must be within -90..90, got 91.0"),
        (lambda: OutboundMessage.of_location("1", 0.0, -181.0), "longitude must be within -180..180"),
        (lambda: OutboundMessage.of_reaction("1", "", "👍"), "reaction message_id"),
        (lambda: OutboundMessage.of_template("1", "", "en_US"), "template name"),
        (lambda: OutboundMessage.of_template("1", "rent_due", ""), "template language"),
        (lambda: ReadReceipt.of(""), "message_id must not be empty"),
    ],
)
def test_malformed_kinds_raise_naming_the_problem(build: Callable[[], object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        build()


def test_every_builder_writes_metas_request_body() -> None:
    """Each builder's JSON is the body Meta's messages reference documents for that kind."""
    assert _body(OutboundMessage.of_text("1", "see https://x.test", preview_url=True))["text"] == {
        "body": "see https://x.test",
        "preview_url": True,
    }
    assert _body(OutboundMessage.of_media("1", "document", media_id="42", caption="Lease", filename="lease.pdf"))[
        "document"
    ] == {"id": "42", "caption": "Lease", "filename": "lease.pdf"}
    assert _body(OutboundMessage.of_media("1", "audio", "https://x.test/a.ogg"))["audio"] == {
        "link": "https://x.test/a.ogg"
    }
    assert _body(OutboundMessage.of_location("1", 51.5, -0.12, name="Flat 3", address="1 High St"))["location"] == {
        "latitude": 51.5,
        "longitude": -0.12,
        "name": "Flat 3",
        "address": "1 High St",
    }
    assert _body(OutboundMessage.of_reaction("1", "wamid.A", ""))["reaction"] == {"message_id": "wamid.A", "emoji": ""}
    template = OutboundMessage.of_template("1", "rent_due", "en_US", [{"type": "body", "parameters": []}])
    assert _body(template)["template"] == {
        "name": "rent_due",
        "language": {"code": "en_US"},
        "components": [{"type": "body", "parameters": []}],
    }
    listed = _body(OutboundMessage.of_list("1", "Pick a slot", "Slots", [_section("Mon", 2)], footer="Reply anytime"))
    assert listed["interactive"] == {
        "type": "list",
        "body": {"text": "Pick a slot"},
        "footer": {"text": "Reply anytime"},
        "action": {
            "button": "Slots",
            "sections": [{"title": "Mon", "rows": [{"id": "r0", "title": "Row 0"}, {"id": "r1", "title": "Row 1"}]}],
        },
    }
    assert _body(ReadReceipt.of("wamid.B", typing=True)) == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": "wamid.B",
        "typing_indicator": {"type": "text"},
    }
    assert "typing_indicator" not in _body(ReadReceipt.of("wamid.B"))


def test_decoding_checks_the_same_limits() -> None:
    """A body over a limit fails to decode too (what the emulator relies on to answer 400)."""
    body = _body(OutboundMessage.of_buttons("1", "b", _buttons(3)))
    body["interactive"]["action"]["buttons"].append({"type": "reply", "reply": {"id": "b9", "title": "Four"}})
    with pytest.raises(msgspec.ValidationError, match="reply buttons must number 1 to 3, got 4"):
        msgspec.json.decode(msgspec.json.encode(body), type=OutboundMessage)
