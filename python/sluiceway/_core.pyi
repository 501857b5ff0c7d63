"""Type stubs for sluiceway's Rust core (`sluiceway._core`).

Every time-dependent method takes an optional ``now``: seconds on any monotonic
scale. Without it the structure reads CLOCK_MONOTONIC, the clock behind
``time.monotonic()``, so explicit and defaulted calls can be mixed.
"""

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Final, Self, final

__version__: Final[str]

__all__ = [
    "ByteLRU",
    "Entry",
    "EntryQueue",
    "InFlight",
    "Journal",
    "JournalError",
    "JournalLocked",
    "KeyedLimiter",
    "LatencyHistogram",
    "PayloadBatch",
    "PriorityQueue",
    "QueueEmpty",
    "QueueFull",
    "RateLimiter",
    "SluicewayError",
    "TokenBucket",
    "WindowLimiter",
    "__version__",
]

class SluicewayError(Exception):
    """Base class of every error sluiceway raises on purpose."""

class QueueFull(SluicewayError):
    """Raised by a bounded queue's push when it already holds ``maxsize`` items."""

class QueueEmpty(SluicewayError):
    """Raised by ``pop()`` on an empty queue."""

class JournalError(SluicewayError):
    """The journal cannot be opened or a transaction failed; the message names the file and the cause."""

class JournalLocked(JournalError):
    """Another process (or another Journal in this one) has the journal open."""

@final
class PriorityQueue:
    """A multi-level FIFO queue of arbitrary Python objects; level 0 is served first.

    ``levels`` is 1 to 64; ``maxsize`` 0 means unbounded. ``starvation_limit = k``
    (0 = off, strict priority): each waiting level counts the pops served from a
    higher level since it was last served or became non-empty; a level whose count
    reached ``k`` is overdue, and ``pop()`` serves the highest overdue level if any,
    else the highest non-empty one. Serving a level resets its count, so the head of
    level ``L`` is passed over by at most ``k + L - 1`` pops from higher levels.
    """

    def __new__(cls, levels: int = 3, maxsize: int = 0, starvation_limit: int = 0) -> Self: ...
    @property
    def levels(self) -> int: ...
    @property
    def maxsize(self) -> int: ...
    def push(self, item: Any, priority: int = 1) -> None:
        """Append ``item`` at ``priority``; ``ValueError`` outside ``range(levels)``, ``QueueFull`` at maxsize."""
    def push_many(self, items: Iterable[Any], priority: int = 1) -> None:
        """Append all ``items`` at ``priority``, all or none (``QueueFull`` if they do not all fit)."""
    def pop(self) -> Any:
        """Remove and return the next item: highest level first, FIFO within a level; ``QueueEmpty`` when empty."""
    def pop_many(self, n: int) -> list[Any]:
        """Remove and return up to ``n`` items in ``pop()`` order; ``[]`` when empty."""
    def depths(self) -> list[int]:
        """Items waiting per level."""
    def clear(self) -> None: ...
    def __len__(self) -> int: ...
    def __bool__(self) -> bool: ...

