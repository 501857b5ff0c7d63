//! Python binding: `sluiceway._core.InlineRunner`, a worker's DISPATCH frame run in one call.
//!
//! For each delivery it builds the `Message`, calls the handler and starts the coroutine
//! with `PyIter_Send`, which reports a coroutine that finished without suspending as a
//! return value rather than a `StopIteration` to raise and catch. A handler that finishes
//! inline costs no task, no exception and no interpreted loop iteration; one that suspends
//! is handed back, started, for the worker to continue as a task.

use std::fmt::Write;

use pyo3::exceptions::PyException;
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};

use super::py::{apply_tally, invalid_latency, tally_for};
use super::tally::Tally;
use crate::clock::monotonic;

/// Runs a worker's DISPATCH items inline, handing back only what needs Python.
///
/// Each item is `[seq, attempt, priority, enqueued_at, key, want_result, payload, ...]`
/// (the DISPATCH wire form). `run(items, slots, done, histogram)` starts items in order
/// until `slots` of them have suspended, and returns `(consumed, returned, raised,
/// suspended)`:
///
/// - a handler that finished without suspending appends its seq to `done`, or, when the
///   item wants its result, goes to `returned` as `(item, value)`;
/// - one that raised an `Exception` goes to `raised` as `(item, exception)` (any other
///   `BaseException` propagates at once);
/// - one that suspended goes to `suspended` as `(item, coroutine, awaited, started)`,
///   `started` on the `time.perf_counter()` scale;
/// - `consumed` counts the items started; the rest were not touched.
///
/// The durations of the finished and raised ones go into `histogram` (see `AckSettler`).
///
/// Args:
///     handler: the user's handler (called with one `Message`).
///     message_type: the `Message` struct type, called with
///         `(id, payload, priority, attempt, enqueued_at, key)`.
///     priorities: the `Priority` members, indexed by the wire's priority number.
///     prefix: the message id prefix (`"<engine id>-"`).
///     coroutine_type: `types.CoroutineType`: a handler result of another type is a
///         plain return value.
///     relative_error, min_value: the histogram's constants.
///
/// Warning:
///     It runs user code (the handler) on the calling thread with the GIL held, exactly as
///     calling the handler from Python would.
#[pyclass(name = "InlineRunner", module = "sluiceway._core", frozen)]
pub struct PyInlineRunner {
    handler: Py<PyAny>,
    message_type: Py<PyAny>,
    priorities: Py<PyTuple>,
    prefix: String,
    coroutine_type: Py<PyAny>,
    log_gamma: f64,
    min_value: f64,
}

/// What starting one coroutine led to.
enum Started<'py> {
    Returned(Bound<'py, PyAny>),
    /// The coroutine and what it awaits.
    Suspended(Bound<'py, PyAny>, Bound<'py, PyAny>),
    Raised(PyErr),
}

