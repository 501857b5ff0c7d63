"""The 24-hour window: a free-form message to a user known to be outside it becomes the fallback template or a
dead letter with the reason; a 131047 from the API takes the same path and is not retried."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from sluiceway.app.context import Outgoing
from sluiceway.app.outbox import DurableOutbox
from sluiceway.app.windows import ConversationWindows
from sluiceway.journal import Journal
from sluiceway.whatsapp import OutboundMessage

from .outbound_stack import NUMBER_A, GraphStack

TENANT, LANDLORD = "15550003001", "15550003002"
DAY = 24 * 3600.0


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


@given(
    events=st.lists(st.tuples(st.sampled_from(["1", "2"]), st.sampled_from(["a", "b", "+a"]), st.floats(0, 5 * DAY))),
    now=st.floats(0, 6 * DAY),
)
def test_windows_match_a_reference_model(events: list[tuple[str, str, float]], now: float) -> None:
    windows = ConversationWindows(clock=lambda: now)
    latest: dict[tuple[str, str], float] = {}
    for number, user, at in events:
        windows.opened(number, user, at)
        key = (number, user.removeprefix("+"))
        latest[key] = max(latest.get(key, 0.0), at)
    for number in ("1", "2"):
        for user in ("a", "b"):
            last = latest.get((number, user), 0.0)
            assert windows.last(number, user) == last
            assert windows.is_closed(number, user) == (last > 0 and now - last > DAY)


def test_windows_forget_the_least_recently_heard_first() -> None:
    windows = ConversationWindows(max_entries=2, default_number="1")
    windows.opened("", "a", 1.0)
    windows.opened("1", "b", 2.0)
    windows.opened("1", "c", 3.0)
    assert (windows.last("1", "a"), windows.last("", "b"), windows.last("1", "c"), len(windows)) == (0.0, 2.0, 3.0, 2)


async def _tell_landlord(s: GraphStack) -> None:
    """The tenant writes; the handler replies to them and also writes to the landlord (who has not written)."""
    await s.whatsapp.post_inbound(TENANT, f"tell {LANDLORD}")
    await s.until(lambda: bool(s.sent_to(TENANT)))


def test_outside_the_window_without_a_fallback_is_a_dead_letter_with_the_reason() -> None:
    async def scenario() -> None:
        async with GraphStack("outbound_bots:notify_bot") as s:
            assert s.runtime is not None and s.runtime.outbox is not None
            s.runtime.windows.opened(NUMBER_A, LANDLORD, time.time() - DAY - 60)
            await _tell_landlord(s)
            outbox = s.runtime.outbox
            await s.until(lambda: outbox.window_dead_letters == 1)
            letters = await outbox.dead_letters()
            assert [(d.recipient, d.reason) for d in letters] == [(LANDLORD, "outside the 24-hour window")]
            assert "window_fallback_template" in letters[0].error
            assert s.sent_to(LANDLORD) == [] and s.whatsapp.answers[131047] == 0

    run(scenario)


def test_outside_the_window_the_fallback_template_goes_instead() -> None:
    async def scenario() -> None:
        async with GraphStack(
            "outbound_bots:notify_bot", window_fallback_template="please_reply", window_fallback_language="en_GB"
        ) as s:
            s.whatsapp.register_template("please_reply", "en_GB")
            assert s.runtime is not None
            s.runtime.windows.opened(NUMBER_A, LANDLORD, time.time() - DAY - 60)
            await _tell_landlord(s)
            await s.until(lambda: bool(s.sent_to(LANDLORD)))
            [sent] = s.sent_to(LANDLORD)
            assert sent.message.type == "template" and sent.message.template is not None
            assert (sent.message.template.name, sent.message.template.language.code) == ("please_reply", "en_GB")
            outcome = s.runtime.reply_outcome(f"{s.whatsapp.messages(with_=TENANT)[0].wamid}#0")
            assert outcome is not None and outcome.replaced_by == "please_reply"

    run(scenario)


def test_a_131047_dead_letters_a_free_form_reply_without_retrying_it() -> None:
    async def scenario() -> None:
        async with GraphStack("outbound_bots:notify_bot", enforce_window=True) as s:
            assert s.runtime is not None and s.runtime.outbox is not None
            await _tell_landlord(s)  # the tenant's own reply is inside their window: sent
            outbox = s.runtime.outbox
            await s.until(lambda: outbox.window_dead_letters == 1)
            letters = await outbox.dead_letters()
            assert [(d.recipient, d.reason) for d in letters] == [
                (LANDLORD, "outside the 24-hour window (error 131047)")
            ]
            assert s.whatsapp.answers[131047] == 1 and s.sent_to(LANDLORD) == []

    run(scenario)


def test_a_131047_sends_the_fallback_template_instead() -> None:
    async def scenario() -> None:
        async with GraphStack(
            "outbound_bots:notify_bot", enforce_window=True, window_fallback_template="please_reply"
        ) as s:
            s.whatsapp.register_template("please_reply", "en_US")
            await _tell_landlord(s)
            await s.until(lambda: bool(s.sent_to(LANDLORD)))
            assert [a.message.type for a in s.sent_to(LANDLORD)] == ["template"]
            assert s.whatsapp.answers[131047] == 1
            assert s.runtime is not None and s.runtime.outbox is not None
            assert s.runtime.outbox.window_fallbacks == 1

    run(scenario)


class _Sender:
    """A sender that only records what it is given (and never reports back, so replies stay unsent)."""

    def __init__(self) -> None:
        self.taken: list[str] = []

    def enqueue_nowait(
        self, message: OutboundMessage, priority: str = "normal", idempotency_key: str | None = None
    ) -> str:
        self.taken.append(message.to)
        return f"id-{len(self.taken)}"


def test_a_reply_re_sent_after_a_restart_keeps_the_time_its_recipient_last_wrote(tmp_path: Path) -> None:
    """The window's time is committed with the reply: a new process, knowing no one, judges it the same."""
    now = time.time()
    replies = [
        Outgoing(OutboundMessage.of_text("15550007001", "in time"), "normal", "w1#0", NUMBER_A, now - 3600),
        Outgoing(OutboundMessage.of_text("15550007002", "too late"), "normal", "w2#0", NUMBER_A, now - DAY - 60),
    ]

    async def first_run() -> None:
        with Journal.open(tmp_path / "journal.sqlite3") as journal:
            outbox = DurableOutbox()  # no window check: both replies go to the sender, which never sends them
            outbox.attach(_Sender(), NUMBER_A)
            await outbox.open(journal.aio)
            for reply in replies:
                outbox.put(reply, None)
            await outbox.wait_committed(10)

    async def restart() -> tuple[list[str], list[str]]:
        with Journal.open(tmp_path / "journal.sqlite3") as journal:
            sender = _Sender()
            outbox = DurableOutbox(windows=ConversationWindows())
            outbox.attach(sender, NUMBER_A)
            await outbox.open(journal.aio)
            letters = await outbox.dead_letters()
            return sender.taken, [letter.recipient for letter in letters]

    asyncio.run(first_run())
    assert asyncio.run(restart()) == (["15550007001"], ["15550007002"])