@final
class ByteLRU:
    """A least-recently-used cache of ``str`` keys to ``bytes`` values under an exact byte budget.

    An entry costs ``len(key.encode()) + len(value) + sum(len(tag.encode()) + ByteLRU.TAG_OVERHEAD
    for tag in set(tags)) + ByteLRU.ENTRY_OVERHEAD`` bytes (the constants cover the cache's own
    bookkeeping and the key and value objects' headers); ``bytes_used`` is the sum over held entries and
    never exceeds ``max_bytes`` (least recently used entries are evicted to make room).
    An entry is fresh for ``ttl`` seconds, then stale for ``stale_ttl`` seconds, then
    expired: ``get`` returns fresh entries only, ``lookup`` stale ones too, and an
    expired entry is dropped when a read touches it or by ``purge_expired``; until
    then it still counts in ``len()``, ``in`` and ``bytes_used``.
    """

    ENTRY_OVERHEAD: Final[int]
    TAG_OVERHEAD: Final[int]

    def __new__(cls, max_bytes: int, default_ttl: float | None = None) -> ByteLRU: ...
    @property
    def max_bytes(self) -> int: ...
    @property
    def bytes_used(self) -> int: ...
    def set(
        self,
        key: str,
        value: bytes,
        ttl: float | None = None,
        stale_ttl: float = 0.0,
        tags: Sequence[str] = (),
        now: float | None = None,
    ) -> None:
        """Store ``value``: fresh for ``ttl`` (default ``default_ttl``; ``None`` = forever), then stale for
        ``stale_ttl``.

        ``ValueError`` when the entry alone costs more than ``max_bytes`` or a duration is
        negative; ``TypeError`` for a non-``str`` key, non-``bytes`` value or a lone ``str`` as ``tags``.
        """
    def get(self, key: str, now: float | None = None) -> bytes | None:
        """The value if present and fresh (it becomes the most recently used), else ``None``."""
    def lookup(self, key: str, now: float | None = None) -> tuple[bytes, bool] | None:
        """``(value, stale)`` for a fresh or stale entry, ``None`` when absent or past its stale window."""
    def invalidate(self, key: str) -> bool:
        """Drop the entry for ``key``; whether one was held."""
    def invalidate_tag(self, tag: str) -> int:
        """Drop every entry carrying ``tag``; returns how many."""
    def tagged(self, tag: str) -> list[str]:
        """Keys of the entries carrying ``tag``, in no particular order."""
    def purge_expired(self, now: float | None = None) -> int:
        """Drop entries past their stale window; returns how many."""
    def clear(self) -> None:
        """Drop every entry; the ``stats()`` counters are kept."""
    def stats(self) -> dict[str, int]:
        """hits, misses, stale_hits, evictions, expirations, entries, bytes_used, max_bytes."""
    def __len__(self) -> int: ...
    def __contains__(self, key: object, /) -> bool:
        """Whether an entry for ``key`` is held (expired ones too, until dropped); no side effect."""

@final
class TokenBucket:
    """Refills ``rate`` tokens per second up to ``burst``; starts full."""

    def __new__(cls, rate: float, burst: float, now: float | None = None) -> TokenBucket: ...
    @property
    def rate(self) -> float: ...
    @property
    def burst(self) -> float: ...
    def try_acquire(self, n: float = 1.0, now: float | None = None) -> bool: ...
    def time_until(self, n: float = 1.0, now: float | None = None) -> float:
        """Seconds until ``n`` tokens are available (0.0 now); ``ValueError`` if ``n > burst``."""
    def tokens(self, now: float | None = None) -> float: ...
    def set_rate(self, rate: float, now: float | None = None) -> None:
        """Change the refill rate (adaptive throttling); tokens accrued so far are kept."""

@final
class WindowLimiter:
    """Never more than ``limit`` acquisitions in any interval of length ``window`` seconds (exact sliding log)."""

    def __new__(cls, limit: int, window: float) -> WindowLimiter: ...
    @property
    def limit(self) -> int: ...
    @property
    def window(self) -> float: ...
    def try_acquire(self, n: int = 1, now: float | None = None) -> bool: ...
    def time_until(self, n: int = 1, now: float | None = None) -> float:
        """Seconds until ``n`` acquisitions would be admitted; ``ValueError`` if ``n > limit``."""
    def tokens(self, now: float | None = None) -> float:
        """Acquisitions admitted right now."""
    def set_limit(self, limit: int) -> None:
        """Change the limit (adaptive throttling); past acquisitions still count."""

