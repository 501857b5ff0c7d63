"""Every exception the package defines is a SluicewayError, so ``except SluicewayError`` catches all of ours."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import sluiceway
from sluiceway.errors import SluicewayError

#: Exception classes that may stay outside the hierarchy, each with the reason.
ALLOWED_OUTSIDE = {
    # Raised and caught inside the Sheets emulator, which turns it into an HTTP error answer: it never reaches a caller.
    "sluiceway.testing.sheets_grid.ApiError",
}


def _package_modules() -> list[str]:
    names = [sluiceway.__name__]
    for info in pkgutil.walk_packages(sluiceway.__path__, prefix=f"{sluiceway.__name__}."):
        # A ``__main__`` module runs its program when imported.
        if info.name.rsplit(".", 1)[-1] != "__main__":
            names.append(info.name)
    return names


def _exceptions_defined_in(module_name: str) -> list[type[BaseException]]:
    module = importlib.import_module(module_name)
    return [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == module_name
    ]


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def test_the_walk_finds_the_known_exceptions() -> None:
    """The walk sees subpackages' modules and the Rust core (so an empty result cannot pass the test below)."""
    found = {_name(cls) for module in _package_modules() for cls in _exceptions_defined_in(module)}
    known = {
        "sluiceway.http.client.HttpError",
        "sluiceway.whatsapp.errors.SendError",
        "sluiceway.engine.errors.Backpressure",
    }
    assert known <= found
    assert any(name.startswith("sluiceway._core.") for name in found), found


def test_every_exception_class_of_the_package_is_a_sluiceway_error() -> None:
    """Walks every module of the package; each exception class defined there derives from SluicewayError."""
    outside = sorted(
        _name(cls)
        for module in _package_modules()
        for cls in _exceptions_defined_in(module)
        if not issubclass(cls, SluicewayError)
    )
    assert [name for name in outside if name not in ALLOWED_OUTSIDE] == []
    # An allowlist entry whose class is gone or fixed must be removed, not kept forever.
    assert set(outside) == ALLOWED_OUTSIDE
