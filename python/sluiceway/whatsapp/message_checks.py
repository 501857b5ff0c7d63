"""Meta's documented limits on outbound messages, checked before a message is ever sent.

The numbers come from the Cloud API's messages reference and its interactive-messages guides
(reply buttons, list messages). Each check raises ``ValueError`` naming the field and the limit,
e.g. ``button title must be at most 20 characters, got 23``, so a bad message fails where it
is built, not as a Graph error 100 minutes later in the sender. ``OutboundMessage`` runs them
in ``__post_init__``, which msgspec also runs when decoding, so the emulator rejects what the
API would.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: A text message's body (characters).
MAX_TEXT_LENGTH = 4096
#: A media caption (characters).
MAX_CAPTION_LENGTH = 1024
#: The body of an interactive message (characters).
MAX_INTERACTIVE_BODY_LENGTH = 1024
#: An interactive message's text header and its footer (characters).
MAX_HEADER_TEXT_LENGTH = 60
MAX_FOOTER_LENGTH = 60
#: Reply buttons: how many, a title's and an id's length.
MAX_REPLY_BUTTONS = 3
MAX_BUTTON_TITLE_LENGTH = 20
MAX_BUTTON_ID_LENGTH = 256
#: List messages: sections, rows over all sections, and the lengths of their texts.
MAX_LIST_SECTIONS = 10
MAX_LIST_ROWS = 10
MAX_ROW_TITLE_LENGTH = 24
MAX_ROW_DESCRIPTION_LENGTH = 72
MAX_ROW_ID_LENGTH = 200
MAX_SECTION_TITLE_LENGTH = 24
MAX_LIST_BUTTON_LENGTH = 20


def check_length(field: str, value: str, limit: int, *, required: bool = True) -> None:
    """``ValueError`` if ``value`` is longer than ``limit`` characters (or empty when ``required``)."""
    if required and not value:
        raise ValueError(f"{field} must not be empty")
    if len(value) > limit:
        raise ValueError(f"{field} must be at most {limit} characters, got {len(value)}")


def check_interactive(kind: str, body: str, action: Mapping[str, Any], header: Mapping[str, Any] | None) -> None:
    """Meta's limits on an ``interactive`` object: body and header text, then the action of a button or list."""
    check_length("interactive body text", body, MAX_INTERACTIVE_BODY_LENGTH)
    if header is not None and header.get("type") == "text":
        check_length("header text", _text(header, "text", "header"), MAX_HEADER_TEXT_LENGTH)
    if kind == "button":
        _check_buttons(action)
    elif kind == "list":
        _check_list(action)


def _text(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{where} needs a string `{key}`, got {value!r}")
    return value


def _list(obj: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = obj.get(key)
    if not isinstance(value, list):
        raise ValueError(f"{where} needs a list `{key}`, got {value!r}")
    return value


def _check_buttons(action: Mapping[str, Any]) -> None:
    buttons = _list(action, "buttons", "a reply-button action")
    if not 1 <= len(buttons) <= MAX_REPLY_BUTTONS:
        raise ValueError(f"reply buttons must number 1 to {MAX_REPLY_BUTTONS}, got {len(buttons)}")
    ids: set[str] = set()
    for button in buttons:
        if (
            not isinstance(button, Mapping)
            or button.get("type") != "reply"
            or not isinstance(button.get("reply"), Mapping)
        ):
            raise ValueError(f'a reply button must be {{"type": "reply", "reply": {{"id", "title"}}}}, got {button!r}')
        reply = button["reply"]
        button_id = _text(reply, "id", "a reply button")
        check_length("button id", button_id, MAX_BUTTON_ID_LENGTH)
        check_length("button title", _text(reply, "title", "a reply button"), MAX_BUTTON_TITLE_LENGTH)
        if button_id in ids:
            raise ValueError(f"button ids must be unique, {button_id!r} appears twice")
        ids.add(button_id)


def _check_list(action: Mapping[str, Any]) -> None:
    check_length("list button text", _text(action, "button", "a list action"), MAX_LIST_BUTTON_LENGTH)
    sections = _list(action, "sections", "a list action")
    if not 1 <= len(sections) <= MAX_LIST_SECTIONS:
        raise ValueError(f"list sections must number 1 to {MAX_LIST_SECTIONS}, got {len(sections)}")
    ids: set[str] = set()
    rows_total = 0
    for section in sections:
        if not isinstance(section, Mapping):
            raise ValueError(f"a list section must be an object, got {section!r}")
        title = section.get("title")
        if title is None and len(sections) > 1:
            raise ValueError("section title is required when a list has more than one section")
        if title is not None:
            check_length("section title", _text(section, "title", "a list section"), MAX_SECTION_TITLE_LENGTH)
        rows = _list(section, "rows", "a list section")
        if not rows:
            raise ValueError("a list section needs at least one row")
        rows_total += len(rows)
        for row in rows:
            if not isinstance(row, Mapping):
                raise ValueError(f"a list row must be an object, got {row!r}")
            row_id = _text(row, "id", "a list row")
            check_length("row id", row_id, MAX_ROW_ID_LENGTH)
            check_length("row title", _text(row, "title", "a list row"), MAX_ROW_TITLE_LENGTH)
            if "description" in row:
                description = _text(row, "description", "a list row")
                check_length("row description", description, MAX_ROW_DESCRIPTION_LENGTH, required=False)
            if row_id in ids:
                raise ValueError(f"row ids must be unique, {row_id!r} appears twice")
            ids.add(row_id)
    if rows_total > MAX_LIST_ROWS:
        raise ValueError(f"a list must have at most {MAX_LIST_ROWS} rows in total, got {rows_total}")
