"""Engine tests run real worker processes: each test drives its own uvloop loop.

Every wait is on a condition (``wait_until``) with a generous timeout; nothing here
depends on how fast this shared machine is.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from sluiceway.engine import ParallelizerConfig

#: The handler every engine test runs (see its docstring for the payload script).
SCRIPTED = "sluiceway.testing.handlers:scripted"


@pytest.fixture
def run() -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Run a coroutine on a fresh uvloop loop."""
    return uvloop.run


@pytest.fixture
def config() -> Callable[..., ParallelizerConfig]:
    """A small config for tests: 2 workers, no backoff, quick heartbeats; override any field."""

    def make(**overrides: Any) -> ParallelizerConfig:
        fields: dict[str, Any] = {
            "default_worker_count": 2,
            "min_workers": 1,
            "max_workers": 4,
            "worker_concurrency": 4,
            "retry_initial_backoff": 0.0,
            "retry_max_backoff": 0.0,
            "heartbeat_interval": 0.25,
            "statistics_interval": 0.25,
            "worker_timeout": 20.0,
        }
        fields.update(overrides)
        return ParallelizerConfig(**fields)

    return make
