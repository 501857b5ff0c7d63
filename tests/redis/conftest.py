"""Redis-mode tests: real redis-server processes (the ``redis_server`` fixture), real engines and nodes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sluiceway.engine import ParallelizerConfig


@pytest.fixture
def config() -> Callable[..., ParallelizerConfig]:
    """A small engine config: 2 workers, no retry backoff, quick heartbeats; override any field."""

    def make(**overrides: Any) -> ParallelizerConfig:
        fields: dict[str, Any] = {
            "default_worker_count": 2,
            "min_workers": 1,
            "max_workers": 4,
            "worker_concurrency": 8,
            "retry_initial_backoff": 0.0,
            "retry_max_backoff": 0.0,
            "heartbeat_interval": 0.25,
            "statistics_interval": 0.25,
            "worker_timeout": 20.0,
        }
        fields.update(overrides)
        return ParallelizerConfig(**fields)

    return make
