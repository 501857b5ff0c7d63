"""The test-only fault point: ``SLUICEWAY_FAULT_POINT=name:count`` kills the own process group on the count-th hit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from sluiceway.fault_points import FAULT_POINT_ENV

#: Reaches ``after_commit`` three times, printing before each; another point in between.
SCRIPT = """
from sluiceway import fault_points
for n in range(3):
    print(n, flush=True)
    fault_points.reached("before_commit")
    fault_points.reached("after_commit")
print("survived", flush=True)
"""


def _run(value: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != FAULT_POINT_ENV}
    if value is not None:
        env[FAULT_POINT_ENV] = value
    return subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,  # the point kills its process group: not this test's
    )


def test_the_armed_point_kills_the_process_group_on_its_count() -> None:
    done = _run("after_commit:2")
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.split() == ["0", "1"]


def test_unarmed_points_do_nothing() -> None:
    assert _run(None).stdout.split() == ["0", "1", "2", "survived"]
    assert _run("mid_handler:1").stdout.split() == ["0", "1", "2", "survived"]


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("after_comit:1", "unknown point 'after_comit'"),
        ("after_commit", "whole number >= 1"),
        ("after_commit:0", ">= 1"),
    ],
)
def test_a_bad_value_is_refused_with_what_is_wrong(value: str, complaint: str) -> None:
    done = _run(value)
    assert done.returncode == 1 and "ValueError" in done.stderr and complaint in done.stderr
    assert FAULT_POINT_ENV in done.stderr
