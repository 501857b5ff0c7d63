"""ByteLRU against a small pure-Python reference model, plus its error cases."""

from __future__ import annotations

import inspect
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from sluiceway._core import ByteLRU

OVERHEAD = ByteLRU.ENTRY_OVERHEAD
TAG_OVERHEAD = ByteLRU.TAG_OVERHEAD
KEYS = ["a", "b", "sheet:1!A1:C9", "ключ", "k😀", "longer-key-" * 3]
TAGS = ["t", "sheet:1", "é"]
INF = math.inf


def cost(key: str, value: bytes, tags: Iterable[str] = ()) -> int:
    """The documented price of an entry."""
    return len(key.encode()) + len(value) + sum(len(t.encode()) + TAG_OVERHEAD for t in set(tags)) + OVERHEAD


@dataclass
class Entry:
    value: bytes
    cost: int
    fresh_until: float
    stale_until: float
    tags: frozenset[str]


class Model:
    """The cache's contract in plain Python: an OrderedDict in recency order (last = newest)."""

    def __init__(self, max_bytes: int, default_ttl: float | None) -> None:
        self.max_bytes = max_bytes
        self.default_ttl = default_ttl
        self.entries: OrderedDict[str, Entry] = OrderedDict()
        self.stats = dict.fromkeys(["hits", "misses", "stale_hits", "evictions", "expirations"], 0)

    @property
    def bytes_used(self) -> int:
        return sum(e.cost for e in self.entries.values())

    def set(self, key: str, value: bytes, ttl: float | None, stale_ttl: float, tags: list[str], now: float) -> None:
        price = cost(key, value, tags)
        if price > self.max_bytes:
            raise ValueError("too large")
        self.entries.pop(key, None)
        ttl = self.default_ttl if ttl is None else ttl
        if ttl is None or ttl == INF:
            fresh_until = stale_until = INF
        else:
            fresh_until = now + ttl
            stale_until = fresh_until + stale_ttl
            if now >= stale_until:
                return
        while self.bytes_used + price > self.max_bytes:
            self.entries.popitem(last=False)
            self.stats["evictions"] += 1
        self.entries[key] = Entry(value, price, fresh_until, stale_until, frozenset(tags))

    def read(self, key: str, now: float, accept_stale: bool) -> tuple[bytes, bool] | None:
        entry = self.entries.get(key)
        if entry is None:
            self.stats["misses"] += 1
            return None
        if now < entry.fresh_until:
            self.stats["hits"] += 1
            self.entries.move_to_end(key)
            return entry.value, False
        if now < entry.stale_until:
            if not accept_stale:
                self.stats["misses"] += 1
                return None
            self.stats["stale_hits"] += 1
            self.entries.move_to_end(key)
            return entry.value, True
        del self.entries[key]
        self.stats["expirations"] += 1
        self.stats["misses"] += 1
        return None

    def invalidate_tag(self, tag: str) -> int:
        doomed = [k for k, e in self.entries.items() if tag in e.tags]
        for k in doomed:
            del self.entries[k]
        return len(doomed)

    def purge_expired(self, now: float) -> int:
        doomed = [k for k, e in self.entries.items() if now >= e.stale_until]
        for k in doomed:
            del self.entries[k]
        self.stats["expirations"] += len(doomed)
        return len(doomed)


def copy_of(key: str) -> str:
    """An equal key that is a different object, so lookups cannot rely on identity."""
    return "".join(list(key)) if len(key) > 1 else key


class KeySubclass(str):
    """A ``str`` subclass: reads with it take the general path, not the fast one."""


#: The ways a caller can pass ``key`` and ``now`` to ``get``/``lookup``. ByteLRU serves
#: the first three on its fast path and hands the others to the general one; every
#: form must give the same answer and count the same.
CALL_FORMS = ["now=", "positional now", "now as int", "key=", "str subclass"]


def read_with(method: Callable[..., object], key: str, now: float, form: str) -> object:
    """``method(key, now)`` in the call form ``form``."""
    if form == "now=":
        return method(key, now=now)
    if form == "positional now":
        return method(key, now)
    if form == "now as int":
        return method(key, now=int(now)) if now == int(now) else method(key, now=now)
    if form == "key=":
        return method(key=key, now=now)
    return method(KeySubclass(key), now=now)


ttls = st.sampled_from([None, 0.0, 0.5, 1.0, 2.5, 5.0, INF]) | st.floats(0, 10)
stale_ttls = st.sampled_from([0.0, 1.0, 3.0, INF]) | st.floats(0, 10)
steps = st.sampled_from([0.0, 0.5, 1.0, 2.5]) | st.floats(0, 6)


