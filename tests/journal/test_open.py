"""Opening a journal: exclusive ownership, refused files (kept untouched), bad directories, sync level."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sluiceway.journal import Journal, JournalError, JournalLocked


def test_sync_level_reads_back_from_sqlite(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "a.db") as journal:
        assert journal.synchronous() == "full"
    with Journal.open(tmp_path / "a.db", sync="normal") as journal:
        assert journal.synchronous() == "normal"


def test_an_unknown_sync_level_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sync must be 'full' or 'normal', got 'extra'"):
        Journal.open(tmp_path / "a.db", sync="extra")  # type: ignore[arg-type]


def test_a_second_journal_in_another_process_is_refused_naming_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    holder = textwrap.dedent(
        f"""
        import os, sys
        from sluiceway.journal import Journal
        journal = Journal.open({str(path)!r})
        print(os.getpid(), flush=True)
        sys.stdin.read()
        journal.close()
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None and child.stdin is not None
        pid = int(child.stdout.readline())
        with pytest.raises(JournalLocked, match=rf"{re.escape(str(path))}.*locked by pid {pid}\b"):
            Journal.open(path)
        child.stdin.close()
        assert child.wait(60) == 0
    # Released when its holder closed it.
    Journal.open(path).close()


def test_a_second_journal_in_the_same_process_is_refused(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "j.db"), pytest.raises(JournalLocked, match=rf"locked by pid {os.getpid()}\b"):
        Journal.open(tmp_path / "j.db")


def test_a_killed_holder_releases_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    code = f"import os; from sluiceway.journal import Journal; Journal.open({str(path)!r}); os.kill(os.getpid(), 9)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == -9
    Journal.open(path).close()


def test_a_file_that_is_not_sqlite_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    path.write_bytes(b"these are someone's notes, not a database\n" * 100)
    before = path.read_bytes()
    with pytest.raises(JournalError, match=rf"cannot open journal {re.escape(str(path))}: not a SQLite database"):
        Journal.open(path)
    assert path.read_bytes() == before


def test_a_corrupt_database_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal.open(path) as journal:
        journal.insert_payloads(0, [bytes([i]) * 200 for i in range(200)], 1, 0.0)
    data = bytearray(path.read_bytes())
    assert len(data) > 3 * 4096
    # Scribble over every page but the first (the header stays valid).
    for offset in range(4096, len(data), 4096):
        data[offset + 8 : offset + 200] = b"\xa5" * 192
    path.write_bytes(bytes(data))
    with pytest.raises(JournalError, match=rf"cannot open journal {re.escape(str(path))}: .*(integrity|malformed)"):
        Journal.open(path)
    assert path.read_bytes() == bytes(data)


def test_a_sqlite_database_of_something_else_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (name TEXT)")
    conn.close()
    with pytest.raises(JournalError, match="not a sluiceway journal"):
        Journal.open(path)


def test_a_journal_from_a_newer_sluiceway_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal.open(path) as journal:
        journal.insert_payloads(0, [b"keep me"], 1, 0.0)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = 99 WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(JournalError, match=r"schema version 99 is newer"):
        Journal.open(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT payload FROM messages").fetchall() == [(b"keep me",)]
    conn.close()


def test_a_directory_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(JournalError, match=rf"cannot create directory {re.escape(str(blocker))}"):
        Journal.open(blocker / "sub" / "j.db")


def test_a_missing_directory_is_created(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "new" / "deeper" / "j.db") as journal:
        journal.insert_payloads(0, [b"x"], 0, 0.0)
    assert (tmp_path / "new" / "deeper" / "j.db").exists()


def test_a_closed_journal_refuses_operations(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "j.db")
    journal.close()
    journal.close()
    assert journal.closed
    with pytest.raises(JournalError, match="is closed"):
        journal.stats()
