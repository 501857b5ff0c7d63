"""PriorityQueue against a small pure-Python reference model, plus its error cases."""

from __future__ import annotations

import doctest
import threading
from collections import deque
from collections.abc import Iterable, Iterator

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from sluiceway._core import PriorityQueue, QueueEmpty, QueueFull, SluicewayError


class ModelQueue:
    """The documented contract, written as plainly as possible."""

    def __init__(self, levels: int, maxsize: int, starvation_limit: int) -> None:
        self.queues: list[deque[object]] = [deque() for _ in range(levels)]
        self.maxsize = maxsize
        self.limit = starvation_limit
        #: Per level: pops served from a higher level since it was last served or became non-empty.
        self.passed_over = [0] * levels

    def __len__(self) -> int:
        return sum(map(len, self.queues))

    def fits(self, count: int) -> bool:
        return self.maxsize == 0 or len(self) + count <= self.maxsize

    def push_many(self, items: list[object], priority: int) -> None:
        self.queues[priority].extend(items)

    def pop(self) -> object:
        waiting = [level for level, q in enumerate(self.queues) if q]
        overdue = [level for level in waiting if self.limit and self.passed_over[level] >= self.limit]
        served = min(overdue or waiting)
        item = self.queues[served].popleft()
        if self.limit:
            self.passed_over[served] = 0
            for level in waiting:
                if level > served:
                    self.passed_over[level] += 1
        return item

    def clear(self) -> None:
        for q in self.queues:
            q.clear()
        self.passed_over = [0] * len(self.queues)


def as_shape(items: list[object], shape: str) -> Iterable[object]:
    """The same items as a list, a tuple or a one-shot generator."""
    if shape == "tuple":
        return tuple(items)
    if shape == "generator":
        return (item for item in items)
    return items


class PriorityQueueMachine(RuleBasedStateMachine):
    """Random push/pop sequences give the same results on the queue and on the model."""

    queue: PriorityQueue
    model: ModelQueue

    @initialize(
        levels=st.integers(1, 5),
        maxsize=st.sampled_from([0, 0, 1, 3, 8]),
        starvation_limit=st.sampled_from([0, 0, 1, 2, 3]),
    )
    def build(self, levels: int, maxsize: int, starvation_limit: int) -> None:
        self.queue = PriorityQueue(levels=levels, maxsize=maxsize, starvation_limit=starvation_limit)
        self.model = ModelQueue(levels, maxsize, starvation_limit)
        assert (self.queue.levels, self.queue.maxsize) == (levels, maxsize)

    @rule(priority=st.integers(-2, 6))
    def push(self, priority: int) -> None:
        item = object()
        if not 0 <= priority < len(self.model.queues):
            with pytest.raises(ValueError, match="priority"):
                self.queue.push(item, priority)
        elif not self.model.fits(1):
            with pytest.raises(QueueFull):
                self.queue.push(item, priority)
        else:
            self.queue.push(item, priority)
            self.model.push_many([item], priority)

    @rule()
    def push_default_priority(self) -> None:
        item = object()
        if len(self.model.queues) < 2:
            with pytest.raises(ValueError, match="priority"):
                self.queue.push(item)
        elif not self.model.fits(1):
            with pytest.raises(QueueFull):
                self.queue.push(item)
        else:
            self.queue.push(item)
            self.model.push_many([item], 1)

    @rule(count=st.integers(0, 5), priority=st.integers(-1, 5), shape=st.sampled_from(["list", "tuple", "generator"]))
    def push_many(self, count: int, priority: int, shape: str) -> None:
        items = [object() for _ in range(count)]
        if not 0 <= priority < len(self.model.queues):
            with pytest.raises(ValueError, match="priority"):
                self.queue.push_many(as_shape(items, shape), priority)
        elif not self.model.fits(count):
            with pytest.raises(QueueFull):
                self.queue.push_many(as_shape(items, shape), priority)
        else:
            self.queue.push_many(as_shape(items, shape), priority)
            self.model.push_many(items, priority)

    @rule()
    def pop(self) -> None:
        if len(self.model) == 0:
            with pytest.raises(QueueEmpty):
                self.queue.pop()
        else:
            assert self.queue.pop() is self.model.pop()

    @rule(n=st.integers(0, 7))
    def pop_many(self, n: int) -> None:
        expected = [self.model.pop() for _ in range(min(n, len(self.model)))]
        got = self.queue.pop_many(n)
        assert len(got) == len(expected)
        assert all(a is b for a, b in zip(got, expected, strict=False))

    @precondition(lambda self: len(self.model) > 0)
    @rule()
    def clear(self) -> None:
        self.queue.clear()
        self.model.clear()

    @invariant()
    def sizes_agree(self) -> None:
        assert self.queue.depths() == [len(q) for q in self.model.queues]
        assert len(self.queue) == len(self.model)
        assert bool(self.queue) == (len(self.model) > 0)

    @invariant()
    def head_wait_is_bounded(self) -> None:
        # Documented guarantee: the head of level L is passed over by at most k + L - 1 higher pops.
        if self.model.limit:
            for level, passed in enumerate(self.model.passed_over):
                assert passed <= self.model.limit + level - 1


TestPriorityQueueMachine = PriorityQueueMachine.TestCase


