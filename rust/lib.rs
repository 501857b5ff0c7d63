//! sluiceway's Rust core: the hot data structures of the engine.
//!
//! Each structure keeps its algorithm in a pure-Rust module (no pyo3, tested by
//! `cargo test`) and its Python binding in a `py.rs` beside it. This file is the
//! one `#[pymodule]` and only lists what Python sees.

pub mod clock;
pub mod dispatch;
pub mod errors;
pub mod histogram;
pub mod lru_cache;
pub mod priority_queue;
pub mod rate_limit;

use pyo3::prelude::*;

#[pymodule]
mod _core {
    #[pymodule_export]
    use crate::dispatch::{
        entry::{PyEntry, PyPayloadBatch},
        ledger::{PyEntryQueue, PyInFlight},
    };
    #[pymodule_export]
    use crate::errors::{QueueEmpty, QueueFull, SluicewayError};
    #[pymodule_export]
    use crate::histogram::py::PyLatencyHistogram;
    #[pymodule_export]
    use crate::lru_cache::py::PyByteLRU;
    #[pymodule_export]
    use crate::priority_queue::py::PyPriorityQueue;
    #[pymodule_export]
    use crate::rate_limit::py::{PyKeyedLimiter, PyRateLimiter, PyTokenBucket, PyWindowLimiter};

    use pyo3::prelude::*;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        crate::lru_cache::py::install_fast_reads(m.py())?;
        Ok(())
    }
}
