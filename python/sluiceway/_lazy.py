"""Lazy exports for a package's ``__init__``: a name imports its module on first use (PEP 562).

``import sluiceway`` runs in every engine worker at start, so the package must not import what
only some users need (the Google API client, aiohttp, rich): the top level and the subpackages
whose exports pull such modules in resolve those names on first access instead.

A package does::

    if TYPE_CHECKING:                      # what mypy and IDEs see: the same names, imported
        from sluiceway.sheets.client import SheetsClient as SheetsClient
    else:
        __getattr__, __dir__ = lazy_exports(__name__, {"SheetsClient": "sluiceway.sheets.client"})

The ``else`` keeps ``__getattr__`` away from type checkers: a module ``__getattr__`` would make
every misspelt name an ``Any`` for them instead of an error.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose ``exports`` map a public name to its module.

    A name mapped to the submodule of the same name (``"engine": "sluiceway.engine"``) resolves to
    that submodule. A resolved name is stored in the package, so it costs one lookup after that.
    """
    namespace = vars(sys.modules[package])

    def __getattr__(name: str) -> object:
        module_name = exports.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(module_name)
        value = module if module_name == f"{package}.{name}" else getattr(module, name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__
