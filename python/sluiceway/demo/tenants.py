"""Simulated tenants: each sends its conversation as signed webhooks, the way Meta delivers them.

Most messages are texts; a few tenants send a photo of a repair, and their next message taps one
of the urgency buttons the bot answers a photo with (the button's id names the photo's ticket,
which the bot derives from the photo's ``wamid``, so the tenant knows it in advance). Every
message, photo and tap included, gets exactly one reply.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import msgspec
import yarl

from sluiceway.examples.property_bot.answers import ticket_id
from sluiceway.examples.property_bot.tickets import URGENCY_CHOICES
from sluiceway.http import HttpClient, HttpError
from sluiceway.testing.webhooks import kind_message, signed, text_message

#: What simulated tenants write (weighted toward the questions a property bot mostly gets).
#: Maintenance requests are few because each one appends a row (a Sheets write, 60/min/user quota).
PHRASES: list[tuple[str, int]] = [
    ("is {unit} available?", 12),
    ("Is unit {number} still free", 6),
    ("how much is rent for {unit}", 10),
    ("2 bed under 2k", 6),
    ("any studios under $1,300?", 4),
    ("looking for a 3BR, budget is $2,700", 4),
    ("what's available at maple court", 4),
    ("can I view {unit} on saturday at 2pm", 4),
    ("book a viewing for {unit} tomorrow at 10", 2),
    ("hi", 4),
    ("help", 2),
    ("my sink is leaking in {unit}", 1),
    ("heater in unit {number} is broken!!", 1),
]
#: Captions of the repair photos some tenants send (each names its unit, as the bot needs).
PHOTO_CAPTIONS = [
    "water leak under the sink in {unit}",
    "broken window in unit {number}",
    "mould on the bathroom ceiling in {unit}",
]
#: The share of messages that are a photo followed by a tap on an urgency button (two messages).
#: Few, because each photo appends a Maintenance row and each tap updates one, and every write makes
#: the next Maintenance read a miss: the default demo already spends ~280 of the emulator's 300 Sheets
#: requests a minute, and at 0.02 (~40 photos) it ran out and stalled ~27 s (p99 29 s, measured).
PHOTO_SHARE = 0.005
UNITS = [f"{floor}{letter}" for floor in range(1, 5) for letter in "ABCD"]
NUMBERS = [str(n) for n in range(1, 13)] + [str(n) for n in range(201, 209)]

#: How long a tenant waits after a 503 (Meta's re-delivery is slower; the demo is impatient).
RETRY_DELAY = 0.5


class Sent(msgspec.Struct):
    """One inbound message of the demo: who, what, and when it was first posted."""

    tenant: str
    wamid: str
    index: int
    #: A text's body, a photo's caption, a tapped button's title.
    text: str
    posted_at: float = 0.0
    accepted_at: float = 0.0
    attempts: int = 0
    #: Meta's message type (``text``, ``image``, ``interactive``) and, for other than text, its object.
    kind: str = "text"
    content: dict[str, Any] | None = None

    def webhook(self) -> dict[str, Any]:
        """The messages webhook that carries this message."""
        if self.kind == "text":
            return text_message(self.tenant, self.wamid, self.text)
        return kind_message(self.tenant, self.wamid, self.kind, self.content)


def conversation(tenant_index: int, messages: int, rng: random.Random) -> list[Sent]:
    """The scripted messages of one tenant (deterministic for a given ``rng`` state)."""
    tenant = f"1555{tenant_index:07d}"
    weights = [w for _, w in PHRASES]
    out: list[Sent] = []
    for index in range(messages):
        wamid = f"wamid.demo.{tenant}.{index}"
        previous = out[-1] if out else None
        if previous is not None and previous.kind == "image":
            out.append(_tap(previous, wamid, index, rng))
            continue
        if index < messages - 1 and rng.random() < PHOTO_SHARE:
            caption = rng.choice(PHOTO_CAPTIONS).format(unit=rng.choice(UNITS), number=rng.choice(NUMBERS))
            photo = {"id": f"media.demo.{tenant}.{index}", "mime_type": "image/jpeg", "caption": caption}
            out.append(Sent(tenant, wamid, index, caption, kind="image", content=photo))
            continue
        template = rng.choices([p for p, _ in PHRASES], weights)[0]
        text = template.format(unit=rng.choice(UNITS), number=rng.choice(NUMBERS))
        out.append(Sent(tenant, wamid, index, text))
    return out


def _tap(photo: Sent, wamid: str, index: int, rng: random.Random) -> Sent:
    """The tenant taps one of the urgency buttons the bot answered ``photo`` with."""
    level = rng.choice(list(URGENCY_CHOICES))
    title = URGENCY_CHOICES[level][0]
    reply = {"id": f"urgency:{level}:{ticket_id(photo.wamid)}", "title": title}
    return Sent(
        photo.tenant, wamid, index, title, kind="interactive", content={"type": "button_reply", "button_reply": reply}
    )


class TenantCrowd:
    """Posts every tenant's conversation to ``url`` concurrently, each tenant's messages in order.

    Each tenant's messages are due at random moments spread uniformly over ``duration``
    seconds (so all tenants together offer a steady rate); a tenant posts a message when it
    is due and the previous one was accepted (answered 200). A 503 is retried after
    ``RETRY_DELAY``. A share of messages is posted a
    second time (``redeliver``), as Meta does, to exercise de-duplication.
    """

    def __init__(
        self,
        url: str,
        app_secret: str,
        conversations: list[list[Sent]],
        *,
        duration: float = 10.0,
        redeliver: float = 0.02,
        seed: int = 7,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._secret = app_secret
        self.conversations = conversations
        self._duration = duration
        self._redeliver = redeliver
        self._rng = random.Random(seed)
        self._clock = clock
        self.posted = 0
        self.accepted = 0
        self.redelivered = 0
        self.rejected = 0
        self.errors = 0

    async def run(self) -> None:
        """Post every conversation; returns when every message was accepted."""
        url = yarl.URL(self.url)
        async with HttpClient(str(url.origin()), max_connections=200, timeout=60.0) as http:
            await asyncio.gather(*(self._tenant(http, url.raw_path_qs, c) for c in self.conversations))

    async def _tenant(self, http: HttpClient, path: str, messages: list[Sent]) -> None:
        start = self._clock()
        due = sorted(self._rng.random() * self._duration for _ in messages)
        for message, at in zip(messages, due, strict=False):
            await asyncio.sleep(max(0.0, start + at - self._clock()))
            message.posted_at = self._clock()
            await self._post(http, path, message)
            message.accepted_at = self._clock()
            if self._rng.random() < self._redeliver:
                self.redelivered += 1
                await self._post(http, path, message)

    async def _post(self, http: HttpClient, path: str, message: Sent) -> None:
        body, headers = signed(message.webhook(), self._secret)
        while True:
            message.attempts += 1
            self.posted += 1
            try:
                status = (await http.post(path, body, headers=headers)).status
            except HttpError:
                self.errors += 1
                status = 0
            if status == 200:
                self.accepted += 1
                return
            if status not in (0, 503):
                raise RuntimeError(f"the ingress answered {status} to {message.wamid}")
            self.rejected += 1
            await asyncio.sleep(RETRY_DELAY)
