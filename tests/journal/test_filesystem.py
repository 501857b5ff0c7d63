"""A full disk and a read-only file system, on a small tmpfs mounted for the test (needs root)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from sluiceway.journal import Journal, JournalError


def test_a_full_disk_fails_the_transaction_and_keeps_what_was_committed(tmpfs: Path) -> None:
    path = tmpfs / "j.db"
    with Journal.open(path) as journal:
        journal.insert_payloads(0, [b"committed"] * 10, 1, 0.0)
        seq = 10
        refused = rf"journal {re.escape(str(path))}: transaction failed and was rolled back: .*full"
        with pytest.raises(JournalError, match=refused):
            while seq < 1_000_000:
                journal.insert_payloads(seq, [bytes(4000)] * 16, 1, 0.0)
                seq += 16
        failed_at = seq
        recovery = journal.recover()
        # Every insert before the failing one is there; nothing of the failing one is.
        assert recovery.messages[-1].seq == failed_at - 1
        assert len(recovery.messages) == failed_at
        # Making room lets the journal go on.
        assert journal.complete([(10, failed_at - 1)]) == failed_at - 10
        journal.insert_payloads(failed_at, [b"after"], 1, 0.0)
    with Journal.open(path) as journal:
        payloads = [m.payload for m in journal.recover().messages]
    assert payloads == [b"committed"] * 10 + [b"after"]


def test_a_read_only_file_system_is_a_clear_error_and_the_file_is_kept(tmpfs: Path) -> None:
    path = tmpfs / "j.db"
    with Journal.open(path) as journal:
        journal.insert_payloads(0, [b"keep"], 1, 0.0)
    before = path.read_bytes()
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    with pytest.raises(JournalError, match=rf"cannot open journal {re.escape(str(path))}: .*Read-only file system"):
        Journal.open(path)
    assert path.read_bytes() == before
