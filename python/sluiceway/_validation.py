"""Checks shared by the configuration Structs; each raises ``ValueError`` naming the field.

msgspec does not type-check a Struct built in Python code, so every check also
refuses values of the wrong type (``bool`` included) with the same clear error.
"""

from __future__ import annotations

import math


def require(ok: bool, field: str, value: object, rule: str) -> None:
    """``ValueError("<field> must be <rule>, got <value>")`` unless ``ok``."""
    if not ok:
        raise ValueError(f"{field} must be {rule}, got {value!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def positive(field: str, value: object) -> None:
    """A finite number > 0 (seconds, rates, sizes)."""
    require(_is_number(value) and math.isfinite(value) and value > 0, field, value, "a positive finite number")  # type: ignore[arg-type, operator]


def non_negative(field: str, value: object) -> None:
    """A finite number >= 0."""
    require(_is_number(value) and math.isfinite(value) and value >= 0, field, value, "a non-negative finite number")  # type: ignore[arg-type, operator]


def integer_at_least(field: str, value: object, minimum: int) -> None:
    """An ``int`` (not a ``bool``) >= ``minimum``."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    require(ok, field, value, f"an integer >= {minimum}")


def fraction(field: str, value: object, *, closed_right: bool = True) -> None:
    """A number in (0, 1], or (0, 1) when ``closed_right`` is false."""
    ok = _is_number(value) and (0 < value <= 1 if closed_right else 0 < value < 1)  # type: ignore[operator]
    require(ok, field, value, f"in (0, 1{']' if closed_right else ')'}")


def percent(field: str, value: object) -> None:
    """A percentage in (0, 100]."""
    require(_is_number(value) and 0 < value <= 100, field, value, "a percentage in (0, 100]")  # type: ignore[operator]


def ordered(low_name: str, low: float, high_name: str, high: float) -> None:
    """``low <= high``, e.g. a warning level not above its critical level."""
    if low > high:
        raise ValueError(f"{low_name} ({low!r}) must not exceed {high_name} ({high!r})")
