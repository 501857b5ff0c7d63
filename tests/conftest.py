"""Shared test configuration.

Hypothesis runs derandomized under CI so a red run is reproducible; deadlines are
off everywhere because this 2-core machine is shared and noisy (speed is measured
in ``bench/``, never asserted in tests).
"""

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, settings

from sluiceway.engine import ParallelizerConfig

if TYPE_CHECKING:
    from sluiceway.testing.redis_server import RedisServer

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs for full-disk and read-only cases; skipped where this process may not mount one (needs root)."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.fixture
def redis_server() -> Iterator["RedisServer"]:
    """A private redis-server (AOF on, noeviction) on a free port in a temp dir; restartable."""
    from sluiceway.testing.redis_server import RedisServer, available

    if not available():
        pytest.fail("redis-server is not installed (Debian package redis-server; .ci/run installs it)")
    with RedisServer() as server:
        yield server


@pytest.fixture
def config() -> Callable[..., ParallelizerConfig]:
    """A small engine config for tests: 2 workers, no backoff, quick heartbeats; override any field."""

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
