"""The supervisor's Rust ledger (EntryQueue, InFlight, Entry, PayloadBatch) against a pure-Python model.

What the engine relies on: the queue serves strict priority and FIFO within a level;
dispatch counts a delivery, moves the entries into the worker's table and writes the
DISPATCH frame the worker decodes; settle removes exactly the acked entries it holds and
counts their latencies as ``LatencyHistogram.record_many`` would; nothing is lost or
duplicated on the way.
"""

from __future__ import annotations

import struct
from typing import Any

import msgspec
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sluiceway._core import Entry, EntryQueue, InFlight, PayloadBatch
from sluiceway.engine import pipe
from sluiceway.histogram import LatencyHistogram

LEVELS = 3
NOW = 1000.0
payloads = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=8,
)


def table() -> InFlight:
    return InFlight()


def decode_frame(frame: bytes) -> list[list[Any]]:
    """The items of a DISPATCH frame, after checking its header and kind."""
    (size,) = struct.unpack_from("<I", frame)
    assert size == len(frame) - 4
    kind, items = msgspec.msgpack.decode(frame[4:])
    assert kind == pipe.DISPATCH
    return items


def wire(entry: dict[str, Any]) -> list[Any]:
    """The DISPATCH item the worker must see for a model entry."""
    return [
        entry["seq"],
        entry["attempt"],
        entry["priority"],
        entry["enqueued_at"],
        entry["key"],
        True if entry["future"] is not None else None,
        entry["payload"],
        entry["enqueued"],
    ]


def hist_state(h: LatencyHistogram) -> tuple[Any, ...]:
    return (dict(h.buckets), h.zeros, h.count, h.sum, h.min, h.max)


