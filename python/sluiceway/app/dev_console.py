"""The console of ``sluiceway dev``: type what a tenant writes, read what the bot answers.

Each line is one message from the tenant ``DEFAULT_SENDER``, or from another one with a
``+15551234567: text`` prefix. The console posts it to the bot through the WhatsApp emulator (signed,
as Meta would) and prints each reply the bot sends as the emulator takes it. At the end of input
(Ctrl-D, or the end of a pipe) it lets the caller drain the bot, prints the replies that came
meanwhile and returns, so ``printf 'hi\\nbye\\n' | sluiceway dev app:bot`` prints both answers.

The emulators and the runtime are made by the ``sluiceway dev`` command (this package does not
import the test emulators); the console sees the emulator through the small ``Chat`` protocol.
"""

from __future__ import annotations

import asyncio
import re
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Protocol, TextIO

#: The tenant a line without a ``+phone:`` prefix comes from.
DEFAULT_SENDER = "15550000001"
#: Seconds between two looks at the emulator's conversation for new replies.
REPLY_POLL_INTERVAL = 0.05

_ADDRESSED = re.compile(r"^\s*\+?(\d{5,15})\s*:\s*(.*)$")


class ChatLine(Protocol):
    """One message of the emulator's conversation view."""

    @property
    def direction(self) -> str: ...
    @property
    def to(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def buttons(self) -> list[str]: ...


class Chat(Protocol):
    """What the console needs of the WhatsApp emulator."""

    @property
    def conversation(self) -> Sequence[ChatLine]: ...

    async def post_inbound(self, sender: str, text: str = "") -> tuple[str, int]: ...


def parse_line(line: str, default_sender: str = DEFAULT_SENDER) -> tuple[str, str] | None:
    """``(sender, text)`` of one console line, or None for a blank one.

    Example::

        parse_line("is 3D available?")         # ("15550000001", "is 3D available?")
        parse_line("+15551234567: any 2D?")    # ("15551234567", "any 2D?")
    """
    line = line.strip()
    if not line:
        return None
    addressed = _ADDRESSED.match(line)
    if addressed is not None and addressed.group(2).strip():
        return addressed.group(1), addressed.group(2).strip()
    return default_sender, line


def format_reply(message: ChatLine) -> str:
    """How a reply of the bot is printed: recipient, text and its buttons."""
    buttons = f"  [{' | '.join(message.buttons)}]" if message.buttons else ""
    return f"bot → +{message.to}: {message.text}{buttons}"


class DevConsole:
    """Posts typed lines as tenant messages to ``chat`` and prints the bot's replies to ``out``.

    Example::

        console = DevConsole(whatsapp_emulator, sys.stdout)
        await console.run(stdin_lines(), drain=runtime.stop)
    """

    def __init__(self, chat: Chat, out: TextIO, default_sender: str = DEFAULT_SENDER) -> None:
        self._chat = chat
        self._out = out
        self._default_sender = default_sender
        self._printed = len(chat.conversation)

    async def run(self, lines: AsyncIterator[str], drain: Callable[[], Awaitable[object]]) -> None:
        """Post every line of ``lines``; at their end await ``drain()`` (which finishes the bot's work)."""
        watcher = asyncio.create_task(self._print_replies_forever())
        try:
            async for line in lines:
                parsed = parse_line(line, self._default_sender)
                if parsed is None:
                    continue
                sender, text = parsed
                try:
                    _, status = await self._chat.post_inbound(sender, text)
                except ValueError as error:
                    self._say(f"not sent: {error}")
                    continue
                if status != 200:
                    self._say(f"the bot answered HTTP {status} to the message from +{sender}")
            await drain()
        finally:
            watcher.cancel()
        self.print_new_replies()

    def print_new_replies(self) -> None:
        """Print the replies the emulator took since the last call."""
        conversation = self._chat.conversation
        for message in conversation[self._printed :]:
            if message.direction == "outbound":
                self._say(format_reply(message))
        self._printed = len(conversation)

    async def _print_replies_forever(self) -> None:
        while True:
            self.print_new_replies()
            await asyncio.sleep(REPLY_POLL_INTERVAL)

    def _say(self, line: str) -> None:
        print(line, file=self._out, flush=True)


async def stdin_lines(stream: TextIO | None = None) -> AsyncIterator[str]:
    """The lines of ``stream`` (default ``sys.stdin``) as they are typed or piped, until its end.

    Read in a daemon thread, so a Ctrl-C while it waits for a line does not wait for Enter.
    """
    stream = sys.stdin if stream is None else stream
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        try:
            for line in stream:
                loop.call_soon_threadsafe(queue.put_nowait, line)
            loop.call_soon_threadsafe(queue.put_nowait, None)
        except RuntimeError:  # the loop closed (Ctrl-C) while a line was typed: nobody is reading
            return

    threading.Thread(target=read, name="sluiceway-dev-stdin", daemon=True).start()
    while (line := await queue.get()) is not None:
        yield line