def test_strict_priority_starves_without_limit_and_not_with_it() -> None:
    """With strict priority a busy level 0 holds level 1 back; with starvation_limit=2 it waits 2 pops."""
    for limit, expected_position in ((0, None), (2, 2)):
        q = PriorityQueue(levels=2, starvation_limit=limit)
        q.push("low", 1)
        served = []
        for i in range(10):
            q.push(i, 0)  # a steady high-priority stream: one in, one out
            served.append(q.pop())
        position = served.index("low") if "low" in served else None
        assert position == expected_position


def test_pop_many_on_empty_returns_empty_list() -> None:
    """pop_many on an empty queue returns a new empty list rather than raising."""
    assert PriorityQueue().pop_many(5) == []


def test_items_keep_their_identity() -> None:
    """pop returns the very object pushed, of any type, including unhashable and None."""
    items: list[object] = [None, [1], {"a": 1}, object(), 3.5]
    q = PriorityQueue(levels=1)
    for item in items:
        q.push(item, 0)
    assert all(got is item for got, item in zip(q.pop_many(10), items, strict=False))


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"levels": 0}, "levels"),
        ({"levels": -1}, "levels"),
        ({"levels": 65}, "levels"),
        ({"maxsize": -1}, "maxsize"),
        ({"starvation_limit": -3}, "starvation_limit"),
    ],
)
def test_bad_constructor_arguments_raise_value_error_naming_them(kwargs: dict[str, int], argument: str) -> None:
    """Constructor arguments out of range raise ValueError naming the argument."""
    with pytest.raises(ValueError, match=argument):
        PriorityQueue(**kwargs)


@pytest.mark.parametrize("priority", [-1, 3, 2**70, -(2**70)])
def test_bad_priority_raises_value_error_and_changes_nothing(priority: int) -> None:
    """A priority outside range(levels), however large, raises ValueError and leaves the queue as it was."""
    q = PriorityQueue(levels=3)
    with pytest.raises(ValueError, match="priority"):
        q.push("x", priority)
    with pytest.raises(ValueError, match="priority"):
        q.push_many(["x", "y"], priority)
    assert len(q) == 0


def test_non_integer_priority_raises_type_error() -> None:
    """A priority that is not an int is a TypeError, not silently truncated."""
    with pytest.raises(TypeError):
        PriorityQueue().push("x", 1.0)  # type: ignore[arg-type]


def test_queue_full_and_queue_empty_are_sluiceway_errors() -> None:
    """QueueFull at maxsize and QueueEmpty on an empty pop are catchable as SluicewayError."""
    q = PriorityQueue(maxsize=1)
    q.push("a")
    with pytest.raises(SluicewayError):
        q.push("b")
    with pytest.raises(QueueFull, match="maxsize of 1"):
        q.push_many(["b"])
    assert q.pop() == "a"
    with pytest.raises(QueueEmpty):
        q.pop()


def test_push_many_iterable_failure_leaves_queue_unchanged() -> None:
    """An iterable that raises midway propagates its error and pushes nothing."""

    def broken() -> Iterator[int]:
        yield 1
        raise RuntimeError("source failed")

    q = PriorityQueue()
    with pytest.raises(RuntimeError, match="source failed"):
        q.push_many(broken())
    with pytest.raises(TypeError):
        q.push_many(5)  # type: ignore[arg-type]
    assert len(q) == 0


def test_pop_many_negative_count_raises_value_error() -> None:
    """pop_many with a negative count raises ValueError naming n."""
    with pytest.raises(ValueError, match="n must be"):
        PriorityQueue().pop_many(-1)


@pytest.mark.timeout(60)
def test_finalizers_may_use_the_queue_during_clear() -> None:
    """Items whose __del__ pushes onto the same queue do not deadlock clear()."""
    q = PriorityQueue(levels=2)

    class Reenters:
        def __del__(self) -> None:
            q.push("from finalizer", 0)

    q.push(Reenters(), 1)
    q.clear()
    assert q.pop_many(5) == ["from finalizer"]


@pytest.mark.timeout(120)
def test_concurrent_producers_and_consumers_lose_and_duplicate_nothing() -> None:
    """Threads pushing and popping at once get every item out exactly once."""
    q = PriorityQueue(levels=3)
    producers, per_producer = 4, 2_000
    taken: list[list[object]] = [[] for _ in range(2)]
    done = threading.Event()

    def produce(base: int) -> None:
        for i in range(per_producer):
            q.push(base + i, i % 3)

    def consume(into: list[object]) -> None:
        while not done.is_set() or q:
            into.extend(q.pop_many(7))

    threads = [threading.Thread(target=produce, args=(p * per_producer,)) for p in range(producers)]
    consumers = [threading.Thread(target=consume, args=(taken[c],)) for c in range(2)]
    for t in consumers + threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    for t in consumers:
        t.join()
    everything = taken[0] + taken[1]
    assert sorted(everything) == list(range(producers * per_producer))  # type: ignore[type-var]


def test_docstring_example_runs() -> None:
    """The Example in PriorityQueue's docstring (shown by help()) produces the output it shows."""
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner()
    for test in finder.find(PriorityQueue, "PriorityQueue", globs={"PriorityQueue": PriorityQueue}):
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.attempted > 0
    assert results.failed == 0