@final
class RateLimiter:
    """All of ``limiters`` at once: admits only when every one admits, and then consumes from all."""

    def __new__(cls, limiters: Iterable[TokenBucket | WindowLimiter]) -> RateLimiter: ...
    @classmethod
    def per(cls, second: int | None = None, minute: int | None = None, hour: int | None = None) -> RateLimiter:
        """Exact sliding windows of 1 s, 60 s and 3600 s for the limits given."""
    @property
    def limiters(self) -> list[TokenBucket | WindowLimiter]: ...
    def try_acquire(self, n: int = 1, now: float | None = None) -> bool: ...
    def time_until(self, n: int = 1, now: float | None = None) -> float: ...

@final
class KeyedLimiter:
    """One exact ``limit``-per-``window`` sliding window per key, at most ``max_keys`` keys held.

    When full, the key with the oldest latest acquisition is forgotten: an idle key
    (empty window) if there is one, else an active key, whose guarantee is then relaxed.
    """

    def __new__(cls, limit: int, window: float, max_keys: int = 100_000) -> KeyedLimiter: ...
    @property
    def limit(self) -> int: ...
    @property
    def window(self) -> float: ...
    @property
    def max_keys(self) -> int: ...
    def try_acquire(self, key: str, n: int = 1, now: float | None = None) -> bool: ...
    def time_until(self, key: str, n: int = 1, now: float | None = None) -> float:
        """Seconds until ``key`` would admit ``n`` (0.0 for a key not held); ``ValueError`` if ``n > limit``."""
    def purge_idle(self, now: float | None = None) -> int:
        """Forget every key whose window is empty at ``now``; returns how many."""
    def stats(self) -> dict[str, int]:
        """keys, max_keys, idle_evictions (lossless), active_evictions (relaxed that key's guarantee)."""
    def __len__(self) -> int: ...

@final
class PayloadBatch:
    """Payloads encoded as one msgpack array and split once (``ValueError`` for anything else)."""

    def __new__(cls, encoded: bytes) -> Self: ...
    def __len__(self) -> int: ...

@final
class Entry:
    """One accepted message as the supervisor keeps it (pushing it into an ``EntryQueue`` copies it in)."""

    def __new__(
        cls,
        seq: int,
        priority: int,
        enqueued_at: float,
        key: str | None,
        future: Any,
        payload: bytes,
        enqueued: float,
        attempt: int = 0,
    ) -> Self: ...
    @staticmethod
    def batch(
        batch: PayloadBatch,
        start: int,
        stop: int,
        first_seq: int,
        priority: int,
        enqueued_at: float,
        key: str | None,
        enqueued: float,
    ) -> list[Entry]:
        """One entry per payload of ``batch[start:stop]``, seqs from ``first_seq`` on."""
    @property
    def seq(self) -> int: ...
    @property
    def attempt(self) -> int:
        """Deliveries so far."""
    @attempt.setter
    def attempt(self, value: int) -> None: ...
    @property
    def priority(self) -> int: ...
    @property
    def enqueued_at(self) -> float:
        """Wall clock at acceptance."""
    @property
    def key(self) -> str | None: ...
    @property
    def future(self) -> Any:
        """The ``submit`` future waiting for the result, or None."""
    @property
    def payload(self) -> bytes:
        """The payload's msgpack bytes."""
    @property
    def enqueued(self) -> float:
        """Supervisor clock at acceptance."""

@final
class InFlight:
    """The entries dispatched to one worker and not yet settled, by seq."""

    def __new__(cls) -> Self: ...
    def __len__(self) -> int: ...
    def __bool__(self) -> bool: ...
    def __contains__(self, seq: int, /) -> bool: ...
    def hold(self, entry: Entry) -> bytes:
        """Hold a copy of ``entry`` with its delivery counted; returns its DISPATCH frame of one."""
    def pop(self, seq: int) -> Entry | None: ...
    def take_all(self) -> list[Entry]:
        """Remove every entry, lowest seq first."""
    def settle(self, seqs: list[int], now: float, histogram: LatencyHistogram) -> tuple[int, list[str]]:
        """Remove each held seq, count ``now - enqueued`` into ``histogram``; returns (settled, their ordering keys)."""

