//! A mergeable, log-bucketed latency histogram with a bounded relative error.
//!
//! `buckets.rs` holds the algorithm (pure Rust, tested by `cargo test` in `tests.rs`); `py.rs` binds
//! it to Python as `sluiceway._core.LatencyHistogram`, which the engine's supervisor
//! (`InFlight.settle`) and workers count into directly.

pub mod buckets;
pub mod py;
#[cfg(test)]
mod tests;

pub use buckets::{HistogramError, InvalidLatency, LogHistogram, GAMMA, MIN_VALUE, RELATIVE_ERROR};
