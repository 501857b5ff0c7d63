"""Failed deliveries: retries with backoff, crash suspects, dead letters.

A message whose handler raised is retried after the policy's backoff until its attempts
run out, then dead-lettered. A worker's exit puts what it held back in line: if it ran a
message alone, that message killed it and the attempt counts; if it held several, nobody
is to blame yet, so each is refunded its attempt and re-run alone once ("suspects").
"""

from __future__ import annotations

import logging
import pickle
import re
import time

import msgspec

from sluiceway._core import Entry
from sluiceway.engine.dead_letters import DeadLetter, DeadLetterQueue
from sluiceway.engine.errors import HandlerError, MessageDeadLettered
from sluiceway.engine.hooks import HookSet
from sluiceway.engine.ledger import Ledger
from sluiceway.engine.message import Priority
from sluiceway.engine.retry import RetryPolicy
from sluiceway.journal import DeadLetter as JournalDeadLetter
from sluiceway.journal import JournaledMessage

_log = logging.getLogger("sluiceway.engine")
_decoder = msgspec.msgpack.Decoder()
_PRIORITIES = tuple(Priority)
#: Exit reasons that mean the worker died under its messages (not a retirement).
_DEATHS = ("crashed", "unresponsive")
#: Distinct error signatures whose traceback was logged once at WARNING; past this many, tracebacks stay at DEBUG.
SIGNATURES_KEPT = 1000
#: A traceback's frame lines (``  File "app.py", line 12, in handle``): the innermost one locates the error.
_FRAME = re.compile(r'^\s*File "[^"]*", line \d+, in .*$', re.MULTILINE)