class LedgerMachine(RuleBasedStateMachine):
    """Random accepts, pushes, dispatches, settles and takes, checked step by step against lists and dicts."""

    def __init__(self) -> None:
        super().__init__()
        self.queue = EntryQueue(LEVELS)
        self.tables = [table(), table()]
        self.model_queue: list[list[dict[str, Any]]] = [[] for _ in range(LEVELS)]
        self.model_held: list[dict[int, dict[str, Any]]] = [{}, {}]
        self.next_seq = 1
        self.latencies = [LatencyHistogram(), LatencyHistogram()]
        self.model_latencies = [LatencyHistogram(), LatencyHistogram()]

    def _entry(self, priority: int, payload: Any, key: str | None, future: object | None, age: float) -> dict[str, Any]:
        seq = self.next_seq
        self.next_seq += 1
        return {
            "seq": seq,
            "attempt": 0,
            "priority": priority,
            "enqueued_at": 1.7e9 + seq,
            "key": key,
            "future": future,
            "payload": payload,
            "enqueued": NOW - age,
        }

    @rule(priority=st.integers(0, LEVELS - 1), payload=payloads, with_future=st.booleans(), age=st.floats(0.0, 50.0))
    def accept(self, priority: int, payload: Any, with_future: bool, age: float) -> None:
        entry = self._entry(priority, payload, None, object() if with_future else None, age)
        self.queue.accept(
            entry["seq"],
            priority,
            entry["enqueued_at"],
            entry["future"],
            msgspec.msgpack.encode(payload),
            entry["enqueued"],
        )
        self.model_queue[priority].append(entry)

    @rule(priority=st.integers(0, LEVELS - 1), batch=st.lists(payloads, max_size=12), data=st.data())
    def accept_batch(self, priority: int, batch: list[Any], data: st.DataObject) -> None:
        start = data.draw(st.integers(0, len(batch)))
        stop = data.draw(st.integers(start, len(batch)))
        first = self.next_seq
        encoded = PayloadBatch(msgspec.msgpack.encode(batch))
        assert len(encoded) == len(batch)
        assert self.queue.accept_batch(encoded, start, stop, first, priority, 1.7e9, NOW - 1.0) == stop - start
        for payload in batch[start:stop]:
            entry = self._entry(priority, payload, None, None, 1.0)
            entry["enqueued_at"] = 1.7e9
            self.model_queue[priority].append(entry)

    @rule(priority=st.integers(0, LEVELS - 1), payload=payloads, key=st.text(max_size=40), attempt=st.integers(0, 5))
    def push(self, priority: int, payload: Any, key: str, attempt: int) -> None:
        """A Python Entry (keyed, as parked ones are) goes in as a copy: changing it afterwards changes nothing."""
        entry = self._entry(priority, payload, key, None, 2.0)
        entry["attempt"] = attempt
        made = Entry(
            entry["seq"],
            priority,
            entry["enqueued_at"],
            key,
            None,
            msgspec.msgpack.encode(payload),
            entry["enqueued"],
            attempt,
        )
        assert (made.seq, made.attempt, made.priority, made.key, made.future) == (
            entry["seq"],
            attempt,
            priority,
            key,
            None,
        )
        self.queue.push(made)
        made.attempt = attempt + 100
        self.model_queue[priority].append(entry)

    @rule(worker=st.integers(0, 1), count=st.integers(0, 20))
    def dispatch(self, worker: int, count: int) -> None:
        frame = self.queue.dispatch(self.tables[worker], count)
        expected = []
        for _ in range(count):
            level = next((i for i, line in enumerate(self.model_queue) if line), None)
            if level is None:
                break
            entry = self.model_queue[level].pop(0)
            entry["attempt"] += 1
            self.model_held[worker][entry["seq"]] = entry
            expected.append(wire(entry))
        if not expected:
            assert frame is None
        else:
            assert frame is not None
            assert decode_frame(frame) == expected

    @rule(worker=st.integers(0, 1), data=st.data())
    def settle(self, worker: int, data: st.DataObject) -> None:
        """Acks for held seqs, unknown seqs and repeats: each held one is settled exactly once."""
        held = sorted(self.model_held[worker])
        acked = data.draw(st.lists(st.sampled_from(held) if held else st.integers(0, 3), max_size=8))
        acked += data.draw(st.lists(st.integers(self.next_seq, self.next_seq + 5), max_size=2))
        settled, keys = self.tables[worker].settle(acked, NOW, self.latencies[worker])
        popped = [self.model_held[worker].pop(seq) for seq in acked if seq in self.model_held[worker]]
        self.model_latencies[worker].record_many([NOW - entry["enqueued"] for entry in popped])
        assert settled == len(popped)
        assert keys == [entry["key"] for entry in popped if entry["key"] is not None]
        assert hist_state(self.latencies[worker]) == hist_state(self.model_latencies[worker])

    @precondition(lambda self: any(self.model_held))
    @rule(worker=st.integers(0, 1), data=st.data())
    def pop(self, worker: int, data: st.DataObject) -> None:
        held = sorted(self.model_held[worker]) or [0]
        seq = data.draw(st.sampled_from([*held, self.next_seq]))
        entry = self.tables[worker].pop(seq)
        model = self.model_held[worker].pop(seq, None)
        if model is None:
            assert entry is None
        else:
            assert entry is not None
            assert [
                entry.seq,
                entry.attempt,
                entry.priority,
                entry.enqueued_at,
                entry.key,
                entry.future,
                msgspec.msgpack.decode(entry.payload),
                entry.enqueued,
            ] == [
                model["seq"],
                model["attempt"],
                model["priority"],
                model["enqueued_at"],
                model["key"],
                model["future"],
                model["payload"],
                model["enqueued"],
            ]
            assert seq not in self.tables[worker]

    @rule(worker=st.integers(0, 1))
    def take_all_held(self, worker: int) -> None:
        """A dead worker's table hands back everything, oldest first (and the entries go back in line)."""
        taken = self.tables[worker].take_all()
        model = [self.model_held[worker][seq] for seq in sorted(self.model_held[worker])]
        assert [(e.seq, e.attempt) for e in taken] == [(m["seq"], m["attempt"]) for m in model]
        self.model_held[worker].clear()
        for entry, m in zip(taken, model, strict=False):
            self.queue.push(entry)
            self.model_queue[m["priority"]].append(m)

    @rule()
    def take_all_queued(self) -> None:
        taken = self.queue.take_all()
        model = [entry for line in self.model_queue for entry in line]
        assert [e.seq for e in taken] == [m["seq"] for m in model]
        assert [msgspec.msgpack.decode(e.payload) for e in taken] == [m["payload"] for m in model]
        for line in self.model_queue:
            line.clear()

    @invariant()
    def sizes_match(self) -> None:
        assert len(self.queue) == sum(map(len, self.model_queue))
        assert bool(self.queue) == any(self.model_queue)
        assert self.queue.depths() == [len(line) for line in self.model_queue]
        assert [len(t) for t in self.tables] == [len(h) for h in self.model_held]


