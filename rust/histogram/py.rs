//! Python binding of [`LogHistogram`]: `sluiceway._core.LatencyHistogram`.
//!
//! Locking discipline (as in the other bindings): the mutex guards only pure-Rust work.
//! Python values are converted before locking and Python objects built after unlocking,
//! so no Python code (a `__float__`, a finalizer) runs while it is held. `merge` and
//! `subtract` copy the other histogram out under its own lock first, so no two locks
//! are ever held at once (`h.merge(h)` works too).

use parking_lot::Mutex;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyList, PySequence, PyTuple};

use super::buckets::{HistogramError, InvalidLatency, LogHistogram, MIN_VALUE, RELATIVE_ERROR};

/// The wire form: `(buckets as [(index, count)], zeros, count, sum, min, max)`.
type Wire = (Vec<(i64, u64)>, u64, u64, f64, f64, f64);

/// Counts of non-negative values (e.g. seconds) in geometric buckets, mergeable across processes.
///
/// Values are counted in buckets whose bounds grow by `gamma = (1 + RELATIVE_ERROR) /
/// (1 - RELATIVE_ERROR)`; a quantile is reported as its bucket's midpoint, within
/// `RELATIVE_ERROR` (1%) of the true order statistic. Values at or below `MIN_VALUE`
/// count as zeros. `count`, `sum`, `min` and `max` are exact.
///
/// Complexity: `record` O(1); `record_many` O(values); `merge`, `subtract`, `quantile`
/// and `cumulative_counts` O(buckets), and buckets stay few (about 1,400 cover 1 µs to
/// 1 hour).
///
/// Thread safety: every method is atomic (one internal lock acquisition).
///
/// Example:
///     >>> h = LatencyHistogram()
///     >>> h.record_many([0.010, 0.012, 0.250])
///     >>> h.quantile(0.5)   # 0.012, within 1%
///     >>> worker_delta = LatencyHistogram.from_wire(frame_field)   # from another process
///     >>> h.merge(worker_delta)
#[pyclass(name = "LatencyHistogram", module = "sluiceway._core", frozen)]
pub struct PyLatencyHistogram {
    inner: Mutex<LogHistogram>,
}

/// The `ValueError` for a value that is not a latency, showing it as Python would.
fn invalid_latency(py: Python<'_>, bad: InvalidLatency) -> PyErr {
    let shown = PyFloat::new(py, bad.0)
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| bad.0.to_string());
    PyValueError::new_err(format!(
        "a latency must be a finite non-negative number, got {shown}"
    ))
}

fn value_error(err: HistogramError) -> PyErr {
    PyValueError::new_err(err.to_string())
}

/// Read a wire form (any sequences: msgpack decodes tuples as lists).
fn parse_wire(wire: &Bound<'_, PyAny>) -> PyResult<LogHistogram> {
    let shape_error = || {
        PyValueError::new_err(
            "a LatencyHistogram wire form is (buckets as [(index, count)], zeros, count, sum, min, max)",
        )
    };
    let parts = wire.cast::<PySequence>().map_err(|_| shape_error())?;
    if parts.len()? != 6 {
        return Err(shape_error());
    }
    let mut buckets: Vec<(i64, u64)> = Vec::new();
    for pair in parts.get_item(0)?.try_iter().map_err(|_| shape_error())? {
        let pair = pair?;
        let pair = pair.cast::<PySequence>().map_err(|_| shape_error())?;
        if pair.len()? != 2 {
            return Err(shape_error());
        }
        buckets.push((pair.get_item(0)?.extract()?, pair.get_item(1)?.extract()?));
    }
    LogHistogram::from_parts(
        buckets,
        parts.get_item(1)?.extract()?,
        parts.get_item(2)?.extract()?,
        parts.get_item(3)?.extract()?,
        parts.get_item(4)?.extract()?,
        parts.get_item(5)?.extract()?,
    )
    .map_err(value_error)
}

impl PyLatencyHistogram {
    /// Count `values` from Rust (the engine's ack path), stopping at the first refused one.
    pub(crate) fn record_values(&self, values: &[f64]) -> Result<(), InvalidLatency> {
        self.inner.lock().record_all(values)
    }

    fn snapshot(&self) -> LogHistogram {
        self.inner.lock().clone()
    }

    fn wire(&self) -> Wire {
        let h = self.inner.lock();
        (
            h.buckets().collect(),
            h.zeros(),
            h.count(),
            h.sum(),
            h.min(),
            h.max(),
        )
    }
}

#[pymethods]
impl PyLatencyHistogram {
    /// Guaranteed bound on |reported - true| / true for any quantile of positive values.
    #[classattr]
    const RELATIVE_ERROR: f64 = RELATIVE_ERROR;
    /// Values at or below this (seconds) are counted as zero: below timer resolution.
    #[classattr]
    const MIN_VALUE: f64 = MIN_VALUE;

    #[new]
    fn new() -> Self {
        PyLatencyHistogram {
            inner: Mutex::new(LogHistogram::new()),
        }
    }

    /// Count one value; `ValueError` for a negative or non-finite one.
    fn record(&self, py: Python<'_>, value: f64) -> PyResult<()> {
        let outcome = self.inner.lock().record(value);
        outcome.map_err(|bad| invalid_latency(py, bad))
    }

