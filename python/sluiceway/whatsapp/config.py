"""The sender's configuration: frozen, validated Structs named after the seed's settings."""

from __future__ import annotations

import msgspec

from sluiceway._validation import fraction, non_negative, positive

#: The Cloud API's default throughput per business phone number (messages per second);
#: numbers can be upgraded to 1,000 (https://developers.facebook.com/docs/whatsapp/throughput).
CLOUD_API_MPS = 80


class RateLimits(msgspec.Struct, frozen=True):
    """Messages allowed per second, minute and hour for the business number (``None`` = no limit).

    The defaults are the seed's (30/s, 1,000/min, 10,000/h); :meth:`cloud_api` gives the
    Cloud API's own throughput.

    Example::

        RateLimits.cloud_api()          # 80 per second, the Cloud API default
        RateLimits.cloud_api(1000)      # an upgraded number
    """

    per_second: int = 30
    per_minute: int | None = 1000
    per_hour: int | None = 10_000

    def __post_init__(self) -> None:
        for name in ("per_second", "per_minute", "per_hour"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"rate_limit.{name} must be a positive integer, got {value!r}")

    @classmethod
    def cloud_api(cls, per_second: int = CLOUD_API_MPS) -> RateLimits:
        """The Cloud API's throughput limit alone: ``per_second`` messages per second, no minute or hour cap."""
        return cls(per_second=per_second, per_minute=None, per_hour=None)


class RecipientLimit(msgspec.Struct, frozen=True):
    """The pair rate: at most ``limit`` messages to one recipient in any ``window`` seconds.

    The Cloud API allows about one message every 6 seconds to the same user, with a
    short burst allowance, and answers 131056 beyond it.
    """

    limit: int = 1
    window: float = 6.0

    def __post_init__(self) -> None:
        if not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError(f"per_recipient.limit must be a positive integer, got {self.limit!r}")
        positive("per_recipient.window", self.window)


class BreakerConfig(msgspec.Struct, frozen=True):
    """When the circuit breaker opens and how it recovers.

    It opens when at least ``minimum_calls`` sends ended in the last ``window``
    seconds and the share of transient failures among them reaches
    ``failure_rate_threshold``; after ``open_duration`` seconds it lets
    ``half_open_trials`` sends through and closes if they all succeed.
    """

    failure_rate_threshold: float = 0.5
    window: float = 30.0
    minimum_calls: int = 10
    open_duration: float = 30.0
    half_open_trials: int = 3

    def __post_init__(self) -> None:
        fraction("breaker.failure_rate_threshold", self.failure_rate_threshold)
        positive("breaker.window", self.window)
        positive("breaker.open_duration", self.open_duration)
        if self.minimum_calls < 1:
            raise ValueError(f"breaker.minimum_calls must be at least 1, got {self.minimum_calls}")
        if self.half_open_trials < 1:
            raise ValueError(f"breaker.half_open_trials must be at least 1, got {self.half_open_trials}")


class SenderConfig(msgspec.Struct, frozen=True):
    """Everything :class:`~sluiceway.whatsapp.BatchSender` can be told (seconds as floats).

    * A dispatch round takes up to ``base_batch_size`` messages, at most
      ``max_batch_size_per_recipient`` to one recipient, and sends them concurrently;
      rounds start at least ``min_delay_between_batches`` apart and at most
      ``max_concurrent_batches`` are in flight. High-priority messages need not wait
      for that delay: up to ``priority_batch_size`` of them go out in an express round
      as soon as they arrive.
    * ``rate_limit`` and ``per_recipient`` are never exceeded; on throughput errors the
      rate drops by ``throttle_decrease`` (multiplicative) and recovers by
      ``throttle_recovery`` × the configured rate per second of success.
    * Transient failures retry ``max_retries`` times after ``initial_backoff`` × 2ⁿ
      seconds (capped at ``max_backoff``, shortened by up to ``jitter`` of itself).
    * A message not sent within ``message_ttl`` seconds is dead-lettered as expired;
      an ``idempotency_key`` seen within ``idempotency_window`` seconds is a no-op.
    * ``confirmation_timeout`` (``None``: a successful API answer is the confirmation)
      is how long a sent message waits for a delivered/read/failed status.

    Warning: the seed's defaults (10 per round, 0.5 s apart) cap throughput at 20
    messages/s, below their own 30/s limit; :meth:`cloud_api` sizes rounds so the rate
    limiter, not the round cadence, is what binds.

    Example::

        SenderConfig()                              # the seed's settings
        SenderConfig.cloud_api(80, coalesce_texts=True)
    """

    base_batch_size: int = 10
    max_batch_size_per_recipient: int = 5
    priority_batch_size: int = 3
    min_delay_between_batches: float = 0.5
    max_concurrent_batches: int = 5
    rate_limit: RateLimits = RateLimits()
    per_recipient: RecipientLimit = RecipientLimit()
    max_retries: int = 3
    initial_backoff: float = 1.0
    max_backoff: float = 60.0
    jitter: float = 0.5
    throttle_decrease: float = 0.5
    throttle_recovery: float = 0.05
    breaker: BreakerConfig = BreakerConfig()
    message_ttl: float = 3600.0
    idempotency_window: float = 600.0
    confirmation_timeout: float | None = None
    coalesce_texts: bool = False
    coalesce_separator: str = "\n"
    shutdown_timeout: float = 10.0

    def __post_init__(self) -> None:
        for name in (
            "base_batch_size",
            "max_batch_size_per_recipient",
            "priority_batch_size",
            "max_concurrent_batches",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.priority_batch_size > self.base_batch_size:
            raise ValueError(
                f"priority_batch_size ({self.priority_batch_size}) must "
                f"not exceed base_batch_size ({self.base_batch_size})"
            )
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ValueError(f"max_retries must be a non-negative integer, got {self.max_retries!r}")
        non_negative("min_delay_between_batches", self.min_delay_between_batches)
        positive("initial_backoff", self.initial_backoff)
        positive("max_backoff", self.max_backoff)
        if self.max_backoff < self.initial_backoff:
            raise ValueError(
                f"max_backoff ({self.max_backoff}) must be at least initial_backoff ({self.initial_backoff})"
            )
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be in [0, 1], got {self.jitter!r}")
        fraction("throttle_decrease", self.throttle_decrease, closed_right=False)
        fraction("throttle_recovery", self.throttle_recovery)
        positive("message_ttl", self.message_ttl)
        non_negative("idempotency_window", self.idempotency_window)
        if self.confirmation_timeout is not None:
            positive("confirmation_timeout", self.confirmation_timeout)
        non_negative("shutdown_timeout", self.shutdown_timeout)

    @classmethod
    def cloud_api(cls, per_second: int = CLOUD_API_MPS, **overrides: object) -> SenderConfig:
        """Settings for the Cloud API at ``per_second`` messages/s: its pair rate, rounds sized to the limit.

        Rounds of a tenth of a second's quota start every 20 ms, so the rate limiter is
        always what binds; ``overrides`` replace any field.
        """
        fields: dict[str, object] = {
            "rate_limit": RateLimits.cloud_api(per_second),
            "base_batch_size": max(10, per_second // 10),
            "min_delay_between_batches": 0.02,
            "max_concurrent_batches": 10,
            "per_recipient": RecipientLimit(limit=1, window=6.0),
        }
        fields.update(overrides)
        return cls(**fields)  # type: ignore[arg-type]