class ByteLRUMachine(RuleBasedStateMachine):
    """Random operation sequences on a random non-decreasing fake clock, checked call by call."""

    cache: ByteLRU
    model: Model
    now: float

    @initialize(
        budget=st.integers(0, 160),
        entries=st.integers(1, 4),
        default_ttl=st.sampled_from([None, 2.0]),
        start=st.floats(-1e6, 1e6),
    )
    def setup(self, budget: int, entries: int, default_ttl: float | None, start: float) -> None:
        max_bytes = entries * OVERHEAD + budget
        self.cache = ByteLRU(max_bytes, default_ttl=default_ttl)
        self.model = Model(max_bytes, default_ttl)
        self.now = start

    @rule(dt=steps)
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(
        key=st.sampled_from(KEYS),
        value=st.binary(max_size=60),
        ttl=ttls,
        stale_ttl=stale_ttls,
        tags=st.lists(st.sampled_from(TAGS), max_size=4),
    )
    def set(self, key: str, value: bytes, ttl: float | None, stale_ttl: float, tags: list[str]) -> None:
        try:
            self.model.set(key, value, ttl, stale_ttl, tags, self.now)
        except ValueError:
            with pytest.raises(ValueError, match="more than max_bytes"):
                self.cache.set(copy_of(key), value, ttl=ttl, stale_ttl=stale_ttl, tags=tags, now=self.now)
        else:
            self.cache.set(copy_of(key), value, ttl=ttl, stale_ttl=stale_ttl, tags=tags, now=self.now)

    @rule(key=st.sampled_from(KEYS), same_object=st.booleans(), form=st.sampled_from(CALL_FORMS))
    def get(self, key: str, same_object: bool, form: str) -> None:
        expected = self.model.read(key, self.now, accept_stale=False)
        got = read_with(self.cache.get, key if same_object else copy_of(key), self.now, form)
        assert got == (None if expected is None else expected[0])

    @rule(key=st.sampled_from(KEYS), form=st.sampled_from(CALL_FORMS))
    def lookup(self, key: str, form: str) -> None:
        expected = self.model.read(key, self.now, accept_stale=True)
        assert read_with(self.cache.lookup, copy_of(key), self.now, form) == expected

    @rule(key=st.sampled_from(KEYS))
    def invalidate(self, key: str) -> None:
        held = self.model.entries.pop(key, None) is not None
        assert self.cache.invalidate(copy_of(key)) is held

    @rule(tag=st.sampled_from(TAGS))
    def invalidate_tag(self, tag: str) -> None:
        assert self.cache.invalidate_tag(tag) == self.model.invalidate_tag(tag)

    @rule()
    def purge_expired(self) -> None:
        assert self.cache.purge_expired(now=self.now) == self.model.purge_expired(self.now)

    @precondition(lambda self: len(self.model.entries) > 0)
    @rule(data=st.data())
    def clear(self, data: st.DataObject) -> None:
        if data.draw(st.integers(0, 9)) == 0:
            self.cache.clear()
            self.model.entries.clear()

    @invariant()
    def matches_the_model(self) -> None:
        assert len(self.cache) == len(self.model.entries)
        assert self.cache.bytes_used == self.model.bytes_used <= self.cache.max_bytes
        for key in KEYS:
            assert (key in self.cache) == (key in self.model.entries)
        for tag in TAGS:
            expected = sorted(k for k, e in self.model.entries.items() if tag in e.tags)
            assert sorted(self.cache.tagged(tag)) == expected
        assert self.cache.stats() == self.model.stats | {
            "entries": len(self.model.entries),
            "bytes_used": self.model.bytes_used,
            "max_bytes": self.model.max_bytes,
        }


TestByteLRUModel = ByteLRUMachine.TestCase


@pytest.mark.parametrize("form", CALL_FORMS)
@pytest.mark.parametrize(
    ("now", "get", "lookup", "counter"),
    [
        (5.0, b"v", (b"v", False), "hits"),
        (12.0, None, (b"v", True), "stale_hits"),
        (20.0, None, None, "expirations"),
    ],
)
def test_every_call_form_reads_alike(
    form: str, now: float, get: bytes | None, lookup: tuple[bytes, bool] | None, counter: str
) -> None:
    """get and lookup answer and count the same whichever way key and now are passed."""
    cache = ByteLRU(10_000)
    cache.set("k", b"v", ttl=10.0, stale_ttl=5.0, now=0.0)
    assert read_with(cache.get, "k", now, form) == get
    assert read_with(cache.lookup, "k", now, form) == lookup
    stats = cache.stats()
    assert stats[counter] >= 1
    assert stats["hits"] + stats["stale_hits"] + stats["misses"] == 2
    assert len(cache) == (0 if counter == "expirations" else 1)


