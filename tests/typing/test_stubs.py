"""The hand-written stub of the Rust module must match what the module really exports."""

import subprocess
import sys


def test_core_stub_matches_the_built_module() -> None:
    """mypy's stubtest finds no difference between `_core.pyi` and `sluiceway._core`."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "sluiceway._core"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
