//! The journal's tables, the checks a file passes before it is used, and the migrations.
//!
//! A new file is created at `CURRENT_VERSION` directly. An older file is upgraded one
//! step at a time by `MIGRATIONS[v - 1]` (from version `v` to `v + 1`), each step in the
//! same transaction as the `schema_version` bump, so an interrupted upgrade leaves the
//! old version intact. A newer file is refused: this build cannot know its meaning.

use rusqlite::{Connection, OptionalExtension, Transaction};

/// The schema this build writes.
pub const CURRENT_VERSION: i64 = 1;

/// One upgrade step: from version `i + 1` to `i + 2` for `MIGRATIONS[i]`.
pub type Migration = fn(&Transaction<'_>) -> rusqlite::Result<()>;

/// Empty while version 1 is the only one; a v2 adds its step here.
pub const MIGRATIONS: &[Migration] = &[];

const SCHEMA_V1: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE messages (
    seq INTEGER PRIMARY KEY,
    priority INTEGER NOT NULL,
    enqueued_at REAL NOT NULL,
    ordering_key TEXT,
    attempt INTEGER NOT NULL,
    dispatched INTEGER NOT NULL,
    not_before REAL,
    payload BLOB NOT NULL
);
CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    enqueued_at REAL NOT NULL,
    ordering_key TEXT,
    payload BLOB NOT NULL,
    attempts INTEGER NOT NULL,
    reason TEXT NOT NULL,
    error TEXT NOT NULL,
    traceback TEXT NOT NULL,
    failed_at REAL NOT NULL
);
CREATE TABLE dedup (wamid TEXT PRIMARY KEY, seen_at REAL NOT NULL);
CREATE INDEX dedup_seen_at ON dedup (seen_at);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient TEXT NOT NULL,
    body BLOB NOT NULL,
    inbound_wamid TEXT,
    inbound_seq INTEGER,
    state INTEGER NOT NULL,
    sent_wamid TEXT,
    resends INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX outbox_sent_wamid ON outbox (sent_wamid) WHERE sent_wamid IS NOT NULL;
CREATE TABLE sender_dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient TEXT NOT NULL,
    body BLOB NOT NULL,
    inbound_wamid TEXT,
    inbound_seq INTEGER,
    attempts INTEGER NOT NULL,
    reason TEXT NOT NULL,
    error TEXT NOT NULL,
    failed_at REAL NOT NULL
);
INSERT INTO meta (key, value) VALUES ('next_seq', 0), ('uncertain_resends', 0);
";

/// What is wrong with a file that must not be used (the caller adds the path).
pub type Refusal = String;

/// The file's schema version, or None for a database without a `meta` table (new).
pub fn stored_version(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    let has_meta: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
        [],
        |row| row.get(0),
    )?;
    if !has_meta {
        return Ok(None);
    }
    conn.query_row(
        "SELECT value FROM meta WHERE key = 'schema_version'",
        [],
        |row| row.get(0),
    )
    .optional()
}

/// Create the tables of a new journal, or upgrade an older one; refuse a newer one.
pub fn prepare(conn: &mut Connection) -> Result<(), Refusal> {
    let sql = |e: rusqlite::Error| e.to_string();
    let version = stored_version(conn).map_err(sql)?;
    match version {
        None => {
            let tables: i64 = conn
                .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
                .map_err(sql)?;
            if tables > 0 {
                return Err(
                    "a SQLite database that is not a sluiceway journal (no meta table)".into(),
                );
            }
            // auto_vacuum must be chosen before the first table exists.
            conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL")
                .map_err(sql)?;
            let tx = conn.transaction().map_err(sql)?;
            tx.execute_batch(SCHEMA_V1).map_err(sql)?;
            migrate(&tx, 1)?;
            tx.commit().map_err(sql)
        }
        Some(v) if v > CURRENT_VERSION => Err(format!(
            "schema version {v} is newer than this sluiceway understands ({CURRENT_VERSION}); \
             upgrade sluiceway to open it"
        )),
        Some(v) if v < 1 => Err(format!("invalid schema version {v}")),
        Some(v) => {
            let tx = conn.transaction().map_err(sql)?;
            migrate(&tx, v)?;
            tx.commit().map_err(sql)
        }
    }
}

/// Apply the steps from `from` up to `CURRENT_VERSION` and record the version.
fn migrate(tx: &Transaction<'_>, from: i64) -> Result<(), Refusal> {
    for version in from..CURRENT_VERSION {
        MIGRATIONS[(version - 1) as usize](tx)
            .map_err(|e| format!("upgrade from schema version {version} failed: {e}"))?;
    }
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?1)",
        [CURRENT_VERSION],
    )
    .map_err(|e| e.to_string())?;
    Ok(())
}

/// `Err` unless the file is empty or starts with SQLite's header.
pub fn check_header(path: &std::path::Path) -> Result<(), Refusal> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    let mut header = [0u8; 16];
    let mut read = 0;
    while read < header.len() {
        match file.read(&mut header[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => return Err(format!("cannot read it: {e}")),
        }
    }
    if read == 0 || &header[..read] == b"SQLite format 3\0" {
        Ok(())
    } else {
        Err("not a SQLite database (bad header)".into())
    }
}

/// `Err` unless `PRAGMA quick_check` reports ok.
pub fn quick_check(conn: &Connection) -> Result<(), Refusal> {
    let result: String = conn
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(|e| format!("integrity check failed: {e}"))?;
    if result == "ok" {
        Ok(())
    } else {
        Err(format!("integrity check failed: {result}"))
    }
}
