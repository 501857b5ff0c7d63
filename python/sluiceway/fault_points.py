"""Test-only fault points: a ``kill -9`` of the whole process group at a named moment of a message's life.

Crash recovery can only be tested at the moments that matter if a kill lands on them every time,
which a kill from outside at a random time does not. ``SLUICEWAY_FAULT_POINT=name:count``, read
once when this module is first imported, makes the ``count``-th time this process reaches the
point ``name`` send SIGKILL to its own process group: the supervisor and every worker die at once,
as with ``kill -9 -<pgid>``. Run the process in its own group (``start_new_session=True``), or the
kill takes its parent too. Counts are per process; ``mid_handler`` is reached in the workers
(which inherit the environment), the other points in the supervisor.

Unset, as everywhere outside tests, a point costs one comparison with ``None``.
"""

from __future__ import annotations

import os
import signal

#: The environment variable that arms one point: ``name:count``.
FAULT_POINT_ENV = "SLUICEWAY_FAULT_POINT"

#: Every point, in the order a message meets them, and where it sits.
POINTS: dict[str, str] = {
    "before_commit": "the ingress verified a webhook; its message is not committed to the journal yet",
    "after_commit": "the message is committed (not yet answered 200) and not yet handed to a worker",
    "mid_handler": "in a worker: the bot's handler has run, its replies are not reported yet",
    "after_handler": "the supervisor has the handler's replies; they are not committed to the outbox yet",
    "before_mark_sent": "WhatsApp took a reply (it has a wamid); the outbox has not marked it sent yet",
}


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    name, _, count = value.partition(":")
    if name not in POINTS:
        raise ValueError(f"{FAULT_POINT_ENV}={value!r}: unknown point {name!r}, expected one of {', '.join(POINTS)}")
    if not count.isdigit() or int(count) < 1:
        raise ValueError(f"{FAULT_POINT_ENV}={value!r}: the count after ':' must be a whole number >= 1")
    return name, int(count)


_armed = _parse(os.environ.get(FAULT_POINT_ENV))
_reached = 0


def reached(name: str) -> None:
    """Mark that this process is at the point ``name`` (one of ``POINTS``); the armed one kills on its count."""
    if _armed is None:
        return
    _count(name)


def _count(name: str) -> None:
    global _reached
    assert _armed is not None
    point, count = _armed
    if name != point:
        return
    _reached += 1
    if _reached == count:
        os.killpg(os.getpgrp(), signal.SIGKILL)