    /// Count each of `values`, as `record` would, in one call.
    ///
    /// `ValueError` for a negative or non-finite value (`TypeError` for a non-number);
    /// the values before it are counted.
    fn record_many(&self, values: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = values.py();
        let items: Box<dyn Iterator<Item = PyResult<Bound<'_, PyAny>>>> =
            match values.cast::<PyList>() {
                Ok(list) => Box::new(list.iter().map(Ok)),
                Err(_) => Box::new(values.try_iter()?),
            };
        let mut converted: Vec<f64> = Vec::new();
        let mut conversion_error: Option<PyErr> = None;
        for item in items {
            match item.and_then(|v| v.extract::<f64>()) {
                Ok(v) => converted.push(v),
                Err(err) => {
                    conversion_error = Some(err);
                    break;
                }
            }
        }
        self.record_values(&converted)
            .map_err(|bad| invalid_latency(py, bad))?;
        conversion_error.map_or(Ok(()), Err)
    }

    /// Add `other`'s counts to this histogram.
    fn merge(&self, other: &Bound<'_, Self>) {
        let theirs = other.get().snapshot();
        self.inner.lock().merge(&theirs);
    }

    /// Remove `other`'s counts, which must have been merged in before (sliding windows).
    ///
    /// `ValueError`, changing nothing, if they were not. `min` and `max` cannot be
    /// subtracted and are left as they were (a window sets them from what it holds).
    fn subtract(&self, other: &Bound<'_, Self>) -> PyResult<()> {
        let theirs = other.get().snapshot();
        let outcome = self.inner.lock().subtract(&theirs);
        outcome.map_err(value_error)
    }

    /// The `q`-quantile (0 <= q <= 1) within `RELATIVE_ERROR`; 0.0 when empty.
    fn quantile(&self, q: f64) -> PyResult<f64> {
        let outcome = self.inner.lock().quantile(q);
        outcome.map_err(value_error)
    }

    /// For each of the strictly increasing upper `bounds`, how many values are at or below it.
    ///
    /// Exact up to the relative error (a bucket counts under the first bound at or above
    /// its reported value); Prometheus' cumulative `le` buckets, without the `+Inf` one
    /// (that is `count`).
    fn cumulative_counts(&self, bounds: Vec<f64>) -> PyResult<Vec<u64>> {
        let outcome = self.inner.lock().cumulative_counts(&bounds);
        outcome.map_err(value_error)
    }

    /// Forget every value (after shipping a delta).
    fn reset(&self) {
        *self.inner.lock() = LogHistogram::new();
    }

    #[getter]
    fn count(&self) -> u64 {
        self.inner.lock().count()
    }

    /// Values counted as zero (at or below `MIN_VALUE`).
    #[getter]
    fn zeros(&self) -> u64 {
        self.inner.lock().zeros()
    }

    /// The exact sum of the recorded values.
    #[getter]
    fn sum(&self) -> f64 {
        self.inner.lock().sum()
    }

    /// The smallest value recorded; `inf` when empty.
    #[getter]
    fn min(&self) -> f64 {
        self.inner.lock().min()
    }

    /// Set after `subtract`, which cannot restore it, by whoever knows it (a sliding window).
    #[setter]
    fn set_min(&self, value: f64) {
        let mut h = self.inner.lock();
        let max = h.max();
        h.set_extremes(value, max);
    }

    /// The largest value recorded; 0.0 when empty.
    #[getter]
    fn max(&self) -> f64 {
        self.inner.lock().max()
    }

    /// Set after `subtract`, which cannot restore it, by whoever knows it (a sliding window).
    #[setter]
    fn set_max(&self, value: f64) {
        let mut h = self.inner.lock();
        let min = h.min();
        h.set_extremes(min, value);
    }

    /// The exact mean of the recorded values; 0.0 when empty.
    #[getter]
    fn mean(&self) -> f64 {
        self.inner.lock().mean()
    }

    /// The non-empty buckets, `{index: count}` (a copy): bucket `i` holds `(gamma**(i-1), gamma**i]`.
    #[getter]
    fn buckets<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let pairs: Vec<(i64, u64)> = self.inner.lock().buckets().collect();
        let dict = PyDict::new(py);
        for (index, n) in pairs {
            dict.set_item(index, n)?;
        }
        Ok(dict)
    }

    /// A plain, msgpack-friendly form for shipping between processes:
    /// `([(index, count), ...], zeros, count, sum, min, max)`, buckets lowest index first.
    fn to_wire(&self) -> Wire {
        self.wire()
    }

    /// Rebuild a histogram from `to_wire()`'s output (tuples or lists);
    /// `ValueError` for anything else.
    #[staticmethod]
    fn from_wire(wire: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(PyLatencyHistogram {
            inner: Mutex::new(parse_wire(wire)?),
        })
    }

    /// Pickled as its wire form.
    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let rebuild = slf.get_type().getattr("from_wire")?;
        let wire = slf.get().wire().into_pyobject(py)?;
        Ok((rebuild, PyTuple::new(py, [wire])?))
    }

    fn __repr__(&self) -> String {
        let h = self.inner.lock();
        let quantile = |q: f64| h.quantile(q).unwrap_or(0.0);
        format!(
            "LatencyHistogram(count={}, min={:?}, p50={:?}, p99={:?}, max={:?})",
            h.count(),
            if h.count() > 0 { h.min() } else { 0.0 },
            quantile(0.5),
            quantile(0.99),
            h.max()
        )
    }
}
