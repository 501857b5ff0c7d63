"""The package's layering, read from the source: no cycle between subpackages, and the rules below.

Every ``import`` counts, wherever it is: at module level, inside a function (a deferred import is
still a dependency, only a later one) and under ``if TYPE_CHECKING:`` (not executed, but the
package still knows the other one's types, and the lazy top level declares what it exports
only there). So a dependency cannot hide from these tests by moving into a function.

Nodes are the top-level subpackages and modules of ``sluiceway`` (``engine``, ``histogram``,
``cli``...) plus ``sluiceway`` itself for names imported from the package's ``__init__``.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

import sluiceway

PACKAGE = Path(sluiceway.__file__).resolve().parent
#: The node of names imported from the package's own ``__init__`` (``from sluiceway import Bot``).
TOP = "sluiceway"
#: Above the library: may import anything below, and nothing imports them.
APPLICATIONS = {"cli", "demo"}
#: Shipped with the library for tests, the demo and as a sample; library code never imports them.
COMPANIONS = {"testing", "examples"}
#: What the engine must not know: data sources, the provider, the monitor and everything above.
ENGINE_MUST_NOT_IMPORT = {"sheets", "whatsapp", "monitor", "app", "testing", "demo", "examples", "cli"}


class Import(msgspec.Struct, frozen=True):
    """One import of a sluiceway module by another: ``module`` (file) imports ``target`` (``name`` of it)."""

    module: str
    line: int
    target: str
    name: str | None

    def __str__(self) -> str:
        what = f"from {self.target} import {self.name}" if self.name else f"import {self.target}"
        return f"{self.module}:{self.line}: {what}"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_submodule(dotted: str) -> bool:
    path = PACKAGE.parent.joinpath(*dotted.split("."))
    # .pyi: the Rust extension sluiceway._core has its stub next to where its binary lands.
    return path.with_suffix(".py").exists() or path.with_suffix(".pyi").exists() or (path / "__init__.py").exists()


def imports_of(path: Path) -> Iterator[Import]:
    """Every import of a ``sluiceway`` module in ``path``: a dotted target, and the name for ``from`` imports."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == TOP:
                    yield Import(module, node.lineno, alias.name, None)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] != TOP:
                continue
            for alias in node.names:
                # `from sluiceway.x import y` imports the submodule sluiceway.x.y when there is one.
                submodule = f"{base}.{alias.name}"
                yield Import(module, node.lineno, submodule if is_submodule(submodule) else base, alias.name)


def node_of(dotted: str) -> str:
    """The layer a dotted module belongs to: its first component below ``sluiceway``, or ``sluiceway``."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else TOP


ALL_IMPORTS = [imp for path in sorted(PACKAGE.rglob("*.py")) for imp in imports_of(path)]


def between_packages() -> list[Import]:
    return [imp for imp in ALL_IMPORTS if node_of(imp.module) != node_of(imp.target)]


def cycle_in(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path ``[a, b, ..., a]``, or None (depth-first search)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        stack.pop()
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start)):
            return found
    return None


def violations(rule: str, bad: list[Import]) -> str:
    return f"{rule}:\n" + "\n".join(f"  {imp}" for imp in bad)


def test_the_scan_sees_the_imports_it_judges() -> None:
    """The scanner finds known imports of each kind (so the rules below cannot pass on an empty graph)."""
    found = {(imp.module, imp.target) for imp in ALL_IMPORTS}
    assert ("sluiceway.engine.worker", "sluiceway.histogram") in found  # `from sluiceway import histogram`
    assert ("sluiceway.app.worker", "sluiceway.sheets") in found  # inside a function
    assert ("sluiceway.app.admin", "sluiceway.app.runtime") in found  # under TYPE_CHECKING
    assert ("sluiceway", "sluiceway.engine") in found  # the lazy top level's declarations
    assert ("sluiceway.examples.property_bot.app", TOP) in found  # a top-level name


def test_no_cycle_between_packages() -> None:
    """The subpackages form a DAG: following imports never leads back to where it started."""
    edges: dict[str, set[str]] = {}
    for imp in between_packages():
        edges.setdefault(node_of(imp.module), set()).add(node_of(imp.target))
    cycle = cycle_in(edges)
    if cycle is not None:
        links = [
            next(imp for imp in between_packages() if node_of(imp.module) == a and node_of(imp.target) == b)
            for a, b in itertools.pairwise(cycle)
        ]
        pytest.fail(violations(f"import cycle {' -> '.join(cycle)}", links))


def test_the_cycle_finder_finds_cycles() -> None:
    """The check above fails on a cycle (a hand-made graph; its own graph must have none)."""
    assert cycle_in({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle_in({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_engine_knows_no_data_source_provider_or_monitor() -> None:
    """``sluiceway.engine`` imports none of sheets, whatsapp, monitor, app, testing, demo, examples, cli."""
    bad = [
        imp
        for imp in between_packages()
        if node_of(imp.module) == "engine" and node_of(imp.target) in ENGINE_MUST_NOT_IMPORT
    ]
    assert not bad, violations("the engine imports what it must not know", bad)


def test_library_code_imports_no_companion_or_application() -> None:
    """No library package imports ``testing``, ``examples``, ``demo`` or ``cli``."""
    library = {imp for imp in between_packages() if node_of(imp.module) not in APPLICATIONS | COMPANIONS}
    bad = sorted((imp for imp in library if node_of(imp.target) in APPLICATIONS | COMPANIONS), key=str)
    assert not bad, violations("library code imports a companion or an application", bad)


#: The one testing module above the app: it drives a user's ``Bot`` (and nothing in the app imports it).
TESTING_ABOVE_THE_APP = "sluiceway.testing.bot_tester"


def test_testing_depends_only_on_the_library_below_the_app() -> None:
    """``sluiceway.testing`` imports neither ``app``, ``demo``, ``examples`` nor ``cli`` (``BotTester``: ``app``)."""
    bad = [
        imp
        for imp in between_packages()
        if node_of(imp.module) == "testing"
        and node_of(imp.target) in {"app", "demo", "examples", "cli"}
        and not (imp.module == TESTING_ABOVE_THE_APP and node_of(imp.target) == "app")
    ]
    assert not bad, violations("testing imports above itself", bad)


def test_examples_use_only_the_public_api() -> None:
    """``sluiceway.examples`` imports only top-level names (``from sluiceway import Bot``), as a user would."""
    public = set(sluiceway.__all__)
    bad = [
        imp
        for imp in between_packages()
        if node_of(imp.module) == "examples" and not (imp.target == TOP and imp.name in public)
    ]
    assert not bad, violations("an example imports past the public API", bad)
