"""RecentIds (re-delivery de-duplication) and KeywordClassifier against pure-Python reference models."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sluiceway.app.priority import KeywordClassifier
from sluiceway.app.recent_ids import RecentIds
from sluiceway.testing import ManualClock

WINDOW = 10.0
MAX_ENTRIES = 5
ids = st.sampled_from([f"wamid.{i}" for i in range(8)])


class RecentIdsMachine(RuleBasedStateMachine):
    """Model: pending is a set; committed is a list of (id, time) in commit order, pruned by age and count."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.real = RecentIds(WINDOW, MAX_ENTRIES, self.clock)
        self.pending: set[str] = set()
        self.committed: list[tuple[str, float]] = []

    def _prune(self) -> None:
        now = self.clock()
        self.committed = [(i, t) for i, t in self.committed if t > now - WINDOW]
        while len(self.committed) > MAX_ENTRIES:
            self.committed.pop(0)

    @rule(message_id=ids)
    def claim(self, message_id: str) -> None:
        self._prune()
        expected = message_id not in self.pending and all(i != message_id for i, _ in self.committed)
        assert self.real.claim(message_id) == expected
        if expected:
            self.pending.add(message_id)

    @precondition(lambda self: bool(self.pending))
    @rule(data=st.data())
    def commit(self, data: st.DataObject) -> None:
        message_id = data.draw(st.sampled_from(sorted(self.pending)))
        self.pending.discard(message_id)
        self.real.commit(message_id)
        self.committed.append((message_id, self.clock()))
        self._prune()

    @precondition(lambda self: bool(self.pending))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        message_id = data.draw(st.sampled_from(sorted(self.pending)))
        self.pending.discard(message_id)
        self.real.release(message_id)

    @rule(seconds=st.floats(min_value=0, max_value=6))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def sizes_match(self) -> None:
        self._prune()
        assert len(self.real) == len(self.committed) + len(self.pending)


TestRecentIdsMachine = RecentIdsMachine.TestCase


def test_recent_ids_rejects_bad_bounds() -> None:
    """A non-positive window or entry bound is refused with a ValueError naming it."""
    with pytest.raises(ValueError, match="window"):
        RecentIds(0)
    with pytest.raises(ValueError, match="max_entries"):
        RecentIds(1.0, 0)


words = st.sampled_from(["leak", "fire", "gas", "emergency"])
filler = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", max_size=20)


@given(before=filler, word=words, after=filler, upper=st.booleans())
def test_keyword_as_whole_word_is_high(before: str, word: str, after: str, upper: bool) -> None:
    """Any text containing a keyword as a separate word, in any case, is HIGH."""
    classify = KeywordClassifier(["leak", "fire", "gas", "emergency"])
    text = f"{before} {word.upper() if upper else word}! {after}"
    assert classify(text) == "high"


@given(text=filler)
def test_classifier_matches_reference_model(text: str) -> None:
    """The classifier agrees with a split-on-spaces reference for lowercase texts without punctuation."""
    keywords = ["leak", "fire", "gas"]
    expected = "high" if any(word in keywords for word in text.split()) else "normal"
    assert KeywordClassifier(keywords)(text) == expected


def test_empty_classifier_is_always_normal() -> None:
    """With no keywords every message is NORMAL."""
    assert KeywordClassifier([])("fire!") == "normal"