TestLedger = LedgerMachine.TestCase


def test_hold_dispatches_one_entry_and_counts_its_delivery() -> None:
    """The crash-suspect path: one entry, alone in its frame, held until settled."""
    held = table()
    entry = Entry(7, 2, 1.7e9, "+1555", object(), msgspec.msgpack.encode({"a": 1}), NOW, 1)
    items = decode_frame(held.hold(entry))
    assert items == [[7, 2, 2, 1.7e9, "+1555", True, {"a": 1}, NOW]]
    assert 7 in held and len(held) == 1
    assert entry.attempt == 1  # the table counted the delivery on its own copy
    assert held.settle([7], NOW + 0.5, LatencyHistogram()) == (1, ["+1555"])


def test_a_clock_that_went_back_settles_with_latency_zero() -> None:
    queue, held, h = EntryQueue(LEVELS), table(), LatencyHistogram()
    queue.accept(1, 0, 1.7e9, None, msgspec.msgpack.encode(None), NOW)
    queue.dispatch(held, 1)
    assert held.settle([1], NOW - 5.0, h) == (1, [])
    assert (h.count, h.zeros, len(held)) == (1, 1, 0)


def test_entry_batch_makes_keyed_entries_for_a_slice() -> None:
    batch = PayloadBatch(msgspec.msgpack.encode(["a", "b", "c", "d"]))
    entries = Entry.batch(batch, 1, 3, 10, 2, 1.7e9, "k", NOW)
    assert [(e.seq, msgspec.msgpack.decode(e.payload), e.key, e.priority, e.attempt) for e in entries] == [
        (10, "b", "k", 2, 0),
        (11, "c", "k", 2, 0),
    ]


@pytest.mark.parametrize(
    ("encoded", "match"),
    [
        (b"", "truncated"),
        (msgspec.msgpack.encode(5), "not a msgpack array"),
        (b"\x92\xc0", "truncated"),
        (b"\x91\xc1", "invalid byte 0xc1"),
        (b"\x91\xc0\xc0", "stray bytes"),
    ],
)
def test_a_batch_that_is_not_one_msgpack_array_is_refused(encoded: bytes, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PayloadBatch(encoded)


def test_a_key_utf8_cannot_carry_is_refused_when_the_entry_is_made() -> None:
    """A lone surrogate would make the DISPATCH frame unwritable later: it is refused up front."""
    with pytest.raises(UnicodeEncodeError):
        Entry(1, 0, 0.0, "k\ud800", None, b"\xc0", 0.0)
    with pytest.raises(UnicodeEncodeError):
        Entry.batch(PayloadBatch(b"\x91\xc0"), 0, 1, 1, 0, 0.0, "\udfff", 0.0)


def test_bad_ranges_and_priorities_are_refused_and_change_nothing() -> None:
    queue = EntryQueue(LEVELS)
    batch = PayloadBatch(msgspec.msgpack.encode([1, 2]))
    with pytest.raises(ValueError, match="outside a batch of 2"):
        queue.accept_batch(batch, 1, 3, 1, 0, 0.0, 0.0)
    with pytest.raises(ValueError, match="priority must be within 0..2, got 3"):
        queue.accept_batch(batch, 0, 2, 1, 3, 0.0, 0.0)
    with pytest.raises(ValueError, match="priority must be within 0..2, got 5"):
        queue.accept(1, 5, 0.0, None, b"\xc0", 0.0)
    assert len(queue) == 0
    with pytest.raises(ValueError, match="levels"):
        EntryQueue(0)
