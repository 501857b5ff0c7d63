//! Python binding of [`Levels`]: `sluiceway._core.PriorityQueue`.
//!
//! Locking discipline: the mutex guards only pure-Rust work. No Python code may
//! run while it is held (no Python allocation, which can trigger the cyclic GC
//! and its finalizers, and no dropping of items, whose `__del__` may call back
//! into this queue): either could re-enter the queue on the same thread and
//! deadlock. So items are created before locking, and lists, errors and dropped
//! items are handled after unlocking.
//!
//! Every method keeps the GIL attached: each is O(1) (or O(n) in plain moves for
//! `pop_many`) and takes well under a microsecond, far less than what detaching
//! and re-attaching costs, and the lock is never held across a GIL switch point.

use std::collections::VecDeque;

use parking_lot::Mutex;
use pyo3::exceptions::{PyOverflowError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyList;

use super::levels::{ConfigError, Levels, PushError, MAX_LEVELS};
use crate::errors::{QueueEmpty, QueueFull};

/// A multi-level FIFO queue of arbitrary Python objects; level 0 is served first.
///
/// `push(item, priority)` appends to level `priority` (0 is highest, `levels - 1`
/// lowest); `pop()` takes the oldest item of the highest non-empty level. Items are
/// stored as references: `pop()` returns the very object pushed.
///
/// Args:
///     levels: number of priority levels, 1 to 64 (default 3, so `priority=1`
///         is the middle one).
///     maxsize: most items held at once; 0 (the default) means unbounded.
///         A push that would exceed it raises `QueueFull` and changes nothing.
///     starvation_limit: 0 (the default) turns anti-starvation off: strict
///         priority. Otherwise, see below.
///
/// Anti-starvation rule (`starvation_limit = k > 0`):
///     Each waiting level counts the pops served from a higher level since it was
///     last served (or since it became non-empty). A level whose count reached `k`
///     is *overdue*. `pop()` serves the highest overdue level if there is one,
///     else the highest non-empty level; serving a level resets its count.
///     So the item at the head of level `L` is passed over by at most
///     `k + L - 1` pops from higher levels (exactly `k` with two levels), and a
///     steady high-priority stream can no longer hold a low-priority item back
///     forever. `pop_many(n)` applies the rule item by item, like `n` pops.
///
/// Complexity (`n` = items moved, `L` = levels):
///
/// | operation          | time                      |
/// |--------------------|---------------------------|
/// | `push`             | O(1) amortized            |
/// | `push_many(items)` | O(n), all or none         |
/// | `pop`              | O(1); O(L) with anti-starvation |
/// | `pop_many(n)`      | O(n); O(n·L) with anti-starvation |
/// | `len`, `bool`      | O(1)                      |
/// | `depths`           | O(L)                      |
/// | `clear`            | O(items held)             |
///
/// Thread safety: every method is atomic (one internal lock acquisition), so
/// the queue may be shared between threads, including free-threaded builds.
///
/// Example:
///     >>> q = PriorityQueue(levels=3)
///     >>> q.push("report", priority=2); q.push("alert", priority=0)
///     >>> q.pop_many(10)
///     ['alert', 'report']
///
/// Warning:
///     Strict priority (the default) is fastest and simplest but lets a steady
///     stream at a high level starve the lower ones; `starvation_limit` trades a
///     bounded amount of priority inversion for progress at every level.
#[pyclass(name = "PriorityQueue", module = "sluiceway._core", frozen)]
pub struct PyPriorityQueue {
    // Read-only configuration stays outside the lock.
    levels: usize,
    maxsize: usize,
    inner: Mutex<Levels<Py<PyAny>>>,
}

/// A `priority` argument. Integers too large for `i64` are out of range too, so
/// they get the same `ValueError` as any other bad priority, not an `OverflowError`.
pub struct Priority(i64);

impl<'a, 'py> FromPyObject<'a, 'py> for Priority {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        match obj.extract::<i64>() {
            Ok(value) => Ok(Priority(value)),
            Err(err) if err.is_instance_of::<PyOverflowError>(obj.py()) => Err(
                PyValueError::new_err(format!("priority {} is outside range(levels)", &*obj)),
            ),
            Err(err) => Err(err),
        }
    }
}

/// A non-negative integer constructor argument, or `ValueError` naming it.
fn non_negative(name: &str, value: i64) -> PyResult<usize> {
    usize::try_from(value)
        .map_err(|_| PyValueError::new_err(format!("{name} must be >= 0, got {value}")))
}

impl PyPriorityQueue {
    /// The level index, or the `ValueError` a bad priority gets.
    fn level(&self, priority: &Priority) -> PyResult<usize> {
        match usize::try_from(priority.0) {
            Ok(level) if level < self.levels => Ok(level),
            _ => Err(self.priority_error(priority.0)),
        }
    }

