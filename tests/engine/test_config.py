"""ParallelizerConfig validation and the retry policy's backoff."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluiceway.engine import ParallelizerConfig, RetryPolicy


def test_defaults_follow_the_seed() -> None:
    """The defaults are the seed's: 8 workers within 2..16, marks 1000/100, 30 s, 3 retries from 1 s."""
    c = ParallelizerConfig()
    assert (c.default_worker_count, c.min_workers, c.max_workers) == (8, 2, 16)
    assert (c.queue_high_water_mark, c.queue_low_water_mark) == (1000, 100)
    assert c.worker_timeout == 30.0 and c.enable_auto_scaling is True
    assert c.max_attempts == 4 and c.retry_initial_backoff == 1.0
    assert c.prefetch == 2 * c.worker_concurrency


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"min_workers": 5, "max_workers": 4, "default_worker_count": 4}, "min_workers"),
        ({"queue_low_water_mark": 10, "queue_high_water_mark": 10}, "queue_low_water_mark"),
        ({"default_worker_count": 20}, "default_worker_count"),
        ({"worker_timeout": 0.0}, "worker_timeout"),
        ({"worker_timeout": float("nan")}, "worker_timeout"),
        ({"worker_concurrency": 0}, "worker_concurrency"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"retry_backoff_factor": 0.5}, "retry_backoff_factor"),
        ({"retry_jitter": 1.0}, "retry_jitter"),
        ({"retry_initial_backoff": 5.0, "retry_max_backoff": 1.0}, "retry_max_backoff"),
        ({"heartbeat_interval": 40.0}, "heartbeat_interval"),
        ({"max_worker_rss_bytes": -1}, "max_worker_rss_bytes"),
        ({"prefetch_window": -0.001}, "prefetch_window"),
        ({"prefetch_window": float("inf")}, "prefetch_window"),
        ({"min_workers": True}, "min_workers"),
        ({"enable_auto_scaling": "yes"}, "enable_auto_scaling"),
    ],
)
def test_bad_values_raise_value_error_naming_the_field(fields: dict[str, Any], named: str) -> None:
    """Each invalid configuration raises ValueError whose message names the offending field."""
    with pytest.raises(ValueError, match=named):
        ParallelizerConfig(**fields)


@given(
    initial=st.floats(0.0, 100.0),
    factor=st.floats(1.0, 10.0),
    extra_cap=st.floats(0.0, 1000.0),
    jitter=st.floats(0.0, 0.99),
    attempt=st.integers(1, 5000),
    unit=st.floats(0.0, 1.0),
)
def test_retry_delay_matches_the_documented_formula(
    initial: float, factor: float, extra_cap: float, jitter: float, attempt: int, unit: float
) -> None:
    """delay(n) is min(cap, min(cap, initial * factor**(n-1)) * jitter factor) for any input."""
    config = ParallelizerConfig(
        retry_initial_backoff=initial,
        retry_backoff_factor=factor,
        retry_max_backoff=initial + extra_cap,
        retry_jitter=jitter,
    )
    policy = RetryPolicy(config, uniform=lambda low, high: low + (high - low) * unit)
    cap = initial + extra_cap
    try:
        base = min(cap, initial * factor ** (attempt - 1))
    except OverflowError:
        base = cap
    expected = min(cap, base * ((1 - jitter) + 2 * jitter * unit))
    assert policy.delay(attempt) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert 0.0 <= policy.delay(attempt) <= cap


@given(max_attempts=st.integers(1, 20), attempt=st.integers(1, 40))
def test_retry_stops_at_max_attempts(max_attempts: int, attempt: int) -> None:
    """A failed delivery is retried exactly while fewer than max_attempts deliveries happened."""
    policy = RetryPolicy(ParallelizerConfig(max_attempts=max_attempts))
    assert policy.should_retry(attempt) == (attempt < max_attempts)


def test_retry_delay_rejects_attempt_zero() -> None:
    """Attempts count from 1, so asking for the delay after attempt 0 is a ValueError."""
    with pytest.raises(ValueError, match="attempt"):
        RetryPolicy(ParallelizerConfig()).delay(0)
