"""``BotTester``: unit-test a bot's handler in pytest, with no HTTP server, worker process or WhatsApp.

It runs the bot's real handler with the real ``Context``, as a worker does: the message goes
through the same webhook normalisation as production (``inbound_messages``), ``ctx.sheets`` is a
real ``SheetsClient`` (cache and all) whose requests a ``SheetsEmulator`` answers in process, and
what the handler sends is what the runtime would hand to the sender. A handler that raises is
retried up to ``max_attempts`` times, each with a fresh ``Context`` and ``ctx.attempt`` counting
up, and then becomes a dead letter, as in the engine (retries run at once: backoff timing is the
engine's business, tested there); the bot's ``on_error`` answers its last failure, as in a worker.

This module sits above ``sluiceway.app`` on purpose (it drives a ``Bot``); the rest of
``sluiceway.testing`` stays below it.
"""

from __future__ import annotations

import inspect
import os
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec

from sluiceway.app.bot import Bot
from sluiceway.app.context import Context, MetricSample, Outgoing
from sluiceway.app.inbound import InboundMessage, inbound_messages
from sluiceway.app.on_error import answer_failure
from sluiceway.app.priority import KeywordClassifier, PriorityLevel
from sluiceway.app.settings import Settings
from sluiceway.app.worker import Resources
from sluiceway.engine import DeadLetter, ParallelizerConfig, Priority
from sluiceway.sheets.config import SheetsClientConfig
from sluiceway.testing.conversation import inbound_message, readable
from sluiceway.testing.sheets_emulator import SheetsEmulator
from sluiceway.testing.sheets_grid import rows_from_csv
from sluiceway.testing.whatsapp_emulator import DEFAULT_PHONE_NUMBER_ID
from sluiceway.whatsapp.messages import OutboundMessage
from sluiceway.whatsapp.webhooks import (
    Change,
    ChangeValue,
    Contact,
    Entry,
    InboundInteractive,
    InboundText,
    Metadata,
    Profile,
    Reply,
    WebhookMessage,
    WebhookPayload,
)

#: The spreadsheet id the tester serves ``sheets`` under unless the settings name one.
TEST_SPREADSHEET_ID = "test-spreadsheet"
#: The sender of ``send`` unless one is given.
DEFAULT_SENDER = "15550000001"

#: A sheet's contents: a CSV file's path, or its rows (the first row is usually the header).
SheetSource = str | os.PathLike[str] | Sequence[Sequence[Any]]

_ENGINE_PRIORITY: dict[PriorityLevel, Priority] = {
    "high": Priority.HIGH,
    "normal": Priority.NORMAL,
    "low": Priority.LOW,
}


class BotReply(msgspec.Struct, frozen=True):
    """What the bot did with one message: what it sent, the metrics it recorded, or its dead letter.

    ``sent`` holds the messages of the attempt that succeeded (a failed attempt sends nothing,
    as in the runtime), each with its send priority and idempotency key; for a dead letter,
    what the bot's ``on_error`` sent. ``text`` and
    ``buttons`` read the messages addressed to the sender as a user would see them.
    """

    inbound: InboundMessage
    #: The queue priority the ingress gives the inbound message ("high" for an emergency keyword).
    priority: PriorityLevel
    sent: list[Outgoing]
    metrics: list[MetricSample]
    attempts: int
    dead_letter: DeadLetter | None = None

    @property
    def ok(self) -> bool:
        """The handler succeeded (within ``max_attempts``)."""
        return self.dead_letter is None

    @property
    def messages(self) -> list[OutboundMessage]:
        """Every message the handler sent, to anyone, in order."""
        return [outgoing.message for outgoing in self.sent]

    @property
    def texts(self) -> list[str]:
        """The readable text of each message sent back to the sender, in order."""
        return [readable(m)[0] for m in self.messages if m.to == self.inbound.sender]

    @property
    def text(self) -> str:
        """The replies to the sender as one text (joined by newlines); "" when there was none."""
        return "\n".join(self.texts)

    @property
    def buttons(self) -> list[str]:
        """The titles of the reply buttons and list rows offered to the sender."""
        return [title for m in self.messages if m.to == self.inbound.sender for title in readable(m)[1]]


