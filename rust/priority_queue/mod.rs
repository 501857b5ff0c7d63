//! A multi-level FIFO priority queue with optional anti-starvation.
//!
//! `levels.rs` holds the algorithm (pure Rust, generic over the item); `py.rs`
//! binds it to Python as `sluiceway._core.PriorityQueue`.

pub mod levels;
pub mod py;

pub use levels::{ConfigError, Levels, PushError, MAX_LEVELS};
