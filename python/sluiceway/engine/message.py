"""What a handler receives: the ``Message`` struct, and the ``Priority`` levels."""

from __future__ import annotations

import enum
from typing import Any

import msgspec


class Priority(enum.IntEnum):
    """Dispatch order: every waiting ``HIGH`` message goes before any ``NORMAL``, and so on."""

    HIGH = 0
    NORMAL = 1
    LOW = 2


class Message(msgspec.Struct, frozen=True):
    """One delivery of an enqueued payload to a handler.

    ``id`` is stable across re-deliveries; ``attempt`` counts deliveries from 1;
    ``enqueued_at`` is wall-clock seconds since the epoch (``time.time()``) when the
    supervisor accepted it; ``ordering_key`` is the key given to ``enqueue_message``.
    """

    id: str
    payload: Any
    priority: Priority
    attempt: int
    enqueued_at: float
    ordering_key: str | None = None
