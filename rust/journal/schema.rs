//! The journal's tables, the checks a file passes before it is used, and the migrations.
//!
//! A new file gets the version 1 tables and then every step, so a new and an upgraded
//! file never differ. An older file is upgraded one step at a time by `MIGRATIONS[v - 1]`
//! (from version `v` to `v + 1`), all in the same transaction as the `schema_version`
//! bump, so a failed or interrupted upgrade leaves the old version intact. A newer file is
//! refused: this build cannot know its meaning.

use rusqlite::{Connection, OptionalExtension, Transaction};

/// One upgrade step: from version `i + 1` to `i + 2` for `MIGRATIONS[i]`.
pub type Migration = fn(&Transaction<'_>) -> rusqlite::Result<()>;

/// Empty while version 1 is the only one; a v2 adds its step here.
pub const MIGRATIONS: &[Migration] = &[];

/// The schema this build writes: version 1 and one per step.
pub const CURRENT_VERSION: i64 = 1 + MIGRATIONS.len() as i64;

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
    dead_at REAL NOT NULL
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
    prepare_with(conn, MIGRATIONS)
}

/// `prepare` with the given steps (tests use steps of their own).
pub fn prepare_with(conn: &mut Connection, migrations: &[Migration]) -> Result<(), Refusal> {
    let current = 1 + migrations.len() as i64;
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
            migrate(&tx, 1, migrations)?;
            tx.commit().map_err(sql)
        }
        Some(v) if v > current => Err(format!(
            "schema version {v} is newer than this sluiceway understands ({current}); \
             upgrade sluiceway to open it"
        )),
        Some(v) if v < 1 => Err(format!("invalid schema version {v}")),
        Some(v) => {
            let tx = conn.transaction().map_err(sql)?;
            migrate(&tx, v, migrations)?;
            tx.commit().map_err(sql)
        }
    }
}

/// Apply the steps from version `from` on and record the version they reach.
fn migrate(tx: &Transaction<'_>, from: i64, migrations: &[Migration]) -> Result<(), Refusal> {
    let current = 1 + migrations.len() as i64;
    for version in from..current {
        migrations[(version - 1) as usize](tx)
            .map_err(|e| format!("upgrade from schema version {version} failed: {e}"))?;
    }
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?1)",
        [current],
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

#[cfg(test)]
mod tests {
    use super::*;

    fn add_priority_index(tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch("CREATE INDEX messages_priority ON messages (priority)")
    }

    fn broken_step(tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch("CREATE TABLE half_done (x); SELECT * FROM no_such_table")
    }

    fn v1_file() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        prepare(&mut conn).unwrap();
        conn.execute(
            "INSERT INTO messages VALUES (7, 1, 0.0, NULL, 0, 0, NULL, x'80')",
            [],
        )
        .unwrap();
        conn
    }

    fn has(conn: &Connection, name: &str) -> bool {
        conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE name = ?1",
            [name],
            |row| row.get(0),
        )
        .unwrap()
    }

    #[test]
    fn a_v1_file_is_upgraded_step_by_step_keeping_its_rows() {
        let mut conn = v1_file();
        prepare_with(&mut conn, &[add_priority_index]).unwrap();
        assert_eq!(stored_version(&conn).unwrap(), Some(2));
        assert!(has(&conn, "messages_priority"));
        let seq: i64 = conn
            .query_row("SELECT seq FROM messages", [], |row| row.get(0))
            .unwrap();
        assert_eq!(seq, 7);
        // Reopening the same build changes nothing; an older build refuses the file.
        prepare_with(&mut conn, &[add_priority_index]).unwrap();
        let refusal = prepare(&mut conn).unwrap_err();
        assert!(refusal.contains("schema version 2 is newer"), "{refusal}");
    }

    #[test]
    fn a_failed_step_leaves_the_file_at_its_old_version() {
        let mut conn = v1_file();
        let refusal = prepare_with(&mut conn, &[add_priority_index, broken_step]).unwrap_err();
        assert!(
            refusal.contains("upgrade from schema version 2 failed"),
            "{refusal}"
        );
        assert_eq!(stored_version(&conn).unwrap(), Some(1));
        assert!(!has(&conn, "messages_priority") && !has(&conn, "half_done"));
    }

    #[test]
    fn a_new_file_gets_every_step() {
        let mut conn = Connection::open_in_memory().unwrap();
        prepare_with(&mut conn, &[add_priority_index]).unwrap();
        assert_eq!(stored_version(&conn).unwrap(), Some(2));
        assert!(has(&conn, "messages_priority"));
    }
}
