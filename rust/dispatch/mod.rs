//! The engine supervisor's and workers' per-message bookkeeping, one call per frame.
//!
//! `entry.rs` is one accepted message and its DISPATCH wire form (`msgpack.rs` writes
//! it and splits batches of payloads); `ledger.rs` binds the supervisor's hot path to
//! Python as `sluiceway._core.EntryQueue` (accepted messages by priority, popped
//! straight into DISPATCH frames) and `InFlight` (what each worker holds, settled an ack
//! frame at a time). `tally.rs` counts latencies into the log buckets of
//! `sluiceway.histogram.LatencyHistogram`; `py.rs` binds it as `AckSettler`; `inline.rs`
//! is `InlineRunner`, which runs a worker's whole DISPATCH frame of handlers that finish
//! without suspending in one call.

pub mod entry;
pub mod inline;
pub mod ledger;
pub mod msgpack;
pub mod py;
pub mod tally;

pub use tally::{InvalidLatency, Tally};