def test_now_none_and_no_now_read_the_monotonic_clock() -> None:
    """now=None, a positional None and no now at all all mean: read the clock."""
    cache = ByteLRU(10_000)
    cache.set("k", b"v", ttl=3600.0)
    assert cache.get("k") == cache.get("k", None) == cache.get("k", now=None) == b"v"
    assert cache.lookup("k", None) == cache.lookup(key="k", now=None) == (b"v", False)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.get(), "missing 1 required positional argument: 'key'"),
        (lambda c: c.get("k", 1.0, 2.0), "takes from 1 to 2 positional arguments but 3 were given"),
        (lambda c: c.get("k", when=1.0), "unexpected keyword argument 'when'"),
        (lambda c: c.get("k", key="k"), "multiple values for argument 'key'"),
        (lambda c: c.lookup("k", now="soon"), "now"),
        (lambda c: c.lookup(None), "keys must be str, not NoneType"),
    ],
)
def test_bad_read_calls_raise_type_error(call: Callable[[ByteLRU], object], message: str) -> None:
    """A malformed get or lookup call raises TypeError naming the problem, and counts nothing."""
    cache = ByteLRU(10_000)
    with pytest.raises(TypeError, match=message):
        call(cache)
    assert cache.stats()["misses"] == cache.stats()["hits"] == 0


def test_an_int_now_too_large_for_a_float_raises_overflow_error() -> None:
    """A now beyond float range is refused with OverflowError, and the read counts nothing."""
    cache = ByteLRU(10_000)
    cache.set("k", b"v")
    with pytest.raises(OverflowError):
        cache.get("k", now=10**400)
    assert cache.stats()["hits"] == cache.stats()["misses"] == 0


@pytest.mark.parametrize("now", [math.nan, math.inf, -math.inf])
def test_a_non_finite_now_raises_value_error_on_reads(now: float) -> None:
    """get and lookup refuse a NaN or infinite now, positional or by keyword."""
    cache = ByteLRU(10_000)
    with pytest.raises(ValueError, match="now must be a finite number"):
        cache.get("k", now)
    with pytest.raises(ValueError, match="now must be a finite number"):
        cache.lookup("k", now=now)


def test_reads_keep_their_name_signature_and_docstring() -> None:
    """get and lookup still show their names, (key, now=None) and docstrings to help() and inspect."""
    for method, words in ((ByteLRU.get, "fresh"), (ByteLRU.lookup, "stale")):
        assert list(inspect.signature(method).parameters) == ["self", "key", "now"]
        assert inspect.signature(method).parameters["now"].default is None
        assert words in (method.__doc__ or "")
        assert method.__qualname__ == f"ByteLRU.{method.__name__}"


def test_cost_is_exact_for_multibyte_keys_and_tags() -> None:
    """bytes_used is the documented formula, counting UTF-8 bytes and each distinct tag once."""
    cache = ByteLRU(10_000)
    cache.set("ключ", b"12345", tags=["é", "é", "t"])
    assert cache.bytes_used == len("ключ".encode()) + 5 + len("é".encode()) + 1 + 2 * TAG_OVERHEAD + OVERHEAD
    assert cache.bytes_used == cost("ключ", b"12345", ["é", "t"])


def test_a_hit_returns_the_stored_bytes_object() -> None:
    """get and lookup hand back the very object that was set, not a copy."""
    cache = ByteLRU(10_000)
    value = b"payload" * 10
    cache.set("k", value)
    assert cache.get("k") is value
    hit = cache.lookup("k")
    assert hit is not None and hit[0] is value


def test_set_then_get_on_the_default_clock() -> None:
    """Without now= the cache reads the monotonic clock, the one behind time.monotonic()."""
    cache = ByteLRU(10_000, default_ttl=3600.0)
    cache.set("k", b"v")
    assert cache.get("k") == b"v"
    assert cache.get("k", now=time.monotonic()) == b"v"
    assert cache.get("k", now=time.monotonic() + 3600.0) is None
    assert cache.lookup("k", now=time.monotonic() + 3600.0) is None


def test_ttl_overrides_default_and_inf_means_forever() -> None:
    """An explicit ttl wins over default_ttl, and ttl=math.inf keeps an entry fresh forever."""
    cache = ByteLRU(10_000, default_ttl=1.0)
    cache.set("short", b"1", now=0.0)
    cache.set("long", b"2", ttl=INF, now=0.0)
    assert cache.get("short", now=1.0) is None
    assert cache.get("long", now=1e12) == b"2"


def test_oversized_entry_is_refused_and_leaves_the_cache_unchanged() -> None:
    """An entry costing more than max_bytes raises ValueError and keeps the old value for that key."""
    cache = ByteLRU(OVERHEAD + 10)
    cache.set("k", b"old")
    with pytest.raises(ValueError, match="more than max_bytes"):
        cache.set("k", b"x" * 20)
    assert cache.get("k") == b"old"
    assert cache.bytes_used == cost("k", b"old")


