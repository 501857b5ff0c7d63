//! The journal's data: its records, its operations and what they return.
//!
//! Plain Rust values with no SQL and no Python: `store` turns an `Op` into SQL and a
//! `Value`, `py.rs` turns a `Value` into Python objects.

use crate::dispatch::entry::Payload;

/// `PRAGMA synchronous` of the journal: what a reported commit survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sync {
    /// Survives power loss (the WAL is fsynced at every commit).
    Full,
    /// Survives a process crash; the last commits before a power loss may be lost.
    Normal,
}

impl Sync {
    pub fn parse(text: &str) -> Option<Sync> {
        match text {
            "full" => Some(Sync::Full),
            "normal" => Some(Sync::Normal),
            _ => None,
        }
    }
}

/// An inclusive run of seqs `first..=last`.
pub type Run = (u64, u64);

/// One accepted, unfinished message.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub seq: u64,
    pub priority: u32,
    pub enqueued_at: f64,
    pub ordering_key: Option<String>,
    pub attempt: u32,
    /// Handed to a worker and not finished: after a crash, a suspect.
    pub dispatched: bool,
    pub not_before: Option<f64>,
    pub payload: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetter {
    pub id: i64,
    pub seq: u64,
    pub priority: u32,
    pub enqueued_at: f64,
    pub ordering_key: Option<String>,
    pub payload: Vec<u8>,
    pub attempts: u32,
    pub reason: String,
    pub error: String,
    pub traceback: String,
    pub dead_at: f64,
}

/// Outbox states.
pub const PENDING: i64 = 0;
pub const SENDING: i64 = 1;
pub const SENT: i64 = 2;

#[derive(Clone, Debug, PartialEq)]
pub struct OutboxItem {
    pub id: i64,
    pub recipient: String,
    pub body: Vec<u8>,
    pub inbound_wamid: Option<String>,
    pub inbound_seq: Option<u64>,
    /// `PENDING`, `SENDING` or `SENT`.
    pub state: i64,
    pub sent_wamid: Option<String>,
    /// Times it went on the wire again while its previous send's outcome was unknown.
    pub resends: u32,
    pub created_at: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SenderDeadLetter {
    pub id: i64,
    pub recipient: String,
    pub body: Vec<u8>,
    pub inbound_wamid: Option<String>,
    pub inbound_seq: Option<u64>,
    pub attempts: u32,
    pub reason: String,
    pub error: String,
    pub failed_at: f64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub db_bytes: u64,
    pub wal_bytes: u64,
    pub pending: u64,
    pub dispatched: u64,
    pub dead_letters: u64,
    pub dedup: u64,
    pub outbox: u64,
    pub outbox_uncertain: u64,
    pub sender_dead_letters: u64,
    pub uncertain_resends: u64,
    pub next_seq: u64,
    /// Transactions committed since the journal was opened (group commit: usually far
    /// fewer than operations).
    pub transactions: u64,
}

/// What a restart finds: every unfinished message in seq order.
#[derive(Clone, Debug, PartialEq)]
pub struct Recovery {
    pub messages: Vec<Message>,
    /// One above the highest seq ever journaled: where the engine's seqs continue.
    pub next_seq: u64,
}

/// One operation; `Store::apply` says what each returns.
#[derive(Debug)]
pub enum Op {
    /// Messages `first_seq..first_seq + payloads.len()`, all with one priority and key. -> None
    Insert {
        first_seq: u64,
        priority: u32,
        enqueued_at: f64,
        ordering_key: Option<String>,
        payloads: Vec<Payload>,
    },
    /// attempt += 1, dispatched = 1. -> Int(rows changed)
    Dispatch(Vec<Run>),
    /// Delete the finished messages. -> Int(rows deleted)
    Complete(Vec<Run>),
    /// dispatched = 0 (back in the queue, attempt kept). -> Int(rows changed)
    Requeue(Vec<Run>),
    /// `(seq, attempt, not_before)`: waits for a retry, not dispatched. -> Int(rows changed)
    Retry(Vec<(u64, u32, f64)>),
    /// Move a message to the dead letters. -> Int(dead letter id)
    DeadLetter {
        seq: u64,
        reason: String,
        error: String,
        traceback: String,
        now: f64,
    },
    /// -> DeadLetters, oldest first
    ListDeadLetters { limit: Option<u64> },
    /// Move dead letters (all, or `ids`) back into `messages` with new seqs from
    /// `first_seq` (default: `next_seq`), attempt 0. -> Messages (the new rows)
    ReplayDeadLetters {
        ids: Option<Vec<i64>>,
        first_seq: Option<u64>,
    },
    /// -> Int(rows deleted)
    PurgeDeadLetters { ids: Option<Vec<i64>> },
    /// Record `wamid` and insert its message in one go, unless `wamid` was seen. -> Bool(duplicate)
    AcceptWebhook {
        wamid: String,
        message: Message,
        now: f64,
    },
    /// Forget wamids seen before `now - dedup_window` and sent outbox rows as old, at most
    /// `limit` of each. -> Int(rows deleted)
    Expire { now: f64, limit: u64 },
    /// -> Int(outbox id)
    OutboxAdd {
        recipient: String,
        body: Vec<u8>,
        inbound_wamid: Option<String>,
        inbound_seq: Option<u64>,
        now: f64,
    },
    /// The reply goes on the wire; one already `sending` counts as an uncertain resend. -> None
    OutboxSending { id: i64, now: f64 },
    /// -> None
    OutboxSent { id: i64, wamid: String, now: f64 },
    /// A status webhook for `wamid`: its sent row is finished. -> Bool(found)
    OutboxStatus { wamid: String },
    /// -> Outbox (pending and sending, oldest first)
    OutboxUnsent,
    /// Move an outbox row to the sender's dead letters. -> Int(dead letter id)
    OutboxFail {
        id: i64,
        reason: String,
        error: String,
        attempts: u32,
        now: f64,
    },
    /// -> SenderDeadLetters
    ListSenderDeadLetters { limit: Option<u64> },
    /// Move sender dead letters back to the outbox as pending. -> Outbox (the new rows)
    ReplaySenderDeadLetters { ids: Option<Vec<i64>>, now: f64 },
    /// -> Int(rows deleted)
    PurgeSenderDeadLetters { ids: Option<Vec<i64>> },
    /// -> Recovery
    Recover,
    /// -> Stats
    Stats,
    /// -> Text (what SQLite reports: "full" or "normal")
    Synchronous,
}

#[derive(Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Text(String),
    Messages(Vec<Message>),
    DeadLetters(Vec<DeadLetter>),
    Outbox(Vec<OutboxItem>),
    SenderDeadLetters(Vec<SenderDeadLetter>),
    Recovery(Recovery),
    Stats(Stats),
}
