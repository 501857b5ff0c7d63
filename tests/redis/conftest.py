"""Redis-mode tests: real redis-server processes (the ``redis_server`` fixture), real engines and nodes."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest

from sluiceway.engine import ParallelizerConfig


@pytest.fixture
def config(config: Callable[..., ParallelizerConfig]) -> Callable[..., ParallelizerConfig]:
    """The shared small engine config, with more concurrent handlers per worker (a broker's reads fill them)."""
    return functools.partial(config, worker_concurrency=8)