def test_an_entry_exactly_at_the_budget_fits() -> None:
    """An entry whose cost equals max_bytes is stored, evicting everything else."""
    cache = ByteLRU(cost("big", b"x" * 50))
    cache.set("a", b"")
    cache.set("big", b"x" * 50)
    assert "a" not in cache
    assert cache.bytes_used == cache.max_bytes
    assert cache.stats()["evictions"] == 1


@pytest.mark.parametrize("key", [1, b"k", None, ("k",)])
def test_non_str_keys_raise_type_error(key: object) -> None:
    """Every keyed method names the problem when the key is not a str; `in` just says False."""
    cache = ByteLRU(10_000)
    for call in (
        lambda: cache.set(key, b"v"),  # type: ignore[arg-type]
        lambda: cache.get(key),  # type: ignore[arg-type]
        lambda: cache.lookup(key),  # type: ignore[arg-type]
        lambda: cache.invalidate(key),  # type: ignore[arg-type]
    ):
        with pytest.raises(TypeError, match="keys must be str"):
            call()
    assert key not in cache


@pytest.mark.parametrize("value", ["text", bytearray(b"v"), memoryview(b"v"), 3, None])
def test_non_bytes_values_raise_type_error(value: object) -> None:
    """set refuses anything but bytes, naming the type it got."""
    cache = ByteLRU(10_000)
    with pytest.raises(TypeError, match=f"values must be bytes, not {type(value).__name__}"):
        cache.set("k", value)  # type: ignore[arg-type]
    assert len(cache) == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"ttl": -1.0}, "ttl"),
        ({"ttl": math.nan}, "ttl"),
        ({"stale_ttl": -0.5}, "stale_ttl"),
        ({"stale_ttl": math.nan}, "stale_ttl"),
        ({"now": math.nan}, "now"),
        ({"now": INF}, "now"),
    ],
)
def test_bad_durations_and_instants_raise_value_error(kwargs: dict[str, float], field: str) -> None:
    """Negative or NaN durations and non-finite instants are refused with the argument named."""
    cache = ByteLRU(10_000)
    with pytest.raises(ValueError, match=f"^{field} must be"):
        cache.set("k", b"v", **kwargs)  # type: ignore[arg-type]
    assert len(cache) == 0


def test_bad_constructor_arguments_raise_value_error() -> None:
    """max_bytes must be positive and default_ttl non-negative."""
    with pytest.raises(ValueError, match="max_bytes must be > 0"):
        ByteLRU(0)
    with pytest.raises(ValueError, match="max_bytes must be > 0"):
        ByteLRU(-5)
    with pytest.raises(ValueError, match="default_ttl must be >= 0"):
        ByteLRU(100, default_ttl=-1.0)


def test_bad_tags_raise_type_error() -> None:
    """A lone str (a classic slip for a one-tag tuple) or a non-str tag is refused."""
    cache = ByteLRU(10_000)
    with pytest.raises(TypeError, match="not a single str"):
        cache.set("k", b"v", tags="sheet:1")
    with pytest.raises(TypeError, match="each tag must be str, not int"):
        cache.set("k", b"v", tags=["ok", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="tags must be a sequence of str, not int"):
        cache.set("k", b"v", tags=5)  # type: ignore[arg-type]
    assert len(cache) == 0


def test_unencodable_key_raises_unicode_error() -> None:
    """A key with a lone surrogate has no UTF-8 size, so set refuses it like key.encode() would."""
    cache = ByteLRU(10_000)
    with pytest.raises(UnicodeEncodeError):
        cache.set("\ud800", b"v")


def test_subclasses_of_str_and_bytes_are_stored_as_plain_values() -> None:
    """A str-subclass key finds the equal plain key, and a bytes-subclass value comes back as bytes."""

    class Key(str):
        pass

    class Blob(bytes):
        pass

    cache = ByteLRU(10_000)
    cache.set(Key("k"), Blob(b"v"))
    got = cache.get("k")
    assert got == b"v" and type(got) is bytes
    assert Key("k") in cache
    assert cache.tagged("none") == []


def test_concurrent_callers_keep_the_accounting_exact() -> None:
    """Threads hammering one cache leave bytes_used equal to the cost of exactly the entries held."""
    cache = ByteLRU(40 * OVERHEAD)
    keys = [f"k{i}" for i in range(100)]

    def value(key: str) -> bytes:
        return key.encode() * 3

    def worker(offset: int) -> None:
        for i in range(3000):
            key = keys[(i * 7 + offset) % len(keys)]
            if i % 3:
                cache.set(key, value(key), tags=("even",) if i % 2 else ())
            else:
                cache.get(key)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    held = [k for k in keys if k in cache]
    assert len(held) == len(cache)
    assert cache.bytes_used <= cache.max_bytes
    even = set(cache.tagged("even"))
    assert cache.bytes_used == sum(cost(k, value(k), ["even"] if k in even else []) for k in held)
