"""The journal against a reference model: every operation, reopen and crash-reopen."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sluiceway.journal import Journal, JournaledMessage, OutboxItem

WINDOW = 50.0
MAX_WAMIDS = 4


class Clock:
    """Wall clock for the journal: rises by one per reading (no ties), jumps on demand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@dataclass
class ModelDead:
    message: JournaledMessage
    attempts: int


@dataclass
class ModelReply:
    item: OutboxItem
    updated_at: float


@dataclass
class Model:
    messages: dict[int, JournaledMessage] = field(default_factory=dict)
    next_seq: int = 0
    dead: dict[int, ModelDead] = field(default_factory=dict)
    wamids: dict[str, float] = field(default_factory=dict)
    outbox: dict[int, ModelReply] = field(default_factory=dict)
    sender_dead: dict[int, OutboxItem] = field(default_factory=dict)
    uncertain_resends: int = 0


def open_journal(path: str, clock: Clock) -> Journal:
    # "normal" survives a process crash as "full" does, with less fsync time per step.
    return Journal.open(
        path, sync="normal", clock=clock, dedup_window=WINDOW, dedup_max_entries=MAX_WAMIDS, idle_interval=60
    )


# A child commits an insert, then ends without closing, as a crash would (a fresh
# interpreter rather than a fork: forking a process that may run threads is unsafe).
CRASHING_CHILD = """
import os, sys
from sluiceway.journal import Journal
path, first_seq, *payloads = sys.argv[1:]
journal = Journal.open(path, sync="normal")
journal.insert_payloads(int(first_seq), [bytes.fromhex(p) for p in payloads], 2, 5.0, "crash")
os._exit(0)
"""


seq_ranges = st.tuples(st.integers(0, 40), st.integers(0, 6))
payloads = st.lists(st.binary(max_size=8), min_size=1, max_size=5)


class JournalMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="journal-sm-")
        self.path = os.path.join(self.dir, "j.db")
        self.clock = Clock()
        self.journal = open_journal(self.path, self.clock)
        self.model = Model()
        self.crashed = False

    def teardown(self) -> None:
        self.journal.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- messages ----------------------------------------------------------------------------

    @rule(
        items=payloads, priority=st.integers(0, 3), key=st.none() | st.sampled_from(["a", "b"]), gap=st.integers(0, 2)
    )
    def insert(self, items: list[bytes], priority: int, key: str | None, gap: int) -> None:
        first = self.model.next_seq + gap
        self.journal.insert_payloads(first, items, priority, 7.5, key)
        for i, payload in enumerate(items):
            self.model.messages[first + i] = JournaledMessage(first + i, priority, 7.5, key, 0, False, None, payload)
        self.model.next_seq = first + len(items)

    @rule(span=seq_ranges)
    def insert_reused_seq_is_refused(self, span: tuple[int, int]) -> None:
        if self.model.next_seq == 0:
            return
        seq = span[0] % self.model.next_seq
        try:
            self.journal.insert_payloads(seq, [b"x"], 0, 0.0)
        except ValueError as error:
            assert "already journaled" in str(error)
        else:
            raise AssertionError("a reused seq was accepted")

    def _run(self, span: tuple[int, int]) -> list[int]:
        first, length = span
        return [s for s in range(first, first + length + 1) if s in self.model.messages]

    @rule(span=seq_ranges)
    def dispatch(self, span: tuple[int, int]) -> None:
        hit = self._run(span)
        assert self.journal.dispatch([(span[0], span[0] + span[1])]) == len(hit)
        for s in hit:
            m = self.model.messages[s]
            self.model.messages[s] = m._replace(attempt=m.attempt + 1, dispatched=True)

    @rule(span=seq_ranges)
    def complete(self, span: tuple[int, int]) -> None:
        hit = self._run(span)
        assert self.journal.complete([(span[0], span[0] + span[1])]) == len(hit)
        for s in hit:
            del self.model.messages[s]

    @rule(span=seq_ranges)
    def requeue(self, span: tuple[int, int]) -> None:
        hit = self._run(span)
        assert self.journal.requeue([(span[0], span[0] + span[1])]) == len(hit)
        for s in hit:
            self.model.messages[s] = self.model.messages[s]._replace(dispatched=False)

    @rule(seq=st.integers(0, 40), attempt=st.integers(0, 9), not_before=st.floats(0, 1e6))
    def retry(self, seq: int, attempt: int, not_before: float) -> None:
        changed = self.journal.retry([(seq, attempt, not_before)])
        assert changed == (seq in self.model.messages)
        if seq in self.model.messages:
            m = self.model.messages[seq]
            self.model.messages[seq] = m._replace(attempt=attempt, not_before=not_before, dispatched=False)

    # -- dead letters ------------------------------------------------------------------------

    @rule(seq=st.integers(0, 40), reason=st.sampled_from(["max_attempts", "poison"]))
    def dead_letter(self, seq: int, reason: str) -> None:
        if seq not in self.model.messages:
            try:
                self.journal.dead_letter(seq, reason)
            except ValueError:
                return
            raise AssertionError("dead-lettered a message that is not journaled")
        dead_id = self.journal.dead_letter(seq, reason, "boom", "tb")
        message = self.model.messages.pop(seq)
        self.model.dead[dead_id] = ModelDead(message, message.attempt)

    @rule(pick=st.none() | st.integers(0, 10))
    def replay(self, pick: int | None) -> None:
        ids = None if pick is None else sorted(self.model.dead)[pick : pick + 2]
        replayed = self.journal.replay_dead_letters(ids)
        chosen = sorted(self.model.dead) if ids is None else ids
        assert [m.payload for m in replayed] == [self.model.dead[i].message.payload for i in chosen]
        for new, dead_id in zip(replayed, chosen, strict=True):
            old = self.model.dead.pop(dead_id).message
            assert new.seq >= self.model.next_seq
            self.model.messages[new.seq] = old._replace(seq=new.seq, attempt=0, dispatched=False, not_before=None)
            self.model.next_seq = new.seq + 1

    @rule(pick=st.none() | st.integers(0, 10))
    def purge(self, pick: int | None) -> None:
        ids = None if pick is None else sorted(self.model.dead)[pick : pick + 1]
        gone = sorted(self.model.dead) if ids is None else ids
        assert self.journal.purge_dead_letters(ids) == len(gone)
        for dead_id in gone:
            del self.model.dead[dead_id]

    # -- webhooks ------------------------------------------------------------------------------

    @rule(wamid=st.sampled_from([f"w{i}" for i in range(8)]), payload=st.binary(max_size=4))
    def webhook(self, wamid: str, payload: bytes) -> None:
        seq = self.model.next_seq
        seen_at = self.clock.now + 1  # the reading the journal takes
        duplicate = self.journal.accept_webhook(wamid, seq, payload, 1, enqueued_at=3.0, ordering_key="+1")
        assert duplicate == (wamid in self.model.wamids)
        if duplicate:
            return
        self.model.wamids[wamid] = seen_at
        self.model.messages[seq] = JournaledMessage(seq, 1, 3.0, "+1", 0, False, None, payload)
        self.model.next_seq = seq + 1
        while len(self.model.wamids) > MAX_WAMIDS:
            del self.model.wamids[min(self.model.wamids, key=self.model.wamids.__getitem__)]

    @rule(seconds=st.floats(0, 2 * WINDOW))
    def expire(self, seconds: float) -> None:
        self.clock.now += seconds
        now = self.clock.now + 1
        cutoff = now - WINDOW
        old = [w for w, at in self.model.wamids.items() if at < cutoff]
        sent = [i for i, r in self.model.outbox.items() if r.item.state == "sent" and r.updated_at < cutoff]
        assert self.journal.expire() == len(old) + len(sent)
        for w in old:
            del self.model.wamids[w]
        for i in sent:
            del self.model.outbox[i]

    # -- outbox --------------------------------------------------------------------------------

    @rule(recipient=st.sampled_from(["+1", "+2"]), body=st.binary(max_size=6))
    def outbox_add(self, recipient: str, body: bytes) -> None:
        created = self.clock.now + 1
        reply_id = self.journal.outbox_add(recipient, body, "in-wamid", 4)
        item = OutboxItem(reply_id, recipient, body, "in-wamid", 4, "pending", None, 0, created)
        self.model.outbox[reply_id] = ModelReply(item, created)

    def _reply(self, pick: int) -> int | None:
        ids = sorted(self.model.outbox)
        return ids[pick % len(ids)] if ids else None

    @rule(pick=st.integers(0, 10))
    def outbox_sending(self, pick: int) -> None:
        reply_id = self._reply(pick)
        if reply_id is None:
            return
        reply = self.model.outbox[reply_id]
        if reply.item.state == "sent":
            try:
                self.journal.outbox_sending(reply_id)
            except ValueError:
                return
            raise AssertionError("a sent reply went on the wire again")
        now = self.clock.now + 1
        self.journal.outbox_sending(reply_id)
        resends = reply.item.resends + (reply.item.state == "sending")
        self.model.uncertain_resends += reply.item.state == "sending"
        self.model.outbox[reply_id] = ModelReply(reply.item._replace(state="sending", resends=resends), now)

    @rule(pick=st.integers(0, 10))
    def outbox_sent(self, pick: int) -> None:
        reply_id = self._reply(pick)
        if reply_id is None:
            return
        now = self.clock.now + 1
        self.journal.outbox_sent(reply_id, f"out-{reply_id}")
        item = self.model.outbox[reply_id].item._replace(state="sent", sent_wamid=f"out-{reply_id}")
        self.model.outbox[reply_id] = ModelReply(item, now)

    @rule(pick=st.integers(0, 10))
    def outbox_status(self, pick: int) -> None:
        wamid = f"out-{pick}"
        matching = [i for i, r in self.model.outbox.items() if r.item.sent_wamid == wamid]
        assert self.journal.outbox_status(wamid) == bool(matching)
        for i in matching:
            del self.model.outbox[i]

    @rule(pick=st.integers(0, 10), attempts=st.integers(1, 5))
    def outbox_fail(self, pick: int, attempts: int) -> None:
        reply_id = self._reply(pick)
        if reply_id is None:
            return
        dead_id = self.journal.outbox_fail(reply_id, "rejected", "400", attempts)
        self.model.sender_dead[dead_id] = self.model.outbox.pop(reply_id).item

    @rule()
    def replay_sender_dead_letters(self) -> None:
        now = self.clock.now + 1
        replayed = self.journal.replay_sender_dead_letters()
        originals = [self.model.sender_dead[i] for i in sorted(self.model.sender_dead)]
        assert [(r.recipient, r.body) for r in replayed] == [(o.recipient, o.body) for o in originals]
        self.model.sender_dead.clear()
        for r in replayed:
            assert r.state == "pending"
            item = OutboxItem(r.id, r.recipient, r.body, r.inbound_wamid, r.inbound_seq, "pending", None, 0, now)
            self.model.outbox[r.id] = ModelReply(item, now)

    # -- restarts --------------------------------------------------------------------------------

    @rule()
    def reopen(self) -> None:
        self.journal.close()
        self.journal = open_journal(self.path, self.clock)

    # A fresh interpreter per crash is slow: one per example.
    @precondition(lambda self: not self.crashed)
    @rule(items=payloads)
    def crash_reopen(self, items: list[bytes]) -> None:
        self.journal.close()
        self.crashed = True
        args = [self.path, str(self.model.next_seq), *(p.hex() for p in items)]
        subprocess.run([sys.executable, "-c", CRASHING_CHILD, *args], check=True, timeout=120)
        for i, payload in enumerate(items):
            seq = self.model.next_seq + i
            self.model.messages[seq] = JournaledMessage(seq, 2, 5.0, "crash", 0, False, None, payload)
        self.model.next_seq += len(items)
        self.journal = open_journal(self.path, self.clock)

    # -- the state equals the model's ----------------------------------------------------------

    @invariant()
    def matches_model(self) -> None:
        recovery = self.journal.recover()
        assert recovery.messages == [self.model.messages[s] for s in sorted(self.model.messages)]
        assert recovery.next_seq == self.model.next_seq
        assert recovery.suspects == [m for m in recovery.messages if m.dispatched]
        dead = self.journal.dead_letters()
        assert [(d.id, d.seq, d.payload, d.attempts) for d in dead] == [
            (i, self.model.dead[i].message.seq, self.model.dead[i].message.payload, self.model.dead[i].attempts)
            for i in sorted(self.model.dead)
        ]
        unsent = self.journal.outbox_unsent()
        assert unsent == [r.item for _, r in sorted(self.model.outbox.items()) if r.item.state != "sent"]
        sender_dead = self.journal.sender_dead_letters()
        assert [(d.id, d.recipient, d.body) for d in sender_dead] == [
            (i, o.recipient, o.body) for i, o in sorted(self.model.sender_dead.items())
        ]
        stats = self.journal.stats()
        assert stats.pending == len(self.model.messages)
        assert stats.dedup == len(self.model.wamids)
        assert stats.outbox == len(self.model.outbox)
        assert stats.uncertain_resends == self.model.uncertain_resends
        assert stats.outbox_uncertain == sum(r.item.state == "sending" for r in self.model.outbox.values())


JournalMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
TestJournalModel = JournalMachine.TestCase
