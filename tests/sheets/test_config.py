"""CacheConfig and SheetsClientConfig validation."""

from __future__ import annotations

import pytest

from sluiceway.sheets.config import CacheConfig, SheetsClientConfig


def test_cache_defaults_follow_the_seed() -> None:
    """The defaults are the seed's: one hour TTL, 300 MiB, 10 KiB compression, stale reads for 5 minutes."""
    c = CacheConfig()
    assert (c.default_ttl, c.max_memory_bytes, c.compression_threshold_bytes) == (3600.0, 300 * 2**20, 10 * 2**10)
    assert c.allow_stale_reads and c.stale_while_revalidate == 300.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("default_ttl", 0.0),
        ("default_ttl", float("inf")),
        ("max_memory_bytes", 0),
        ("compression_threshold_bytes", -1),
        ("stale_while_revalidate", -1.0),
        ("stale_while_revalidate", float("nan")),
    ],
)
def test_invalid_cache_config_names_the_field(field: str, value: float) -> None:
    """An invalid CacheConfig value raises ValueError naming the field."""
    with pytest.raises(ValueError, match=field):
        CacheConfig(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("read_requests_per_minute", 0),
        ("write_requests_per_minute", -5),
        ("coalesce_window", -0.1),
        ("max_batch_ranges", 0),
        ("max_retries", -1),
        ("initial_backoff", 0.0),
        ("max_backoff", float("inf")),
        ("max_workers", 0),
        ("request_timeout", 0.0),
    ],
)
def test_invalid_client_config_names_the_field(field: str, value: float) -> None:
    """An invalid SheetsClientConfig value raises ValueError naming the field."""
    with pytest.raises(ValueError, match=field):
        SheetsClientConfig(**{field: value})


def test_client_defaults_are_googles_per_user_quota() -> None:
    """The client's default budget is Google's documented 60 reads and 60 writes per minute per user."""
    c = SheetsClientConfig()
    assert (c.read_requests_per_minute, c.write_requests_per_minute) == (60, 60)
