//! The journal's operations on an open connection, one transaction's worth at a time.
//!
//! `Store` knows nothing about threads: `writer.rs` calls `begin`, `apply` for each
//! queued operation and `commit` (or `rollback`). An operation that does not fit the
//! journal's contents (an unknown id, a reused seq) is checked before it writes, so it
//! fails alone with `JournalError::Invalid` and the rest of its transaction goes on.

mod outbox;

use std::path::PathBuf;

use rusqlite::{params, Connection, Row};

use super::error::JournalError;
use super::lock::LockFile;
use super::schema;
use super::types::{DeadLetter, Message, Op, Recovery, Run, Stats, Sync, Value};
use crate::dispatch::entry::Payload;

pub struct Options {
    pub sync: Sync,
    /// Seconds a wamid is remembered.
    pub dedup_window: f64,
    /// Most wamids remembered; the oldest go first.
    pub dedup_max_entries: u64,
}

/// An open journal file and its lock.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    display: String,
    options: Options,
    next_seq: u64,
    next_seq_stored: u64,
    dedup_count: u64,
    transactions: u64,
    _lock: LockFile,
}

const INSERT_MESSAGE: &str = "INSERT INTO messages \
     (seq, priority, enqueued_at, ordering_key, attempt, dispatched, not_before, payload) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
const MESSAGE_COLUMNS: &str =
    "seq, priority, enqueued_at, ordering_key, attempt, dispatched, not_before, payload";
const DEAD_LETTER_COLUMNS: &str =
    "id, seq, priority, enqueued_at, ordering_key, payload, attempts, \
     reason, error, traceback, dead_at";
fn message_from(row: &Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        seq: row.get(0)?,
        priority: row.get(1)?,
        enqueued_at: row.get(2)?,
        ordering_key: row.get(3)?,
        attempt: row.get(4)?,
        dispatched: row.get(5)?,
        not_before: row.get(6)?,
        payload: row.get(7)?,
    })
}

fn dead_letter_from(row: &Row<'_>) -> rusqlite::Result<DeadLetter> {
    Ok(DeadLetter {
        id: row.get(0)?,
        seq: row.get(1)?,
        priority: row.get(2)?,
        enqueued_at: row.get(3)?,
        ordering_key: row.get(4)?,
        payload: row.get(5)?,
        attempts: row.get(6)?,
        reason: row.get(7)?,
        error: row.get(8)?,
        traceback: row.get(9)?,
        dead_at: row.get(10)?,
    })
}

fn check_runs(runs: &[Run]) -> Result<(), JournalError> {
    match runs.iter().find(|(first, last)| first > last) {
        Some((first, last)) => Err(JournalError::Invalid(format!(
            "a seq run must have first <= last, got ({first}, {last})"
        ))),
        None => Ok(()),
    }
}

/// `WHERE` clause and limit for "all" or "these ids".
pub(super) fn id_filter(ids: &Option<Vec<i64>>) -> String {
    match ids {
        None => String::new(),
        Some(ids) => {
            let list: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
            format!(" WHERE id IN ({})", list.join(","))
        }
    }
}

pub(super) fn limit_clause(limit: Option<u64>) -> String {
    limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default()
}