    fn priority_error(&self, priority: i64) -> PyErr {
        PyValueError::new_err(format!(
            "priority {priority} is outside range({})",
            self.levels
        ))
    }

    fn full_error(&self, adding: usize) -> PyErr {
        QueueFull::new_err(format!(
            "queue holds its maxsize of {} items; cannot add {adding}",
            self.maxsize
        ))
    }
}

#[pymethods]
impl PyPriorityQueue {
    #[new]
    #[pyo3(signature = (levels = 3, maxsize = 0, starvation_limit = 0))]
    fn new(levels: i64, maxsize: i64, starvation_limit: i64) -> PyResult<Self> {
        let levels_n = usize::try_from(levels).unwrap_or(0);
        let maxsize = non_negative("maxsize", maxsize)?;
        let starvation_limit = non_negative("starvation_limit", starvation_limit)?;
        match Levels::new(levels_n, maxsize, starvation_limit) {
            Ok(inner) => Ok(Self {
                levels: levels_n,
                maxsize,
                inner: Mutex::new(inner),
            }),
            Err(ConfigError::Levels) => Err(PyValueError::new_err(format!(
                "levels must be between 1 and {MAX_LEVELS}, got {levels}"
            ))),
        }
    }

    /// Number of priority levels; valid priorities are `range(levels)`.
    #[getter]
    fn levels(&self) -> usize {
        self.levels
    }

    /// Most items held at once; 0 means unbounded.
    #[getter]
    fn maxsize(&self) -> usize {
        self.maxsize
    }

    /// Append `item` at `priority`; `ValueError` outside `range(levels)`, `QueueFull` at maxsize.
    #[pyo3(signature = (item, priority = Priority(1)), text_signature = "($self, item, priority=1)")]
    fn push(&self, item: Bound<'_, PyAny>, priority: Priority) -> PyResult<()> {
        let level = self.level(&priority)?;
        let refused = self.inner.lock().push(item.unbind(), level);
        // The refused item (an extra reference to `item`) is dropped here, unlocked.
        match refused {
            Ok(()) => Ok(()),
            Err((PushError::Full, _)) => Err(self.full_error(1)),
            Err((PushError::Priority, _)) => Err(self.priority_error(priority.0)),
        }
    }

    /// Append all `items` at `priority`, all or none (`QueueFull` if they do not all fit).
    #[pyo3(signature = (items, priority = Priority(1)), text_signature = "($self, items, priority=1)")]
    fn push_many(&self, items: &Bound<'_, PyAny>, priority: Priority) -> PyResult<()> {
        let level = self.level(&priority)?;
        // Iterating runs Python code, so it happens before locking.
        let mut batch = Vec::with_capacity(items.len().unwrap_or(0));
        for item in items.try_iter()? {
            batch.push(item?.unbind());
        }
        let outcome = self.inner.lock().push_all(&mut batch, level);
        match outcome {
            Ok(()) => Ok(()),
            Err(PushError::Full) => Err(self.full_error(batch.len())),
            Err(PushError::Priority) => Err(self.priority_error(priority.0)),
        }
    }

    /// Remove and return the next item: highest level first, FIFO within a level; `QueueEmpty` when empty.
    fn pop(&self) -> PyResult<Py<PyAny>> {
        let item = self.inner.lock().pop();
        item.ok_or_else(|| QueueEmpty::new_err("pop from an empty PriorityQueue"))
    }

    /// Remove and return up to `n` items in `pop()` order; `[]` when empty.
    fn pop_many<'py>(&self, py: Python<'py>, n: i64) -> PyResult<Bound<'py, PyList>> {
        let n = non_negative("n", n)?;
        // One lock acquisition moves the items into a buffer; the list is built
        // after unlocking because allocating it may run the GC (see module doc).
        let taken: Vec<Py<PyAny>> = self.inner.lock().pop_up_to(n).collect();
        PyList::new(py, taken)
    }

    /// Items waiting per level.
    fn depths(&self) -> Vec<usize> {
        self.inner.lock().depths().collect()
    }

    /// Remove every item.
    fn clear(&self) {
        let dropped: Vec<VecDeque<Py<PyAny>>> = self.inner.lock().take_all();
        // Items are released only now, unlocked: their finalizers may use this queue.
        drop(dropped);
    }

    fn __len__(&self) -> usize {
        self.inner.lock().len()
    }

    fn __bool__(&self) -> bool {
        !self.inner.lock().is_empty()
    }

    fn __repr__(&self) -> String {
        let inner = self.inner.lock();
        format!(
            "PriorityQueue(levels={}, maxsize={}, starvation_limit={}, len={})",
            self.levels,
            self.maxsize,
            inner.starvation_limit(),
            inner.len()
        )
    }
}
