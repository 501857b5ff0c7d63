"""The Redis rate limits: the GCRA script against a per-token model, the window guarantee, the backend's behaviour."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from sluiceway.testing.redis_server import RedisServer
from sluiceway.whatsapp.config import RateLimits, RecipientLimit
from sluiceway.whatsapp.redis_limits import HORIZON_BATCHES, RedisRateLimits

MICROS = 1_000_000


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def client(shared_redis: RedisServer, loop: asyncio.AbstractEventLoop) -> Iterator[Redis]:
    redis = Redis.from_url(shared_redis.url)
    yield redis
    loop.run_until_complete(redis.aclose())


class ReservationModel:
    """The script's global part, one token at a time: per-second slots ``emission`` apart at most ``horizon``
    ahead, and each policed limit's GCRA (a token conforms if TAT - now <= burst)."""

    def __init__(self, limits: RedisRateLimits) -> None:
        self.emission, self.horizon = limits.emission, HORIZON_BATCHES * limits.batch * limits.emission
        self.policed = [(limit.emission, limit.burst) for limit in limits.policed]
        self.tat, self.policed_tats = 0, [0] * len(self.policed)

    def reserve(self, now: int, want: int) -> tuple[list[int], int]:
        """The slots granted, and the wait (µs) when none was."""
        tat, tats, slots = max(self.tat, now), [max(p, now) for p in self.policed_tats], []
        while (
            len(slots) < want
            and tat - now <= self.horizon
            and all(p - now <= burst for p, (_, burst) in zip(tats, self.policed, strict=True))
        ):
            slots.append(tat)
            tat += self.emission
            tats = [p + emission for p, (emission, _) in zip(tats, self.policed, strict=True)]
        if slots:
            self.tat, self.policed_tats = tat, tats
            return slots, 0
        waits = [tat - now - self.horizon] + [p - now - burst for p, (_, burst) in zip(tats, self.policed, strict=True)]
        return slots, max(waits) if want else 0


calls = st.lists(
    st.tuples(st.integers(min_value=0, max_value=40_000), st.integers(min_value=0, max_value=20)),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60)
@given(
    per_second=st.integers(min_value=1, max_value=2000),
    per_minute=st.none() | st.integers(min_value=1, max_value=60),
    steps=calls,
)
def test_reservations_match_the_per_token_model_and_keep_every_window_within_its_limit(
    loop: asyncio.AbstractEventLoop,
    client: Redis,
    per_second: int,
    per_minute: int | None,
    steps: list[tuple[int, int]],
) -> None:
    rate_limit = RateLimits(per_second=per_second, per_minute=per_minute, per_hour=None)
    limits = RedisRateLimits(client, rate_limit, RecipientLimit(), key=uuid.uuid4().hex)
    model = ReservationModel(limits)
    now = 1_000 * MICROS
    slots: list[int] = []
    grants: list[tuple[int, int]] = []
    for step, want in steps:
        now += step
        reply = [int(v) for v in loop.run_until_complete(limits.call(want=want, recipients=[], now=now / MICROS))]
        expected, wait = model.reserve(now, want)
        assert reply[0] == len(expected) and reply[2] == now
        if expected:
            assert [now + reply[3] + i * reply[4] for i in range(reply[0])] == expected
            slots += expected
            grants.append((now, len(expected)))
        else:
            assert reply[1] == wait
            assert wait > 0 or want == 0  # a refusal says how long to wait
    # The guarantees: no second of Redis's clock holds more slots than the cap, and a token spent within
    # the horizon and the hold of its grant keeps every minute within its count.
    second = MICROS
    for i, start in enumerate(slots):
        assert sum(1 for at in slots[i:] if at <= start + second) <= per_second
    if per_minute is not None:
        minute = round((60.0 + limits.hold) * MICROS) + model.horizon
        for i, (start, _) in enumerate(grants):
            assert sum(n for at, n in grants[i:] if at <= start + minute) <= per_minute


@settings(max_examples=40)
@given(
    limit=st.integers(min_value=1, max_value=3),
    steps=st.lists(st.tuples(st.integers(0, 3_000_000), st.sampled_from("abc"), st.booleans()), max_size=40),
)
def test_pair_tokens_are_spaced_a_window_plus_their_hold_apart_and_penalties_add_a_window(
    loop: asyncio.AbstractEventLoop, client: Redis, limit: int, steps: list[tuple[int, str, bool]]
) -> None:
    per_recipient = RecipientLimit(limit=limit, window=6.0)
    limits = RedisRateLimits(client, RateLimits.cloud_api(80), per_recipient, key=uuid.uuid4().hex)
    spacing = round((6.0 + limits.pair_hold) / limit * MICROS)
    tat = dict.fromkeys("abc", 0)
    now = 1_000 * MICROS
    for step, recipient, penalize in steps:
        now += step
        reply = loop.run_until_complete(
            limits.call(want=0, recipients=[recipient], penalized=int(penalize), now=now / MICROS)
        )
        start = max(tat[recipient], now)
        if penalize:
            tat[recipient] = start + 6 * MICROS
        elif start > now:
            assert int(reply[5]) == start - now
        else:
            assert int(reply[5]) == 0
            tat[recipient] = now + spacing


