"""Shared test configuration.

Hypothesis runs derandomized under CI so a red run is reproducible; deadlines are
off everywhere because this 2-core machine is shared and noisy (speed is measured
in ``bench/``, never asserted in tests).
"""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

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