class BotTester:
    """Sends messages to ``bot``'s handler in process and returns what it did (a ``BotReply``).

    ``sheets`` fills the spreadsheet ``ctx.sheets`` reads, sheet name → CSV path or rows (then
    ``ctx.settings.spreadsheet_id`` names it), or is a ``SheetsEmulator`` you set up yourself
    (to inject faults). Without it ``ctx.sheets`` is None, as for a bot with no spreadsheet.
    ``settings`` default to ``Settings()`` (nothing read from the environment or a file);
    like a worker, the tester gives them to the bot (``bot.use_settings``).

    Example::

        async with BotTester(bot, sheets={"Units": "data/units.csv"}) as tester:
            reply = await tester.send("is 3D available?", sender="+15551234567")
            assert "3D" in reply.text
            tester.sheet_rows("Units")          # what the bot wrote, as stored
            await tester.tap("Book a viewing")  # a reply button the bot offered

    The bot's ``on_worker_start`` hooks run on entry and ``on_worker_stop`` hooks on exit.
    """

    def __init__(
        self,
        bot: Bot,
        *,
        sheets: Mapping[str, SheetSource] | SheetsEmulator | None = None,
        settings: Settings | None = None,
        max_attempts: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        bot.check()
        settings = settings if settings is not None else Settings()
        if sheets is not None and not settings.spreadsheet_id:
            settings = msgspec.structs.replace(settings, spreadsheet_id=TEST_SPREADSHEET_ID)
        self.bot = bot
        self.settings = settings
        self.max_attempts = max_attempts if max_attempts is not None else ParallelizerConfig().max_attempts
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        self.emulator = _emulator_for(sheets, settings.spreadsheet_id) if sheets is not None else None
        #: Every reply so far, oldest first.
        self.replies: list[BotReply] = []
        self._classify = KeywordClassifier(settings.high_priority_keywords)
        self._clock = clock
        self._ids = 0
        self._resources: Resources | None = None

    @property
    def dead_letters(self) -> list[DeadLetter]:
        """The messages whose handler failed every attempt, oldest first."""
        return [reply.dead_letter for reply in self.replies if reply.dead_letter is not None]

    def sheet_rows(self, sheet: str) -> list[list[Any]]:
        """The cells of ``sheet`` as stored now (what the bot wrote included)."""
        if self.emulator is None:
            raise ValueError("this tester has no spreadsheet: pass sheets= to BotTester")
        return self.emulator.values(self.settings.spreadsheet_id, sheet)

    async def start(self) -> None:
        """Open the Sheets client and run the bot's ``on_worker_start`` hooks (``send`` does it on first use)."""
        if self._resources is not None:
            return
        sheets = None
        if self.emulator is not None:
            # The quota the runtime gives a single worker.
            config = SheetsClientConfig(
                read_requests_per_minute=self.settings.sheets_read_requests_per_minute,
                write_requests_per_minute=self.settings.sheets_write_requests_per_minute,
            )
            sheets = self.emulator.client(config)
        self.bot.use_settings(self.settings)
        self._resources = Resources(self.bot, self.settings, sheets)
        for hook in self.bot.worker_start_hooks:
            outcome = hook(self._resources)
            if inspect.isawaitable(outcome):
                await outcome

    async def aclose(self) -> None:
        """Run the bot's ``on_worker_stop`` hooks and close the Sheets client."""
        resources, self._resources = self._resources, None
        if resources is None:
            return
        try:
            for hook in self.bot.worker_stop_hooks:
                outcome = hook(resources)
                if inspect.isawaitable(outcome):
                    await outcome
        finally:
            if resources.sheets is not None:
                await resources.sheets.aclose()

    async def __aenter__(self) -> BotTester:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def send(self, text: str, sender: str = DEFAULT_SENDER, *, name: str = "Test User") -> BotReply:
        """Deliver a text message from ``sender`` (digits, an optional leading ``+``) to the handler."""
        wa_id = _wa_id(sender)
        if not text:
            raise ValueError("text must not be empty: WhatsApp delivers no empty text messages")
        return await self._receive(wa_id, name, type="text", text=InboundText(text))

    async def send_kind(
        self,
        kind: str,
        content: Any,
        sender: str = DEFAULT_SENDER,
        *,
        name: str = "Test User",
        reply_to: str | None = None,
    ) -> BotReply:
        """Deliver a message of any ``kind`` Meta sends, ``content`` its object in Meta's webhook shape.

        E.g. ``send_kind("image", {"id": "media-1", "mime_type": "image/jpeg", "caption": "leak in 4B"})``
        or ``send_kind("location", {"latitude": 51.5, "longitude": -0.12})``; ``reply_to`` quotes a
        ``wamid``. ``ValueError`` if the kind or its content is not Meta's.
        """
        wa_id = _wa_id(sender)
        message = inbound_message(wa_id, "wamid.placeholder", 0, kind, "", content, reply_to, DEFAULT_PHONE_NUMBER_ID)
        typed = {f: getattr(message, f) for f in message.__struct_fields__ if f in (kind, "context")}
        return await self._receive(wa_id, name, type=kind, **typed)

    async def tap(self, title: str, sender: str = DEFAULT_SENDER, *, name: str = "Test User") -> BotReply:
        """Tap the reply button or list row titled ``title`` in the latest interactive message sent to ``sender``.

        The handler gets what WhatsApp delivers for a tap (``msg.kind`` is ``"button_reply"`` or
        ``"list_reply"``, ``msg.text`` the title, ``msg.reply_id`` the choice's id). ``ValueError``
        if that message offers no such choice.
        """
        wa_id = _wa_id(sender)
        choices = self._latest_choices(wa_id)
        if title not in choices:
            offered = ", ".join(repr(t) for t in choices) or "nothing"
            raise ValueError(f"the latest interactive message to {wa_id} offers {offered}, not {title!r}")
        kind, choice_id = choices[title]
        choice = Reply(choice_id, title)
        interactive = InboundInteractive(
            kind,
            button_reply=choice if kind == "button_reply" else None,
            list_reply=choice if kind == "list_reply" else None,
        )
        return await self._receive(wa_id, name, type="interactive", interactive=interactive)

    def _latest_choices(self, wa_id: str) -> dict[str, tuple[str, str]]:
        """Title → (reply kind, id) of the choices in the latest interactive message sent to ``wa_id``."""
        for reply in reversed(self.replies):
            for message in reversed(reply.messages):
                if message.to != wa_id or message.interactive is None:
                    continue
                action = message.interactive.action
                choices = {
                    b["reply"]["title"]: ("button_reply", b["reply"]["id"])
                    for b in action.get("buttons", [])
                    if "reply" in b
                }
                for section in action.get("sections", []):
                    choices.update({row["title"]: ("list_reply", row["id"]) for row in section.get("rows", [])})
                return choices
        return {}

    async def _receive(self, wa_id: str, name: str, **content: Any) -> BotReply:
        """Wrap one message from ``wa_id`` in a webhook as Meta does, normalise it as the ingress does, deliver it."""
        await self.start()
        self._ids += 1
        now = self._clock()
        message = WebhookMessage(from_=wa_id, id=f"wamid.test-{self._ids:06d}", timestamp=str(int(now)), **content)
        value = ChangeValue(
            "whatsapp",
            Metadata("15550000000", DEFAULT_PHONE_NUMBER_ID),
            contacts=[Contact(wa_id, Profile(name))],
            messages=[message],
        )
        payload = WebhookPayload("whatsapp_business_account", [Entry("0", [Change("messages", value)])])
        [inbound] = inbound_messages(payload, received_at=now)
        reply = await self._deliver(inbound)
        self.replies.append(reply)
        return reply

    async def _deliver(self, inbound: InboundMessage) -> BotReply:
        resources = self._resources
        assert resources is not None  # start() ran
        priority = self._classify(inbound.text)
        error = ""
        trace = ""
        answered: list[Outgoing] = []
        for attempt in range(1, self.max_attempts + 1):
            ctx = Context(inbound, resources.settings, resources.sheets, attempt=attempt)
            try:
                await self.bot.dispatch(inbound, ctx)
            except Exception as exc:  # the engine catches every handler failure the same way
                error, trace = f"{type(exc).__name__}: {exc}", traceback.format_exc()
                if attempt == self.max_attempts:  # the last failure: the bot's on_error answers it
                    fresh = Context(inbound, resources.settings, resources.sheets, attempt=attempt)
                    answered = await answer_failure(self.bot, inbound, fresh, exc)
                continue
            result = ctx.result()
            return BotReply(inbound, priority, result.outgoing, result.metrics, attempt)
        letter = DeadLetter(
            id=inbound.id,
            payload=msgspec.to_builtins(inbound),
            priority=_ENGINE_PRIORITY[priority],
            attempts=self.max_attempts,
            enqueued_at=inbound.received_at,
            dead_at=self._clock(),
            reason="error",
            error=error,
            traceback=trace,
        )
        return BotReply(inbound, priority, answered, [], self.max_attempts, letter)


def _wa_id(sender: str) -> str:
    """A sender's WhatsApp id: the phone number's digits, without the ``+``."""
    wa_id = sender.removeprefix("+")
    if not wa_id.isdigit():
        raise ValueError(f"sender must be a phone number in digits (e.g. 15551234567), got {sender!r}")
    return wa_id


def _emulator_for(sheets: Mapping[str, SheetSource] | SheetsEmulator, spreadsheet_id: str) -> SheetsEmulator:
    if isinstance(sheets, SheetsEmulator):
        return sheets
    if not sheets:
        raise ValueError("sheets must name at least one sheet (name → CSV path or rows), or be None")
    contents: dict[str, list[list[Any]]] = {}
    for name, source in sheets.items():
        if isinstance(source, str | os.PathLike):
            path = Path(source)  # a str is a path here, never CSV text
            if not path.is_file():
                raise ValueError(f"sheet {name!r}: no such CSV file {str(path)!r}")
            contents[name] = rows_from_csv(path)
        else:
            contents[name] = [list(row) for row in source]
    emulator = SheetsEmulator()
    emulator.add_spreadsheet(spreadsheet_id, contents)
    return emulator
