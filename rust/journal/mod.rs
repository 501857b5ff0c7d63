//! The durable journal: one node's accepted messages, de-dup set, dead letters and
//! outbox in one SQLite file, so a `kill -9` loses nothing that was reported committed.
//!
//! # Schema (version 1; `schema.rs` holds the SQL and the migration steps)
//!
//! - `meta(key, value)`: `schema_version`, `next_seq` (one above the highest seq ever
//!   journaled, so seqs stay unique across restarts) and `uncertain_resends`.
//! - `messages(seq PK, priority, enqueued_at, ordering_key, attempt, dispatched, not_before,
//!   payload)`: every accepted message not yet finished. A completed message's row is
//!   deleted; `dispatched = 1` marks one handed to a worker (a crash suspect after a
//!   restart) and `attempt` counts hand-overs, not failures.
//! - `dead_letters`, `sender_dead_letters`: failed messages and failed replies, kept
//!   until replayed or purged.
//! - `dedup(wamid, seen_at)`: inbound webhook ids, expired by age and bounded in count.
//! - `outbox(id, recipient, body, inbound_wamid, inbound_seq, state, sent_wamid, ...)`: a
//!   reply from `pending` to `sending` (on the wire) to `sent`; a row found in `sending`
//!   after a restart is uncertain (it may or may not have reached WhatsApp).
//!
//! # Group commit (`writer.rs`)
//!
//! One writer thread owns the connection. Callers submit operations, each getting a
//! ticket (increasing); the writer takes everything queued (up to `max_batch_ops`) into
//! ONE transaction and one fsync, then publishes "committed up to ticket T" with each
//! operation's result, wakes sync waiters and writes a byte to a pipe an event loop
//! watches. If the transaction fails (disk full, I/O error) it is rolled back and every
//! ticket of it gets the error: nothing is ever reported committed that was not.
//!
//! # Durability
//!
//! WAL mode. `synchronous = FULL` (default): a reported commit survives a process crash
//! and power loss. `NORMAL`: it survives a process crash (`kill -9`); the last commits
//! before a power loss may be lost (the WAL is synced at checkpoints only). The file is
//! locked exclusively (`<path>.lock`, `flock`, holding the owner's pid) and SQLite's own
//! locking mode is EXCLUSIVE, so one process owns a journal at a time.
//!
//! The database is created readable by its owner only (0600; its WAL inherits that):
//! it holds message payloads.
//!
//! # Modules
//!
//! `types.rs` the records and operations; `schema.rs` the tables, the open-time checks
//! and the migrations; `store/` the operations as SQL on one connection (`outbox.rs` the
//! replies' side); `writer.rs` the group-commit thread; `lock.rs` the lock file;
//! `py.rs` the Python binding.
//!
//! # Size
//!
//! Finished rows are deleted. SQLite checkpoints the WAL (PASSIVE) every
//! `wal_autocheckpoint` pages; after `idle_interval` with nothing to do the writer runs
//! `wal_checkpoint(TRUNCATE)` and, when over a quarter of the file's pages are free,
//! `incremental_vacuum` (the database is created with `auto_vacuum = INCREMENTAL`), so
//! the file stays bounded under steady load and shrinks when idle.

pub mod error;
pub mod lock;
pub mod py;
pub mod schema;
pub mod store;
pub mod types;
pub mod writer;

pub use error::JournalError;
pub use store::Store;
pub use types::{Op, Sync, Value};
pub use writer::{Journal, JournalOptions};

#[cfg(test)]
mod tests;
