"""The durable journal: one node's accepted messages, de-dup set, dead letters and outbox.

Everything the engine, the webhook ingress and the sender must not lose to a crash lives
in one SQLite file (WAL mode), written by one thread of the Rust core:

Schema (version 1; a newer file is refused, an older one upgraded step by step):
    ``messages`` holds every accepted, unfinished message (seq, priority, enqueued_at,
    ordering_key, attempt, dispatched, not_before, payload); a finished one is deleted.
    ``dead_letters`` and ``sender_dead_letters`` keep what was given up on until
    replayed or purged. ``dedup`` remembers webhook wamids (for ``dedup_window``,
    at most ``dedup_max_entries``). ``outbox`` holds replies: pending, sending
    (on the wire: uncertain after a crash) and sent (until their status webhook).
    ``meta`` holds the schema version and ``next_seq``, so seqs stay unique across
    restarts.

Group commit:
    Every operation is queued and gets a ticket. The writer thread commits everything
    queued in one transaction with one fsync, then reports "committed up to ticket T"
    through a pipe the event loop watches (`AsyncJournal`) and a condvar blocking
    callers wait on (`Journal`). Python code never holds the GIL while SQLite works,
    and the event loop never blocks. Operations apply in submission order.

Durability:
    A result is reported only after its transaction committed. ``sync="full"`` (the
    default) survives power loss; ``sync="normal"`` survives a process crash (even
    ``kill -9``) but may lose the last commits to a power loss. A failed transaction
    (disk full, read-only file) is rolled back and every operation in it fails with
    `JournalError` naming the file and the cause; an operation that does not fit the
    journal (an unknown id, a reused seq) fails alone with `ValueError`, changing
    nothing. One process owns a journal at a time (`JournalLocked` names the holder's
    pid); a file that is not a journal, is corrupt or is newer is refused, never
    modified.

Example:
    >>> with Journal.open("/var/lib/bot/journal.db") as journal:
    ...     recovery = journal.recover()
    ...     journal.insert_payloads(recovery.next_seq, [payload], priority=1, enqueued_at=time.time())
"""

from sluiceway._core import JournalError as JournalError
from sluiceway._core import JournalLocked as JournalLocked
from sluiceway.journal.aio import AsyncJournal as AsyncJournal
from sluiceway.journal.journal import DEFAULT_DEDUP_MAX_ENTRIES as DEFAULT_DEDUP_MAX_ENTRIES
from sluiceway.journal.journal import DEFAULT_DEDUP_WINDOW as DEFAULT_DEDUP_WINDOW
from sluiceway.journal.journal import Journal as Journal
from sluiceway.journal.journal import SyncLevel as SyncLevel
from sluiceway.journal.records import DeadLetter as DeadLetter
from sluiceway.journal.records import JournaledMessage as JournaledMessage
from sluiceway.journal.records import JournalStats as JournalStats
from sluiceway.journal.records import OutboxItem as OutboxItem
from sluiceway.journal.records import OutboxState as OutboxState
from sluiceway.journal.records import Recovery as Recovery
from sluiceway.journal.records import SenderDeadLetter as SenderDeadLetter
from sluiceway.journal.runs import seq_runs as seq_runs

__all__ = [
    "DEFAULT_DEDUP_MAX_ENTRIES",
    "DEFAULT_DEDUP_WINDOW",
    "AsyncJournal",
    "DeadLetter",
    "Journal",
    "JournalError",
    "JournalLocked",
    "JournalStats",
    "JournaledMessage",
    "OutboxItem",
    "OutboxState",
    "Recovery",
    "SenderDeadLetter",
    "SyncLevel",
    "seq_runs",
]