@final
class EntryQueue:
    """Accepted messages waiting for a worker: strict priority (level 0 first), FIFO within a level."""

    def __new__(cls, levels: int) -> Self: ...
    def __len__(self) -> int: ...
    def __bool__(self) -> bool: ...
    def depths(self) -> list[int]: ...
    def accept(self, seq: int, priority: int, enqueued_at: float, future: Any, payload: bytes, enqueued: float) -> None:
        """Queue one message without an ordering key."""
    def accept_batch(
        self,
        batch: PayloadBatch,
        start: int,
        stop: int,
        first_seq: int,
        priority: int,
        enqueued_at: float,
        enqueued: float,
    ) -> int:
        """Queue ``batch[start:stop]`` (no ordering key), seqs from ``first_seq`` on; returns how many."""
    def push(self, entry: Entry) -> None:
        """Queue a copy of ``entry`` at the back of its priority's line."""
    def dispatch(self, held: InFlight, count: int, runs: list[tuple[int, int]] | None = None) -> bytes | None:
        """Pop up to ``count``, count a delivery each, move them into ``held``; their DISPATCH frame, or None.

        With ``runs``, the dispatched seqs are appended to it as inclusive ``(first, last)`` runs.
        """
    def take_all(self) -> list[Entry]:
        """Remove every queued entry, in dispatch order."""

#: The wire form of a ``LatencyHistogram``: ``([(index, count), ...], zeros, count, sum, min, max)``.
_HistogramWire = tuple[list[tuple[int, int]], int, int, float, float, float]

@final
class LatencyHistogram:
    """Counts of non-negative values (e.g. seconds) in geometric buckets, mergeable across processes.

    Quantiles are within ``RELATIVE_ERROR`` (1%) of the true order statistic; ``count``,
    ``sum``, ``min`` and ``max`` are exact; values at or below ``MIN_VALUE`` count as zeros.
    """

    RELATIVE_ERROR: ClassVar[float]
    MIN_VALUE: ClassVar[float]
    def __new__(cls) -> Self: ...
    def record(self, value: float) -> None:
        """Count one value; ``ValueError`` for a negative or non-finite one."""
    def record_many(self, values: Iterable[float]) -> None:
        """Count each value in one call; ``ValueError`` at the first bad one (those before it stay counted)."""
    def merge(self, other: LatencyHistogram) -> None:
        """Add ``other``'s counts to this histogram."""
    def subtract(self, other: LatencyHistogram) -> None:
        """Remove ``other``'s counts, merged in before (``ValueError`` otherwise); ``min``/``max`` stay."""
    def quantile(self, q: float) -> float:
        """The ``q``-quantile (0 <= q <= 1) within ``RELATIVE_ERROR``; 0.0 when empty."""
    def cumulative_counts(self, bounds: Sequence[float]) -> list[int]:
        """For each strictly increasing upper bound, how many values are at or below it."""
    def reset(self) -> None:
        """Forget every value."""
    @property
    def count(self) -> int: ...
    @property
    def zeros(self) -> int:
        """Values counted as zero (at or below ``MIN_VALUE``)."""
    @property
    def sum(self) -> float: ...
    @property
    def min(self) -> float:
        """The smallest value recorded; ``inf`` when empty."""
    @min.setter
    def min(self, value: float) -> None: ...
    @property
    def max(self) -> float:
        """The largest value recorded; 0.0 when empty."""
    @max.setter
    def max(self, value: float) -> None: ...
    @property
    def mean(self) -> float:
        """The exact mean; 0.0 when empty."""
    @property
    def buckets(self) -> dict[int, int]:
        """The non-empty buckets, ``{index: count}`` (a copy)."""
    def to_wire(self) -> _HistogramWire:
        """A msgpack-friendly form for shipping between processes."""
    @staticmethod
    def from_wire(wire: Sequence[Any]) -> LatencyHistogram:
        """Rebuild a histogram from ``to_wire()``'s output (tuples or lists); ``ValueError`` otherwise."""
    def __reduce__(self) -> tuple[Any, tuple[_HistogramWire]]: ...

