"""The demo's tenants send photos and tap the bot's urgency buttons, and each message still gets exactly one reply."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from sluiceway.demo.run import DemoOptions, run_demo
from sluiceway.demo.tenants import conversation
from sluiceway.examples.property_bot.answers import ticket_id
from sluiceway.examples.property_bot.nlu import extract_unit
from sluiceway.examples.property_bot.tickets import URGENCY_REPLY


def test_each_photo_is_followed_by_a_tap_on_its_tickets_urgency_button() -> None:
    rng = random.Random(3)
    conversations = [conversation(i, 4, rng) for i in range(400)]
    assert all(len(c) == 4 and [m.index for m in c] == [0, 1, 2, 3] for c in conversations)
    photos = [(c, m) for c in conversations for m in c if m.kind == "image"]
    assert photos, "the demo's traffic has photos"
    for messages, photo in photos:
        assert photo.content is not None and extract_unit(photo.content["caption"]) is not None
        tap = messages[photo.index + 1]
        assert tap.kind == "interactive" and tap.content is not None
        match = URGENCY_REPLY.match(tap.content["button_reply"]["id"])
        assert match is not None and match.group(2) == ticket_id(photo.wamid)
    kinds = {m.kind for c in conversations for m in c}
    assert kinds == {"text", "image", "interactive"}
    again = random.Random(3)
    assert [conversation(i, 4, again) for i in range(400)] == conversations  # a seed replays the same traffic


def test_the_demo_answers_photos_and_taps_once_each(tmp_path: Path) -> None:
    options = DemoOptions(conversations=80, messages=4, rate=200, live=False, report_dir=str(tmp_path), seed=11)
    rng = random.Random(options.seed)  # the demo draws its conversations the same way
    drawn = [conversation(i, options.messages, rng) for i in range(options.conversations)]
    assert any(m.kind == "image" for c in drawn for m in c), "pick a seed whose traffic has photos"
    result = asyncio.run(run_demo(options))
    assert result.verdict.ok, result.verdict
    assert result.verdict.replied == options.conversations * options.messages
