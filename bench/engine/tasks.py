"""No-op tasks for the peers, importable by their worker processes."""

from __future__ import annotations


def noop(_: object) -> None:
    """The multiprocessing peers' task."""


def echo(value: float) -> float:
    """Returns its argument (for open-loop latency via ``Pool.apply_async``)."""
    return value
