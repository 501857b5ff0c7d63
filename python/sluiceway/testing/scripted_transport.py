"""A WhatsApp ``Transport`` that answers from a script instead of the network, for virtual-time tests."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import msgspec

from sluiceway.whatsapp.cloud_api import SendResult
from sluiceway.whatsapp.errors import SendError
from sluiceway.whatsapp.messages import OutboundMessage


class Sent(msgspec.Struct, frozen=True):
    """One call the transport received: when (on its clock), what, and the answer (a wamid or an error code)."""

    at: float
    message: OutboundMessage
    wamid: str | None
    error_code: int | None


class ScriptedTransport:
    """Answers each send with ``script(message)``: ``None`` for success or a ``SendError`` to raise.

    Every call is recorded in ``calls`` with the clock's time, so tests can check the
    limits the sender kept and replay which message got which answer.

    Example::

        faults = iter([SendError("boom", http_status=500)])
        transport = ScriptedTransport(lambda m: next(faults, None), clock=clock)
    """

    def __init__(
        self, script: Callable[[OutboundMessage], SendError | None] = lambda m: None, *, clock: Callable[[], float]
    ) -> None:
        self.script = script
        self.calls: list[Sent] = []
        self._clock = clock
        self._ids = itertools.count(1)

    async def send(self, message: OutboundMessage) -> SendResult:
        now = self._clock()
        await asyncio.sleep(0)  # a real send yields to the loop at least once
        error = self.script(message)
        if error is not None:
            self.calls.append(Sent(now, message, None, error.code))
            raise error
        wamid = f"wamid.scripted{next(self._ids)}"
        self.calls.append(Sent(now, message, wamid, None))
        return SendResult(wamid)
