//! Python binding: `sluiceway._core.AckSettler`.
//!
//! Every method runs with the GIL attached and holds no lock: it only reads and writes
//! Python objects handed to it (a dict, entries, a histogram), each in one pass.

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyList};

use super::tally::{InvalidLatency, Tally};

/// Settles the engine's ack frames and counts latencies into a `LatencyHistogram`, one call per frame.
///
/// `record(histogram, values)` does what `histogram.record_many(values)` does, in a few
/// dozen nanoseconds of Rust per value instead of a few hundred of interpreted Python
/// (`InFlight.settle` counts ack latencies the same way).
///
/// Args:
///     relative_error: the histogram's `RELATIVE_ERROR` (0 < e < 1); bucket bounds grow
///         by `gamma = (1 + e) / (1 - e)`.
///     min_value: the histogram's `MIN_VALUE`: values at or below it count as zeros.
///
/// Example:
///     >>> settler = AckSettler(histogram.RELATIVE_ERROR, histogram.MIN_VALUE)
///     >>> settler.record(worker_histogram, handler_durations)
///
/// Warning:
///     It writes the histogram's public fields (`buckets`, `zeros`, `count`, `sum`, `min`,
///     `max`) directly, so it must be built with that histogram's own constants.
#[pyclass(name = "AckSettler", module = "sluiceway._core", frozen)]
pub struct PyAckSettler {
    pub(crate) log_gamma: f64,
    pub(crate) min_value: f64,
}

/// The `ValueError` that `LatencyHistogram.record_many` raises for `bad`.
pub(crate) fn invalid_latency(py: Python<'_>, bad: InvalidLatency) -> PyErr {
    let shown = PyFloat::new(py, bad.0)
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| bad.0.to_string());
    PyValueError::new_err(format!(
        "a latency must be a finite non-negative number, got {shown}"
    ))
}

/// A tally continuing `histogram`'s totals (its `zeros`, `count`, `sum`, `min`, `max`).
pub(crate) fn tally_for(
    log_gamma: f64,
    min_value: f64,
    histogram: &Bound<'_, PyAny>,
) -> PyResult<Tally> {
    let py = histogram.py();
    Ok(Tally::new(
        log_gamma,
        min_value,
        histogram.getattr(intern!(py, "zeros"))?.extract()?,
        histogram.getattr(intern!(py, "count"))?.extract()?,
        histogram.getattr(intern!(py, "sum"))?.extract()?,
        histogram.getattr(intern!(py, "min"))?.extract()?,
        histogram.getattr(intern!(py, "max"))?.extract()?,
    ))
}

/// Add `tally`'s bucket counts to `histogram.buckets` and store its totals.
pub(crate) fn apply_tally(tally: &Tally, histogram: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = histogram.py();
    let buckets = histogram.getattr(intern!(py, "buckets"))?;
    let buckets = buckets.cast::<PyDict>()?;
    for (&index, &n) in &tally.buckets {
        let before: u64 = match buckets.get_item(index)? {
            Some(old) => old.extract()?,
            None => 0,
        };
        buckets.set_item(index, before + n)?;
    }
    histogram.setattr(intern!(py, "zeros"), tally.zeros)?;
    histogram.setattr(intern!(py, "count"), tally.count)?;
    histogram.setattr(intern!(py, "sum"), tally.sum)?;
    histogram.setattr(intern!(py, "min"), tally.min)?;
    histogram.setattr(intern!(py, "max"), tally.max)?;
    Ok(())
}

#[pymethods]
impl PyAckSettler {
    #[new]
    #[pyo3(signature = (relative_error, min_value))]
    pub(crate) fn new(relative_error: f64, min_value: f64) -> PyResult<Self> {
        if !(relative_error > 0.0 && relative_error < 1.0) {
            return Err(PyValueError::new_err(format!(
                "relative_error must be within (0, 1), got {relative_error}"
            )));
        }
        if !(min_value >= 0.0 && min_value.is_finite()) {
            return Err(PyValueError::new_err(format!(
                "min_value must be a finite number >= 0, got {min_value}"
            )));
        }
        let gamma = (1.0 + relative_error) / (1.0 - relative_error);
        Ok(PyAckSettler {
            log_gamma: gamma.ln(),
            min_value,
        })
    }

    /// Count each of `values` into `histogram`, as `histogram.record_many(values)` does.
    ///
    /// `ValueError` for a negative or non-finite value; the values before it are counted.
    fn record(&self, histogram: &Bound<'_, PyAny>, values: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = histogram.py();
        let mut tally = tally_for(self.log_gamma, self.min_value, histogram)?;
        let mut outcome = Ok(());
        if let Ok(list) = values.cast::<PyList>() {
            for value in list.iter() {
                if let Err(bad) = tally.add(value.extract()?) {
                    outcome = Err(invalid_latency(py, bad));
                    break;
                }
            }
        } else {
            for value in values.try_iter()? {
                if let Err(bad) = tally.add(value?.extract()?) {
                    outcome = Err(invalid_latency(py, bad));
                    break;
                }
            }
        }
        apply_tally(&tally, histogram)?;
        outcome
    }
}
