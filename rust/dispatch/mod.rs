//! The engine supervisor's and workers' per-message bookkeeping, one call per frame.
//!
//! `tally.rs` holds the algorithm (pure Rust: counting latencies into the log buckets of
//! `sluiceway.histogram.LatencyHistogram`); `py.rs` binds it to Python as
//! `sluiceway._core.AckSettler`, which settles a whole ack frame (pops the acknowledged
//! messages from a worker's in-flight map and counts their latencies) in one call;
//! `inline.rs` is `sluiceway._core.InlineRunner`, which runs a worker's whole DISPATCH
//! frame of handlers that finish without suspending in one call.

pub mod inline;
pub mod py;
pub mod tally;

pub use tally::{InvalidLatency, Tally};