class Failures:
    """Decides what becomes of a failed delivery: another attempt later, or a dead letter."""

    def __init__(self, ledger: Ledger, policy: RetryPolicy, hooks: HookSet, engine_id: str) -> None:
        self._ledger = ledger
        self._policy = policy
        self._hooks = hooks
        self._engine_id = engine_id
        self.dead_letters = DeadLetterQueue()
        self._signatures_logged: set[tuple[str, str]] = set()
        #: While false (shutting down) a retry goes straight back to the queue, to be reported as remaining.
        self.running = False

    def failed(self, entry: Entry, reason: str, error: str, traceback_text: str, pickled: bytes | None) -> None:
        """One delivery of ``entry`` (held nowhere now) failed: schedule its retry or dead-letter it."""
        retried = self._policy.should_retry(entry.attempt)
        if entry.attempt <= 1:
            self._log_first_failure(entry, error, traceback_text, retried)
        if retried:
            if self.running:
                # A message that killed its worker while alone is retried alone again.
                self._ledger.retry(entry, self._policy.delay(entry.attempt), alone=reason == "crashed")
            else:  # shutting down: back to the queue at once, to be reported as remaining
                self._ledger.retry(entry, None, alone=False)
            return
        letter = DeadLetter(
            id=f"{self._engine_id}-{entry.seq}",
            payload=_decoder.decode(entry.payload),
            priority=_PRIORITIES[entry.priority],
            attempts=entry.attempt,
            enqueued_at=entry.enqueued_at,
            dead_at=time.time(),
            reason=reason,
            error=error,
            traceback=traceback_text,
            ordering_key=entry.key,
        )
        self.dead_letters.add(letter)
        self._ledger.dead_letter(entry, reason, error, traceback_text)
        if entry.future is not None and not entry.future.done():
            entry.future.set_exception(handler_exception(letter, pickled))
        self._hooks.dead_letter(letter)

    def _log_first_failure(self, entry: Entry, error: str, traceback_text: str, retried: bool) -> None:
        """One WARNING line when a message first fails, so a raising handler is seen at once, not
        only when its attempts run out; later attempts stay quiet (the dead letter keeps the last).

        The traceback follows at WARNING the first time its error signature (the exception type
        and the innermost frame) is seen, so each distinct bug shows where it is once; repeats
        log it at DEBUG.
        """
        message_id = f"{self._engine_id}-{entry.seq}" + (f" (ordering key {entry.key})" if entry.key else "")
        then = f"retried up to {self._policy.max_attempts} attempts" if retried else "dead-lettered"
        _log.warning("message %s failed on its first attempt (%s): %s", message_id, then, error)
        if not traceback_text:
            return
        frames = _FRAME.findall(traceback_text)
        signature = (error.partition(":")[0], frames[-1].strip() if frames else "")
        new = signature not in self._signatures_logged and len(self._signatures_logged) < SIGNATURES_KEPT
        if new:
            self._signatures_logged.add(signature)
        _log.log(
            logging.WARNING if new else logging.DEBUG,
            "traceback of message %s (at WARNING once per distinct error):\n%s",
            message_id,
            traceback_text.rstrip(),
        )

    def recovered(self, messages: list[JournaledMessage]) -> tuple[list[JournaledMessage], list[DeadLetter]]:
        """Judge what a restart found in workers' hands (crash suspects): the messages to re-queue,
        and the dead letters made (for the hooks, once they are started).

        As with a worker's death: if several were in flight, nobody is to blame yet, so each
        is refunded the attempt and re-runs alone; if one was, it ran alone and its attempt
        counts. One that has had ``max_attempts`` starts is dead-lettered without another.
        """
        journal = self._ledger.journal
        assert journal is not None
        suspects = [m for m in messages if m.dispatched]
        shared = len(suspects) > 1
        kept: list[JournaledMessage] = []
        letters: list[DeadLetter] = []
        for m in messages:
            if m.dispatched and shared and m.attempt > 0:
                m = m._replace(attempt=m.attempt - 1)
                journal.retry(m.seq, m.attempt, 0.0)
            if m.dispatched and not self._policy.should_retry(m.attempt):
                error = f"WorkerDied: the process died while running this message alone ({m.attempt} starts)"
                journal.dead_letter(m.seq, "crashed", error, "")
                letter = DeadLetter(
                    id=f"{self._engine_id}-{m.seq}",
                    payload=_decoder.decode(m.payload),
                    priority=_PRIORITIES[m.priority],
                    attempts=m.attempt,
                    enqueued_at=m.enqueued_at,
                    dead_at=time.time(),
                    reason="crashed",
                    error=error,
                    traceback="",
                    ordering_key=m.ordering_key,
                )
                self.dead_letters.add(letter)
                letters.append(letter)
                self._ledger.failed_attempts += 1
                self._ledger.dead_lettered += 1
                continue
            kept.append(m)
        return kept, letters

    def redeliver(self, entries: list[Entry], pid: int, ran_alone: bool, reason: str, code: int | None) -> None:
        """Put back what a worker held when it exited for ``reason`` (``ran_alone``: it was isolating one message)."""
        self._ledger.returned(entries)
        if len(entries) == 1 and (ran_alone or reason in _DEATHS):
            # It ran alone, so its death is its own: count the attempt.
            what = "stopped answering" if reason == "unresponsive" else f"exited with code {code}"
            self.failed(
                entries[0], "crashed", f"WorkerDied: worker {pid} {what} while running this message alone", "", None
            )
            return
        # Shared deaths are nobody's fault yet: refund the attempt and re-run each alone once.
        for entry in entries:
            entry.attempt -= 1
            self._ledger.requeue(entry, alone=reason in _DEATHS)


def recovered_letter(engine_id: str, letter: JournalDeadLetter) -> DeadLetter:
    """A dead letter the journal kept from an earlier run, as the engine reports it."""
    return DeadLetter(
        id=f"{engine_id}-{letter.seq}",
        payload=_decoder.decode(letter.payload),
        priority=_PRIORITIES[letter.priority],
        attempts=letter.attempts,
        enqueued_at=letter.enqueued_at,
        dead_at=letter.dead_at,
        reason=letter.reason,
        error=letter.error,
        traceback=letter.traceback,
        ordering_key=letter.ordering_key,
    )


def handler_exception(letter: DeadLetter, pickled: bytes | None) -> BaseException:
    """What ``submit`` raises for a dead-lettered message: the handler's own exception if it crossed over."""
    if pickled is not None:
        try:
            exc = pickle.loads(pickled)
            if isinstance(exc, BaseException):
                return exc
        except Exception:
            _log.debug("the handler's pickled exception for %s did not load", letter.id, exc_info=True)
    if letter.reason == "crashed":
        return MessageDeadLettered(
            f"message {letter.id} dead-lettered after {letter.attempts} attempts: {letter.error}"
        )
    error_type, _, text = letter.error.partition(": ")
    return HandlerError(error_type, text, letter.traceback)
