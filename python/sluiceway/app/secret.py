"""A string that never shows itself: tokens and app secrets in settings."""

from __future__ import annotations

import hmac

from sluiceway.engine.redis_scripts import redacted_url

#: What a secret prints as, wherever it ends up (repr, str, logs, ``config check``).
MASK = "**********"


class Secret:
    """Holds a secret value; ``repr``/``str`` print a mask, ``reveal()`` gives the value.

    Example::

        token = Secret("EAAG...")
        print(token)            # **********
        headers = {"Authorization": f"Bearer {token.reveal()}"}

    Warning: masking protects against accidental printing only; anything that holds the
    object can still call ``reveal()``.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"a secret must be a str, not {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        """The secret itself: pass it straight to where it is used, never to a log."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        # Constant time, so comparing secrets never leaks a prefix through timing.
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)


class RedisUrl(Secret):
    """A Redis URL whose password (if any) never shows: it prints as the URL with ``****`` for it.

    Example::

        url = RedisUrl("redis://app:hunter2@redis.internal:6379/0")
        print(url)              # redis://app:****@redis.internal:6379/0
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"RedisUrl({redacted_url(self.reveal())!r})"

    def __str__(self) -> str:
        return redacted_url(self.reveal())
