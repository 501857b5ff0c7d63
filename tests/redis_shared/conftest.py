"""One private redis-server per test module: hypothesis examples share it (each example uses its own keys)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sluiceway.testing.redis_server import RedisServer, available


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[RedisServer]:
    if not available():
        pytest.fail("redis-server is not installed (Debian package redis-server; .ci/run installs it)")
    with RedisServer() as server:
        yield server
