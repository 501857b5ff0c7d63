//! The engine supervisor's per-message bookkeeping, one call per frame.
//!
//! `entry.rs` is one accepted message and its DISPATCH wire form (`msgpack.rs` writes
//! it and splits batches of payloads); `ledger.rs` binds the supervisor's hot path to
//! Python as `sluiceway._core.EntryQueue` (accepted messages by priority, popped
//! straight into DISPATCH frames) and `InFlight` (what each worker holds, settled an ack
//! frame at a time, its ack latencies counted straight into a `LatencyHistogram`).

pub mod entry;
pub mod ledger;
pub mod msgpack;
