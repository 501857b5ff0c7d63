"""The lazy top level: every public name imports from ``sluiceway``, and importing the package (as
every engine worker does at start) loads none of the heavy optional modules until they are used."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import uvloop

import sluiceway
from sluiceway.engine import MessageParallelizer, ParallelizerConfig

#: Top-level packages a worker or a bare ``import sluiceway`` must not load before they are used.
HEAVY = ("googleapiclient", "google", "httplib2", "google_auth_httplib2", "aiohttp", "rich")
#: Names the top level lists before the branch that defines them is merged (see the TYPE_CHECKING block).


def heavy_modules(names: list[str]) -> list[str]:
    return sorted(name for name in names if name.split(".")[0] in HEAVY)


def modules_after(code: str) -> list[str]:
    """The names in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    names: list[str] = json.loads(result.stdout.splitlines()[-1])
    return names


def test_the_sheets_client_the_emulators_and_rich_load_the_heavy_modules() -> None:
    """Using the Sheets client and the emulators does load these modules (so the checks below can fail)."""
    loaded = modules_after("import rich, sluiceway.testing\nsluiceway.SheetsClient\nsluiceway.testing.SheetsEmulator")
    assert {name.split(".")[0] for name in heavy_modules(loaded)} >= {"googleapiclient", "httplib2", "rich"}


@pytest.mark.parametrize(
    "code",
    [
        "import sluiceway",
        "import sluiceway; sluiceway.MessageParallelizer; sluiceway.Bot",
        "import sluiceway.sheets; sluiceway.sheets.SheetsCache",
        "import sluiceway.testing.handlers",
        # The emulators serve on sluiceway's own HttpServer: no aiohttp, no Google client.
        "import sluiceway.testing as t; t.WhatsAppEmulator; t.SheetsEmulator",
    ],
)
def test_importing_loads_no_heavy_module(code: str) -> None:
    """The package, the engine, the app's Bot, the Sheets cache and the test handlers load no heavy module."""
    assert heavy_modules(modules_after(code)) == []


def test_a_worker_starts_without_heavy_modules() -> None:
    """An engine worker running a trivial handler has loaded no heavy module (it reports its sys.modules)."""

    async def scenario() -> list[str]:
        config = ParallelizerConfig(default_worker_count=1, min_workers=1, max_workers=1)
        async with MessageParallelizer("sluiceway.testing.handlers:imported_modules", config) as engine:
            names: list[str] = await engine.submit({})
            return names

    loaded = uvloop.run(scenario())
    assert {"sluiceway.engine", "sluiceway.testing.handlers"} <= set(loaded)  # a real module list
    assert heavy_modules(loaded) == []


@pytest.mark.parametrize("name", sluiceway.__all__)
def test_every_public_name_imports_from_the_top_level(name: str) -> None:
    """``from sluiceway import <name>`` works for each name of ``__all__`` and is its module's object."""
    value = getattr(sluiceway, name)
    if name != "__version__":
        module = __import__(sluiceway._EXPORTS[name], fromlist=[name])
        assert value is getattr(module, name)
    assert name in dir(sluiceway)


def test_the_readme_names_are_exported() -> None:
    """What the README imports from ``sluiceway`` (the bot, the engine, cache, sender, monitor) is there."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    imported = {
        alias.name
        for block in readme.split("```python\n")[1:]
        for node in ast.walk(ast.parse(block.split("```")[0]))
        if isinstance(node, ast.ImportFrom) and node.module == "sluiceway"
        for alias in node.names
    }
    assert {"Bot", "MessageParallelizer", "SheetsClient", "BatchSender", "PerformanceMonitor"} <= imported
    assert imported <= set(sluiceway.__all__)


def test_an_unknown_name_is_an_attribute_error_naming_it() -> None:
    """A misspelt name fails like any module attribute, naming the module and the name."""
    with pytest.raises(AttributeError, match="module 'sluiceway' has no attribute 'MessageParallelize'"):
        sluiceway.MessageParallelize  # noqa: B018
    assert not hasattr(sluiceway, "MessageParallelize")


def test_subpackages_stay_reachable_as_attributes() -> None:
    """``import sluiceway`` then ``sluiceway.engine.run`` works, as it did when the top level imported everything."""
    code = "import sluiceway\nprint(sluiceway.engine.run.__module__, sluiceway.core.PriorityQueue.__name__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.split() == ["sluiceway.engine.runner", "PriorityQueue"]


def test_type_checkers_see_what_the_lazy_table_exports() -> None:
    """The ``TYPE_CHECKING`` imports, the lazy table and ``__all__`` list the same names from the same modules."""
    tree = ast.parse(Path(sluiceway.__file__).read_text())
    declared: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom) and statement.module is not None
                for alias in statement.names:
                    assert alias.asname == alias.name, f"{alias.name}: re-export as itself, or mypy hides it"
                    is_submodule = statement.module == "sluiceway"
                    declared[alias.name] = f"sluiceway.{alias.name}" if is_submodule else statement.module
    assert declared == sluiceway._EXPORTS
    submodules = {name for name, module in declared.items() if module == f"sluiceway.{name}"}
    assert set(sluiceway.__all__) == set(declared) - submodules | {"__version__"}
