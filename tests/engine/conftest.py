"""Engine tests run real worker processes: each test drives its own uvloop loop.

Every wait is on a condition (``wait_until``) with a generous timeout; nothing here
depends on how fast this shared machine is.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

#: The handler every engine test runs (see its docstring for the payload script).
SCRIPTED = "sluiceway.testing.handlers:scripted"


@pytest.fixture
def run() -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Run a coroutine on a fresh uvloop loop."""
    return uvloop.run