@final
class Journal:
    """The durable journal's engine room; use ``sluiceway.journal.Journal``, which wraps it.

    Every operation method queues its operation and returns its ticket. ``wait(ticket)``
    (for tickets submitted with ``wait=True``) blocks with the GIL released and returns the
    result; otherwise watch ``fileno()`` and call ``drain()``: the highest processed ticket
    and ``(ticket, result)`` for those with a result (an exception instance on failure).
    Tickets up to it without a result committed with nothing to report.
    """

    def __new__(
        cls,
        path: str,
        sync: str = "full",
        dedup_window: float = 604800.0,
        dedup_max_entries: int = 1000000,
        max_batch_ops: int = 4096,
        max_wait: float = 0.0,
        idle_interval: float = 1.0,
    ) -> Self: ...
    @property
    def path(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def fileno(self) -> int: ...
    def drain(self) -> tuple[int, list[tuple[int, Any]], bool]: ...
    def wait(self, ticket: int) -> Any: ...
    def close(self) -> None: ...
    def insert_batch(
        self,
        batch: PayloadBatch,
        start: int,
        stop: int,
        first_seq: int,
        priority: int,
        enqueued_at: float,
        ordering_key: str | None = None,
        wait: bool = False,
    ) -> int: ...
    def insert_payloads(
        self,
        first_seq: int,
        payloads: Sequence[bytes],
        priority: int,
        enqueued_at: float,
        ordering_key: str | None = None,
        wait: bool = False,
    ) -> int: ...
    def dispatch(self, runs: Sequence[tuple[int, int]], wait: bool = False) -> int: ...
    def complete(self, runs: Sequence[tuple[int, int]], wait: bool = False) -> int: ...
    def requeue(self, runs: Sequence[tuple[int, int]], wait: bool = False) -> int: ...
    def retry(self, items: Sequence[tuple[int, int, float]], wait: bool = False) -> int: ...
    def dead_letter(self, seq: int, reason: str, error: str, traceback: str, now: float, wait: bool = False) -> int: ...
    def dead_letters(self, limit: int | None = None, wait: bool = False) -> int: ...
    def replay_dead_letters(
        self, ids: Sequence[int] | None = None, first_seq: int | None = None, wait: bool = False
    ) -> int: ...
    def purge_dead_letters(self, ids: Sequence[int] | None = None, wait: bool = False) -> int: ...
    def accept_webhook(
        self,
        wamid: str,
        seq: int,
        priority: int,
        enqueued_at: float,
        ordering_key: str | None,
        payload: bytes,
        now: float,
        wait: bool = False,
    ) -> int: ...
    def expire(self, now: float, limit: int = 10000, wait: bool = False) -> int: ...
    def outbox_add(
        self,
        recipient: str,
        body: bytes,
        inbound_wamid: str | None,
        inbound_seq: int | None,
        now: float,
        wait: bool = False,
    ) -> int: ...
    def outbox_sending(self, id: int, now: float, wait: bool = False) -> int: ...
    def outbox_sent(self, id: int, wamid: str, now: float, wait: bool = False) -> int: ...
    def outbox_status(self, wamid: str, wait: bool = False) -> int: ...
    def outbox_unsent(self, wait: bool = False) -> int: ...
    def outbox_fail(self, id: int, reason: str, error: str, attempts: int, now: float, wait: bool = False) -> int: ...
    def sender_dead_letters(self, limit: int | None = None, wait: bool = False) -> int: ...
    def replay_sender_dead_letters(self, now: float, ids: Sequence[int] | None = None, wait: bool = False) -> int: ...
    def purge_sender_dead_letters(self, ids: Sequence[int] | None = None, wait: bool = False) -> int: ...
    def recover(self, wait: bool = False) -> int: ...
    def stats(self, wait: bool = False) -> int: ...
    def synchronous(self, wait: bool = False) -> int: ...
