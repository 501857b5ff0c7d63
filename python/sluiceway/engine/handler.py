"""Naming a handler (or hook) so that a fresh worker process can import it."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def spec_of(target: str | Callable[..., Any], what: str) -> str:
    """The ``"module:qualname"`` of ``target``, checked to import back to the same object.

    ``ValueError`` (naming ``what``) for a lambda, a nested function, or one defined in
    ``__main__``, none of which a spawned worker can import.
    """
    if isinstance(target, str):
        module_name, _, name = target.partition(":")
        if not module_name or not name:
            raise ValueError(f"{what} must be 'module:function', got {target!r}")
        return target
    if not callable(target):
        raise ValueError(f"{what} must be a callable or a 'module:function' string, got {target!r}")
    module: str | None = getattr(target, "__module__", None)
    qualname: str | None = getattr(target, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise ValueError(f"{what} {target!r} is not importable by name; define it at module level")
    if module == "__main__":
        raise ValueError(
            f"{what} {qualname!r} is defined in __main__, which worker processes cannot import; move it to a module"
        )
    spec = f"{module}:{qualname}"
    if load(spec) is not target:
        raise ValueError(f"{what} {target!r} does not import back as {spec!r}; define it at module level")
    return spec


def load(spec: str) -> Callable[..., Any]:
    """Import ``"module:qualname"`` and return the callable it names."""
    module_name, _, qualname = spec.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{spec!r} names {type(target).__name__}, which is not callable")
    return target  # type: ignore[no-any-return]