impl Store {
    /// Open (creating if needed) the journal at `path`: lock it, check it, upgrade it.
    /// Never deletes or overwrites a file it refuses.
    pub fn open(path: &str, options: Options) -> Result<Store, JournalError> {
        let refuse = |reason: String| JournalError::Open {
            path: path.to_string(),
            reason,
        };
        let file = PathBuf::from(path);
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| refuse(format!("cannot create directory {}: {e}", dir.display())))?;
        }
        let lock = LockFile::acquire(path)?;
        create_private(&file).map_err(|e| refuse(format!("cannot create it: {e}")))?;
        schema::check_header(&file).map_err(refuse)?;
        let mut conn = Connection::open(&file).map_err(|e| refuse(e.to_string()))?;
        let sync_pragma = match options.sync {
            Sync::Full => "FULL",
            Sync::Normal => "NORMAL",
        };
        // Exclusive locking: no shared-memory index, and nobody else reads a journal
        // mid-write (our own lock file already keeps other processes out).
        conn.execute_batch(&format!(
            "PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = WAL; \
             PRAGMA synchronous = {sync_pragma}; PRAGMA wal_autocheckpoint = 1000; \
             PRAGMA journal_size_limit = 67108864;"
        ))
        .map_err(|e| refuse(e.to_string()))?;
        schema::quick_check(&conn).map_err(refuse)?;
        schema::prepare(&mut conn).map_err(refuse)?;
        let next_seq: u64 = conn
            .query_row("SELECT value FROM meta WHERE key = 'next_seq'", [], |row| {
                row.get(0)
            })
            .map_err(|e| refuse(e.to_string()))?;
        let dedup_count: u64 = conn
            .query_row("SELECT count(*) FROM dedup", [], |row| row.get(0))
            .map_err(|e| refuse(e.to_string()))?;
        Ok(Store {
            conn,
            display: path.to_string(),
            path: file,
            options,
            next_seq,
            next_seq_stored: next_seq,
            dedup_count,
            transactions: 0,
            _lock: lock,
        })
    }

    pub fn path(&self) -> &str {
        &self.display
    }

    fn storage(&self, e: rusqlite::Error) -> JournalError {
        JournalError::Storage {
            path: self.display.clone(),
            reason: e.to_string(),
        }
    }

    pub fn begin(&mut self) -> Result<(), JournalError> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.storage(e))
    }

    pub fn commit(&mut self) -> Result<(), JournalError> {
        if self.next_seq != self.next_seq_stored {
            if let Err(e) = self
                .conn
                .prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'next_seq'")
                .and_then(|mut s| s.execute([self.next_seq]))
            {
                return Err(self.storage(e));
            }
        }
        self.conn
            .execute_batch("COMMIT")
            .map_err(|e| self.storage(e))?;
        self.next_seq_stored = self.next_seq;
        self.transactions += 1;
        Ok(())
    }

    /// Undo the open transaction and the in-memory counters it moved.
    pub fn rollback(&mut self) {
        // Fails only if SQLite already rolled back (it does on some I/O errors).
        let _ = self.conn.execute_batch("ROLLBACK");
        self.next_seq = self.next_seq_stored;
        self.dedup_count = self
            .conn
            .query_row("SELECT count(*) FROM dedup", [], |row| row.get(0))
            .unwrap_or(self.dedup_count);
    }

    /// One operation inside the open transaction. `Err(Invalid)` leaves the database
    /// as it was; any other `Err` means the transaction must be rolled back.
    pub fn apply(&mut self, op: Op) -> Result<Value, JournalError> {
        self.run(op).map_err(|e| match e {
            Failure::Invalid(reason) => JournalError::Invalid(reason),
            Failure::Sql(e) => self.storage(e),
        })
    }

    fn run(&mut self, op: Op) -> Result<Value, Failure> {
        match op {
            Op::Insert { first_seq, priority, enqueued_at, ordering_key, payloads } => {
                self.insert(first_seq, priority, enqueued_at, ordering_key.as_deref(), &payloads)?;
                Ok(Value::None)
            }
            Op::Dispatch(runs) => self.runs(
                "UPDATE messages SET attempt = attempt + 1, dispatched = 1 WHERE seq BETWEEN ?1 AND ?2",
                &runs,
            ),
            Op::Complete(runs) => self.runs("DELETE FROM messages WHERE seq BETWEEN ?1 AND ?2", &runs),
            Op::Requeue(runs) => {
                self.runs("UPDATE messages SET dispatched = 0 WHERE seq BETWEEN ?1 AND ?2", &runs)
            }
            Op::Retry(items) => {
                let mut stmt = self.conn.prepare_cached(
                    "UPDATE messages SET attempt = ?2, not_before = ?3, dispatched = 0 WHERE seq = ?1",
                )?;
                let mut changed = 0;
                for (seq, attempt, not_before) in items {
                    changed += stmt.execute(params![seq, attempt, not_before])?;
                }
                Ok(Value::Int(changed as i64))
            }
            Op::DeadLetter { seq, reason, error, traceback, now } => {
                let moved = self.conn.prepare_cached(
                    "INSERT INTO dead_letters (seq, priority, enqueued_at, ordering_key, payload, attempts, \
                     reason, error, traceback, dead_at) \
                     SELECT seq, priority, enqueued_at, ordering_key, payload, attempt, ?2, ?3, ?4, ?5 \
                     FROM messages WHERE seq = ?1",
                )?
                .execute(params![seq, reason, error, traceback, now])?;
                if moved == 0 {
                    return Err(Failure::Invalid(format!("no journaled message has seq {seq}")));
                }
                let id = self.conn.last_insert_rowid();
                self.conn.prepare_cached("DELETE FROM messages WHERE seq = ?1")?.execute([seq])?;
                Ok(Value::Int(id))
            }
            Op::ListDeadLetters { limit } => Ok(Value::DeadLetters(self.dead_letters(&None, limit)?)),
            Op::ReplayDeadLetters { ids, first_seq } => self.replay_dead_letters(ids, first_seq),
            Op::PurgeDeadLetters { ids } => {
                let n = self.conn.execute(&format!("DELETE FROM dead_letters{}", id_filter(&ids)), [])?;
                Ok(Value::Int(n as i64))
            }
            Op::AcceptWebhook { wamid, message, now } => self.accept_webhook(&wamid, message, now),
            Op::Expire { now, limit } => self.expire(now, limit),
            op @ (Op::OutboxAdd { .. }
            | Op::OutboxSending { .. }
            | Op::OutboxSent { .. }
            | Op::OutboxStatus { .. }
            | Op::OutboxUnsent
            | Op::OutboxFail { .. }
            | Op::ListSenderDeadLetters { .. }
            | Op::ReplaySenderDeadLetters { .. }
            | Op::PurgeSenderDeadLetters { .. }) => self.run_outbox(op),
            Op::Recover => {
                let mut stmt = self
                    .conn
                    .prepare(&format!("SELECT {MESSAGE_COLUMNS} FROM messages ORDER BY seq"))?;
                let messages = stmt.query_map([], message_from)?.collect::<rusqlite::Result<_>>()?;
                Ok(Value::Recovery(Recovery { messages, next_seq: self.next_seq }))
            }
            Op::Stats => Ok(Value::Stats(self.stats()?)),
            Op::Synchronous => {
                let level: i64 = self.conn.query_row("PRAGMA synchronous", [], |row| row.get(0))?;
                let name = match level {
                    0 => "off",
                    1 => "normal",
                    2 => "full",
                    _ => "extra",
                };
                Ok(Value::Text(name.to_string()))
            }
        }
    }

    fn insert(
        &mut self,
        first_seq: u64,
        priority: u32,
        enqueued_at: f64,
        ordering_key: Option<&str>,
        payloads: &[Payload],
    ) -> Result<(), Failure> {
        if first_seq < self.next_seq {
            return Err(Failure::Invalid(format!(
                "seq {first_seq} was already journaled: seqs must rise (next free seq is {})",
                self.next_seq
            )));
        }
        let mut stmt = self.conn.prepare_cached(INSERT_MESSAGE)?;
        // The batch shares everything but seq and payload: bind those once.
        stmt.raw_bind_parameter(2, priority)?;
        stmt.raw_bind_parameter(3, enqueued_at)?;
        stmt.raw_bind_parameter(4, ordering_key)?;
        stmt.raw_bind_parameter(5, 0)?;
        stmt.raw_bind_parameter(6, 0)?;
        stmt.raw_bind_parameter(7, Option::<f64>::None)?;
        for (i, payload) in payloads.iter().enumerate() {
            stmt.raw_bind_parameter(1, first_seq + i as u64)?;
            stmt.raw_bind_parameter(8, payload.bytes())?;
            stmt.raw_execute()?;
        }
        self.next_seq = first_seq + payloads.len() as u64;
        Ok(())
    }

    fn runs(&mut self, sql: &str, runs: &[Run]) -> Result<Value, Failure> {
        check_runs(runs).map_err(|e| Failure::Invalid(e.to_string()))?;
        let mut stmt = self.conn.prepare_cached(sql)?;
        let mut changed = 0;
        for (first, last) in runs {
            changed += stmt.execute([first, last])?;
        }
        Ok(Value::Int(changed as i64))
    }

    fn dead_letters(
        &self,
        ids: &Option<Vec<i64>>,
        limit: Option<u64>,
    ) -> Result<Vec<DeadLetter>, Failure> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters{} ORDER BY id{}",
            id_filter(ids),
            limit_clause(limit)
        ))?;
        let rows = stmt
            .query_map([], dead_letter_from)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    fn replay_dead_letters(
        &mut self,
        ids: Option<Vec<i64>>,
        first_seq: Option<u64>,
    ) -> Result<Value, Failure> {
        let first_seq = first_seq.unwrap_or(self.next_seq);
        if first_seq < self.next_seq {
            return Err(Failure::Invalid(format!(
                "seq {first_seq} was already journaled: seqs must rise (next free seq is {})",
                self.next_seq
            )));
        }
        let dead = self.dead_letters(&ids, None)?;
        check_found(&ids, dead.iter().map(|d| d.id), "dead letter")?;
        let mut replayed = Vec::with_capacity(dead.len());
        for (i, d) in dead.into_iter().enumerate() {
            let message = Message {
                seq: first_seq + i as u64,
                priority: d.priority,
                enqueued_at: d.enqueued_at,
                ordering_key: d.ordering_key,
                attempt: 0,
                dispatched: false,
                not_before: None,
                payload: d.payload,
            };
            self.insert_message(&message)?;
            self.conn
                .prepare_cached("DELETE FROM dead_letters WHERE id = ?1")?
                .execute([d.id])?;
            replayed.push(message);
        }
        self.next_seq = self.next_seq.max(first_seq + replayed.len() as u64);
        Ok(Value::Messages(replayed))
    }

    fn insert_message(&self, m: &Message) -> rusqlite::Result<()> {
        self.conn.prepare_cached(INSERT_MESSAGE)?.execute(params![
            m.seq,
            m.priority,
            m.enqueued_at,
            m.ordering_key,
            m.attempt,
            m.dispatched,
            m.not_before,
            m.payload
        ])?;
        Ok(())
    }

    fn accept_webhook(
        &mut self,
        wamid: &str,
        message: Message,
        now: f64,
    ) -> Result<Value, Failure> {
        // A duplicate is reported as one whatever its seq: the caller may reuse the seq.
        let seen = self
            .conn
            .prepare_cached("SELECT 1 FROM dedup WHERE wamid = ?1")?
            .exists([wamid])?;
        if seen {
            return Ok(Value::Bool(true));
        }
        if message.seq < self.next_seq {
            return Err(Failure::Invalid(format!(
                "seq {} was already journaled: seqs must rise (next free seq is {})",
                message.seq, self.next_seq
            )));
        }
        self.conn
            .prepare_cached("INSERT INTO dedup (wamid, seen_at) VALUES (?1, ?2)")?
            .execute(params![wamid, now])?;
        self.insert_message(&message)?;
        self.next_seq = message.seq + 1;
        self.dedup_count += 1;
        if self.dedup_count > self.options.dedup_max_entries {
            let excess = self.dedup_count - self.options.dedup_max_entries;
            let n = self
                .conn
                .prepare_cached(
                    "DELETE FROM dedup WHERE rowid IN (SELECT rowid FROM dedup ORDER BY seen_at LIMIT ?1)",
                )?
                .execute([excess])?;
            self.dedup_count -= n as u64;
        }
        Ok(Value::Bool(false))
    }

    fn expire(&mut self, now: f64, limit: u64) -> Result<Value, Failure> {
        let before = now - self.options.dedup_window;
        let wamids = self
            .conn
            .prepare_cached(
                "DELETE FROM dedup WHERE rowid IN (SELECT rowid FROM dedup WHERE seen_at < ?1 LIMIT ?2)",
            )?
            .execute(params![before, limit])?;
        self.dedup_count -= wamids as u64;
        // A sent reply waits for its status webhook no longer than a wamid is remembered.
        let sent = self
            .conn
            .prepare_cached(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE state = 2 AND updated_at < ?1 LIMIT ?2)",
            )?
            .execute(params![before, limit])?;
        Ok(Value::Int((wamids + sent) as i64))
    }

    pub fn stats(&self) -> rusqlite::Result<Stats> {
        let count =
            |sql: &str| -> rusqlite::Result<u64> { self.conn.query_row(sql, [], |row| row.get(0)) };
        let size = |suffix: &str| {
            let mut name = self.path.clone().into_os_string();
            name.push(suffix);
            std::fs::metadata(name).map(|m| m.len()).unwrap_or(0)
        };
        Ok(Stats {
            db_bytes: size(""),
            wal_bytes: size("-wal"),
            pending: count("SELECT count(*) FROM messages")?,
            dispatched: count("SELECT count(*) FROM messages WHERE dispatched = 1")?,
            dead_letters: count("SELECT count(*) FROM dead_letters")?,
            dedup: self.dedup_count,
            outbox: count("SELECT count(*) FROM outbox")?,
            outbox_uncertain: count("SELECT count(*) FROM outbox WHERE state = 1")?,
            sender_dead_letters: count("SELECT count(*) FROM sender_dead_letters")?,
            uncertain_resends: count("SELECT value FROM meta WHERE key = 'uncertain_resends'")?,
            next_seq: self.next_seq,
            transactions: self.transactions,
        })
    }

    /// Checkpoint the WAL into the database and truncate it; give free pages back when
    /// over a quarter of the file is free. Run when the writer is idle.
    pub fn tidy(&mut self) -> Result<(), JournalError> {
        let run = || -> rusqlite::Result<()> {
            let free: i64 = self
                .conn
                .query_row("PRAGMA freelist_count", [], |row| row.get(0))?;
            let pages: i64 = self
                .conn
                .query_row("PRAGMA page_count", [], |row| row.get(0))?;
            if free > 0 && free * 4 > pages {
                self.conn.execute_batch("PRAGMA incremental_vacuum")?;
            }
            self.conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            Ok(())
        };
        run().map_err(|e| self.storage(e))
    }
}

/// Create `file` empty, readable by its owner only, unless it exists: it will hold message
/// payloads, and SQLite gives its WAL the database file's permissions.
fn create_private(file: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
    {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// `Invalid` naming the first of `ids` not among `found`.
pub(super) fn check_found(
    ids: &Option<Vec<i64>>,
    found: impl Iterator<Item = i64>,
    what: &str,
) -> Result<(), Failure> {
    if let Some(ids) = ids {
        let found: std::collections::HashSet<i64> = found.collect();
        if let Some(missing) = ids.iter().find(|id| !found.contains(id)) {
            return Err(Failure::Invalid(format!("no {what} has id {missing}")));
        }
    }
    Ok(())
}

pub(super) enum Failure {
    Invalid(String),
    Sql(rusqlite::Error),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Sql(e)
    }
}
