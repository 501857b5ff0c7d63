"""The BatchSender's parts on their own: round scheduling, admission and idempotency, against small reference models."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from sluiceway.testing import ManualClock
from sluiceway.whatsapp import BreakerConfig, CircuitBreaker, OutboundMessage, RateLimits, RecipientLimit, SenderConfig
from sluiceway.whatsapp.ledger import IdempotencyWindow
from sluiceway.whatsapp.limits import Admission, SendLimits
from sluiceway.whatsapp.records import PRIORITIES, SendRecord
from sluiceway.whatsapp.rounds import RoundScheduler

PER_RECIPIENT = 2

#: ("add", recipient, level, _) queues a message; ("round", slots, levels, fail_last) takes a round and ends its chains.
Op = tuple[str, int, int, bool]
adds = st.tuples(st.just("add"), st.integers(0, 3), st.integers(0, len(PRIORITIES) - 1), st.just(False))
rounds = st.tuples(st.just("round"), st.integers(1, 6), st.sampled_from([1, len(PRIORITIES)]), st.booleans())


def unlimited(**overrides: object) -> SenderConfig:
    """A config whose limits never bind, so only scheduling decides what a round holds."""
    fields: dict[str, object] = {
        "rate_limit": RateLimits(per_second=1_000_000, per_minute=None, per_hour=None),
        "per_recipient": RecipientLimit(1_000_000, 1.0),
        "max_batch_size_per_recipient": PER_RECIPIENT,
    }
    fields.update(overrides)
    return SenderConfig(**fields)  # type: ignore[arg-type]


@settings(max_examples=200)
@given(ops=st.lists(st.one_of(adds, rounds), max_size=60))
def test_rounds_serve_priorities_in_order_and_each_recipient_first_in_first_out(ops: list[Op]) -> None:
    """Against a model of per-recipient FIFOs: a round takes at most its slots and ``PER_RECIPIENT`` per chain,
    each chain is the front of its recipient's queue, a lower priority is served only when no higher one waits,
    a chain's unsent tail goes back to the front, and in the end every message is taken exactly once."""
    cfg = unlimited()
    limits = SendLimits(cfg, CircuitBreaker(cfg.breaker), now=0.0)
    expired: list[SendRecord] = []
    scheduler = RoundScheduler(cfg, limits, expired.append)
    queues: dict[str, list[SendRecord]] = {}  # the model: each recipient's unsent messages in order
    taken: list[str] = []
    now = 0.0

    def take(slots: int, levels: int, fail_last: bool) -> None:
        chains, wait = scheduler.take_round(now, slots, levels)
        assert wait is None
        assert sum(len(chain) for _, chain in chains) <= slots
        heads = [queues[recipient][0].level for recipient, _ in chains]
        assert heads == sorted(heads) and all(level < levels for level in heads)
        for recipient, chain in chains:
            assert 1 <= len(chain) <= PER_RECIPIENT
            assert chain == queues[recipient][: len(chain)]
        if heads:  # nobody left waiting at a higher priority than one that was served
            served = {recipient for recipient, _ in chains}
            assert all(q[0].level >= heads[-1] for r, q in queues.items() if q and r not in served)
        for recipient, chain in chains:
            sent = chain[:-1] if fail_last else chain
            taken.extend(m.id for m in sent)
            del queues[recipient][: len(sent)]
            if fail_last:
                scheduler.put_back(recipient, chain[-1:])
            scheduler.release(recipient, now)

    for n, (kind, a, b, fail_last) in enumerate(ops):
        if kind == "add":
            recipient = f"1555000{a}"
            record = SendRecord(f"m{n}", OutboundMessage.of_text(recipient, f"t{n}"), b, math.inf)
            scheduler.add(record)
            queues.setdefault(recipient, []).append(record)
        else:
            take(a, b, fail_last)
        now += 0.01
    for _ in range(sum(len(q) for q in queues.values()) + 1):
        take(10, len(PRIORITIES), False)
    assert all(not q for q in queues.values())
    added = [f"m{n}" for n, op in enumerate(ops) if op[0] == "add"]
    assert sorted(taken) == sorted(added) and len(set(taken)) == len(taken)
    assert expired == []


def test_admission_answers_wait_for_a_spent_limit_and_stop_for_an_open_breaker() -> None:
    """Two per second globally (paced: one every 0.5 s) and one per window per recipient; a tripped breaker stops."""
    clock = ManualClock(0.0)
    cfg = SenderConfig(
        rate_limit=RateLimits(per_second=2, per_minute=None, per_hour=None), per_recipient=RecipientLimit(1, 6.0)
    )
    breaker = CircuitBreaker(BreakerConfig(), clock=clock)
    limits = SendLimits(cfg, breaker, now=0.0)
    assert limits.admit("a", 0.0) is Admission.GRANTED
    assert limits.global_wait(0.6) == 0
    assert limits.admit("a", 0.6) is Admission.WAIT  # the pair rate
    assert limits.recipient_wait("a", 0.6) > 0
    assert limits.admit("b", 0.6) is Admission.GRANTED
    assert limits.admit("c", 0.7) is Admission.WAIT  # the global limit
    assert limits.global_wait(0.7) > 0
    assert limits.admit("c", 2.0) is Admission.GRANTED
    breaker.trip()
    assert limits.admit("d", 3.0) is Admission.STOP


@settings(max_examples=200)
@given(
    window=st.sampled_from([0.0, 1.0, 5.0]),
    calls=st.lists(st.tuples(st.sampled_from(["k0", "k1", "k2"]), st.sampled_from([0.0, 0.0, 0.5, 1.0, 3.0]))),
)
def test_idempotency_keys_answer_the_first_id_within_the_window_only(
    window: float, calls: list[tuple[str, float]]
) -> None:
    """Against a dict of key -> (id, expiry): a key seen less than ``window`` seconds ago gives its first id back."""
    keys = IdempotencyWindow(window)
    model: dict[str, tuple[str, float]] = {}
    duplicates = 0
    now = 0.0
    for n, (key, step) in enumerate(calls):
        now += step
        first = model.get(key)
        expected = first[0] if first is not None and now < first[1] else None
        assert keys.seen(key, now) == expected
        if expected is None:
            keys.remember(key, f"m{n}", now)
            if window > 0:
                model[key] = (f"m{n}", now + window)
        else:
            duplicates += 1
    assert keys.duplicates == duplicates