fn start_coroutine(coro: Bound<'_, PyAny>) -> Started<'_> {
    let py = coro.py();
    let mut result: *mut ffi::PyObject = std::ptr::null_mut();
    // SAFETY: `coro` is a live coroutine object (its exact type was checked) and
    // `Py_None` a valid argument; PyIter_Send hands back a new reference in `result` for
    // RETURN and NEXT, and none (with an exception set) for ERROR.
    let outcome = unsafe { ffi::PyIter_Send(coro.as_ptr(), ffi::Py_None(), &mut result) };
    match outcome {
        ffi::PySendResult::PYGEN_RETURN => {
            Started::Returned(unsafe { Bound::from_owned_ptr(py, result) })
        }
        ffi::PySendResult::PYGEN_NEXT => {
            Started::Suspended(coro, unsafe { Bound::from_owned_ptr(py, result) })
        }
        ffi::PySendResult::PYGEN_ERROR => Started::Raised(PyErr::fetch(py)),
    }
}

#[pymethods]
impl PyInlineRunner {
    #[new]
    #[pyo3(signature = (handler, message_type, priorities, prefix, coroutine_type, relative_error, min_value))]
    fn new(
        handler: Py<PyAny>,
        message_type: Py<PyAny>,
        priorities: Py<PyTuple>,
        prefix: String,
        coroutine_type: Py<PyAny>,
        relative_error: f64,
        min_value: f64,
    ) -> PyResult<Self> {
        let settler = super::py::PyAckSettler::new(relative_error, min_value)?;
        Ok(PyInlineRunner {
            handler,
            message_type,
            priorities,
            prefix,
            coroutine_type,
            log_gamma: settler.log_gamma,
            min_value: settler.min_value,
        })
    }

    #[allow(clippy::type_complexity)]
    fn run<'py>(
        &self,
        items: &Bound<'py, PyList>,
        slots: usize,
        done: &Bound<'py, PyList>,
        histogram: &Bound<'py, PyAny>,
    ) -> PyResult<(
        usize,
        Bound<'py, PyList>,
        Bound<'py, PyList>,
        Bound<'py, PyList>,
    )> {
        let py = items.py();
        let handler = self.handler.bind(py);
        let message_type = self.message_type.bind(py);
        let priorities = self.priorities.bind(py);
        let coroutine_type = self.coroutine_type.bind(py);
        let returned = PyList::empty(py);
        let raised = PyList::empty(py);
        let suspended = PyList::empty(py);
        let mut tally: Tally = tally_for(self.log_gamma, self.min_value, histogram)?;
        let mut consumed = 0usize;
        // One buffer for every id of the batch ("<prefix><seq>"): no allocation per message.
        let mut id_buffer = String::with_capacity(self.prefix.len() + 20);
        id_buffer.push_str(&self.prefix);
        let mut outcome: PyResult<()> = Ok(());
        for item in items.iter() {
            if suspended.len() >= slots {
                break;
            }
            let fields = item.cast::<PyList>()?;
            let seq = fields.get_item(0)?;
            let seq_number: i64 = seq.extract()?;
            id_buffer.truncate(self.prefix.len());
            let _ = write!(id_buffer, "{seq_number}"); // writing to a String cannot fail
            let id = PyString::new(py, &id_buffer);
            let priority = priorities.get_item(fields.get_item(2)?.extract::<usize>()?)?;
            let message = message_type.call1((
                id,
                fields.get_item(6)?,
                priority,
                fields.get_item(1)?,
                fields.get_item(3)?,
                fields.get_item(4)?,
            ))?;
            let want_result = fields.get_item(5)?.is_truthy()?;
            consumed += 1;
            let started = monotonic();
            let started_outcome = match handler.call1((message,)) {
                Err(err) => Started::Raised(err),
                Ok(result) if result.get_type().is(coroutine_type) => start_coroutine(result),
                Ok(value) => Started::Returned(value),
            };
            match started_outcome {
                Started::Returned(value) => {
                    if want_result {
                        returned.append((&item, value))?;
                    } else {
                        done.append(seq)?;
                    }
                }
                Started::Raised(err) => {
                    if !err.is_instance_of::<PyException>(py) {
                        outcome = Err(err);
                        break;
                    }
                    raised.append((&item, err.into_value(py)))?;
                }
                Started::Suspended(coro, awaited) => {
                    // An asyncio future marks itself "awaited by a task" until the task takes
                    // it; another handler of this batch awaiting the same future must not see
                    // that mark (asyncio refuses it), so it is cleared here and set again
                    // when the coroutine's task starts (`worker._resume`).
                    if awaited
                        .getattr(intern!(py, "_asyncio_future_blocking"))
                        .is_ok_and(|b| b.is_truthy().unwrap_or(false))
                    {
                        awaited.setattr(intern!(py, "_asyncio_future_blocking"), false)?;
                    }
                    suspended.append((&item, coro, awaited, started))?;
                    continue;
                }
            }
            if let Err(bad) = tally.add(monotonic() - started) {
                outcome = Err(invalid_latency(py, bad));
                break;
            }
        }
        apply_tally(&tally, histogram)?;
        outcome.map(|()| (consumed, returned, raised, suspended))
    }
}