@settings(max_examples=40)
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 8_000_000), st.sampled_from("ab"), st.sampled_from(["ask", "hand back", "penalize"])),
        max_size=40,
    )
)
def test_a_pair_token_handed_back_unspent_is_granted_again_and_spent_tokens_stay_a_spacing_apart(
    loop: asyncio.AbstractEventLoop, client: Redis, steps: list[tuple[int, str, str]]
) -> None:
    """ "hand back" asks again returning the recipient's last grant unspent (a node whose permit lapsed): the
    script undoes that grant if none came after it, and the grants that were spent stay a spacing apart."""
    limits = RedisRateLimits(client, RateLimits.cloud_api(80), RecipientLimit(), key=uuid.uuid4().hex)
    spacing = round((6.0 + limits.pair_hold) * MICROS)
    key = dict.fromkeys("ab", 0)  # the model of each pair key
    last: dict[str, int | None] = dict.fromkeys("ab")  # the key value the recipient's last grant set
    spent: dict[str, list[int]] = {"a": [], "b": []}  # grant times of the tokens spent
    now = 1_000 * MICROS
    for step, recipient, action in steps:
        now += step
        unspent: dict[str, int] = {}
        handed = last[recipient]
        if action == "hand back" and handed is not None:
            unspent = {recipient: handed}
            spent[recipient].remove(handed - spacing)  # never spent after all
            last[recipient] = None
        penalize = action == "penalize"
        reply = loop.run_until_complete(
            limits.call(want=0, recipients=[recipient], penalized=int(penalize), unspent=unspent, now=now / MICROS)
        )
        tat = key[recipient] - spacing if unspent and key[recipient] == handed else key[recipient]
        start = max(tat, now)
        if penalize:
            key[recipient] = start + 6 * MICROS
        elif start > now:
            assert int(reply[5]) == start - now
        else:
            assert int(reply[5]) == 0
            key[recipient] = last[recipient] = now + spacing
            spent[recipient].append(now)
    for times in spent.values():
        assert all(later - earlier >= spacing for earlier, later in itertools.pairwise(times))


def test_a_pair_token_that_lapsed_unspent_costs_its_recipient_no_window(
    loop: asyncio.AbstractEventLoop, client: Redis
) -> None:
    """A node too slow to spend a pair token within ``pair_hold`` hands it back: the recipient's send goes
    out on the next round trip instead of a window later."""

    async def scenario() -> None:
        now = [asyncio.get_running_loop().time()]
        limits = RedisRateLimits(
            client, RateLimits.cloud_api(1000), RecipientLimit(), key=uuid.uuid4().hex, clock=lambda: now[0]
        )
        assert not limits.take_recipient("r1", now[0])  # asked for, with a batch of global tokens
        await _until(lambda: limits.granted > 0)
        now[0] += 1.0  # the permit lapsed unspent
        assert not limits.take_recipient("r1", now[0])
        await _until(lambda: limits.take_recipient("r1", now[0]))
        assert limits.round_trips == 2
        assert not limits.take_recipient("r1", now[0])  # that one was spent: the next waits a window
        await _until(lambda: limits.recipient_wait("r1", now[0]) > 1.0)
        await limits.aclose()

    loop.run_until_complete(scenario())


def test_a_throughput_error_on_one_node_stops_every_node_for_the_throttle_hold(
    loop: asyncio.AbstractEventLoop, client: Redis
) -> None:
    key = uuid.uuid4().hex
    a = RedisRateLimits(client, RateLimits.cloud_api(100), RecipientLimit(), key=key, throttle_hold=1.0)
    b = RedisRateLimits(client, RateLimits.cloud_api(100), RecipientLimit(), key=key, throttle_hold=1.0)
    loop.run_until_complete(a.call(want=0, recipients=[], throttle=True, now=50.0))
    refused = loop.run_until_complete(b.call(want=1, recipients=[], now=50.5))
    assert int(refused[0]) == 0 and int(refused[1]) == 500_000
    assert int(loop.run_until_complete(b.call(want=1, recipients=[], now=51.0))[0]) == 1


def test_the_backend_grants_only_what_redis_reserved_and_asks_again_in_the_background(
    loop: asyncio.AbstractEventLoop, client: Redis
) -> None:
    async def scenario() -> None:
        limits = RedisRateLimits(client, RateLimits.cloud_api(1000), RecipientLimit(), key=uuid.uuid4().hex)
        clock = asyncio.get_running_loop().time
        assert not limits.take_recipient("r1", clock())  # nothing held yet: asked for
        assert limits.global_wait(clock()) > 0
        await _until(lambda: limits.granted > 0)
        assert limits.take_recipient("r1", clock()) and limits.take_global(clock())
        assert limits.round_trips <= 2
        assert not limits.take_recipient("r1", clock())  # one per window
        await _until(lambda: limits.recipient_wait("r1", clock()) > 1.0)
        await limits.aclose()

    loop.run_until_complete(scenario())


def test_with_redis_down_nothing_is_granted_until_it_answers_again() -> None:
    async def scenario(server: RedisServer) -> None:
        redis = Redis.from_url(server.url)
        limits = RedisRateLimits(redis, RateLimits.cloud_api(1000), RecipientLimit(), key="down")
        clock = asyncio.get_running_loop().time
        server.stop()
        for _ in range(20):
            assert not limits.take_global(clock())
            await asyncio.sleep(0.01)
        assert limits.granted == 0 and limits.global_wait(clock()) > 0
        server.start()
        await _until(lambda: limits.global_wait(clock()) == 0, timeout=10.0)
        assert limits.take_global(clock())
        await limits.aclose()
        await redis.aclose()

    with RedisServer() as server:
        asyncio.run(scenario(server))


async def _until(condition: object, timeout: float = 5.0) -> None:
    assert callable(condition)
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.002)
