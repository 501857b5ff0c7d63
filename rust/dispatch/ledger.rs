//! Python bindings: `sluiceway._core.EntryQueue` and `sluiceway._core.InFlight`.
//!
//! Together they are the supervisor's ledger of accepted messages on the hot path: the
//! queue holds them by priority until dispatch; each worker's `InFlight` holds what was
//! dispatched to it until it is acknowledged. A batch goes from accept to DISPATCH frame
//! to settled ack with no Python object per message, which is what keeps the single
//! supervisor process from being the engine's bottleneck.

use hashbrown::HashMap;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};

use super::entry::{DispatchFrame, EntryData, Payload, PyEntry, PyPayloadBatch};
use crate::histogram::py::PyLatencyHistogram;
use crate::priority_queue::{Levels, PushError};

/// Accepted messages waiting for a worker: strict priority (level 0 first), FIFO within a level.
///
/// Example:
///     >>> queue = EntryQueue(3)
///     >>> batch = PayloadBatch(msgspec.msgpack.encode([{"n": 1}, {"n": 2}]))
///     >>> queue.accept_batch(batch, 0, len(batch), 1, 1, time.time(), time.monotonic())
///     2
///     >>> frame = queue.dispatch(worker.held, 64)   # bytes for the worker's pipe, or None
#[pyclass(name = "EntryQueue", module = "sluiceway._core")]
pub struct PyEntryQueue {
    levels: Levels<EntryData>,
}

impl PyEntryQueue {
    fn push_data(&mut self, data: EntryData) -> PyResult<()> {
        let priority = data.priority;
        self.levels
            .push(data, priority)
            .map_err(|(err, _)| self.push_error(err, priority))
    }

    fn push_error(&self, err: PushError, priority: usize) -> PyErr {
        match err {
            PushError::Priority => PyValueError::new_err(format!(
                "priority must be within 0..{}, got {priority}",
                self.levels.levels() - 1
            )),
            // The queue is built unbounded.
            PushError::Full => PyValueError::new_err("queue full"),
        }
    }
}

#[pymethods]
impl PyEntryQueue {
    #[new]
    fn new(levels: usize) -> PyResult<Self> {
        let levels = Levels::new(levels, 0, 0).map_err(|_| {
            PyValueError::new_err(format!(
                "levels must be within 1..={}, got {levels}",
                crate::priority_queue::MAX_LEVELS
            ))
        })?;
        Ok(PyEntryQueue { levels })
    }

    fn __len__(&self) -> usize {
        self.levels.len()
    }

    fn __bool__(&self) -> bool {
        !self.levels.is_empty()
    }

    /// Queued entries per level, level 0 first.
    fn depths(&self) -> Vec<usize> {
        self.levels.depths().collect()
    }

    /// Queue one message without an ordering key.
    #[pyo3(signature = (seq, priority, enqueued_at, future, payload, enqueued))]
    fn accept(
        &mut self,
        seq: u64,
        priority: usize,
        enqueued_at: f64,
        future: Option<Py<PyAny>>,
        payload: &[u8],
        enqueued: f64,
    ) -> PyResult<()> {
        let payload = Payload::whole(payload);
        self.push_data(EntryData {
            seq,
            attempt: 0,
            priority,
            enqueued_at,
            key: None,
            future,
            payload,
            enqueued,
        })
    }

    /// Queue the payloads `batch[start:stop]` as messages without an ordering key, with
    /// seqs from `first_seq` on; returns how many.
    #[pyo3(signature = (batch, start, stop, first_seq, priority, enqueued_at, enqueued))]
    #[allow(clippy::too_many_arguments)]
    fn accept_batch(
        &mut self,
        py: Python<'_>,
        batch: &PyPayloadBatch,
        start: usize,
        stop: usize,
        first_seq: u64,
        priority: usize,
        enqueued_at: f64,
        enqueued: f64,
    ) -> PyResult<usize> {
        let mut entries = batch.entries(
            py,
            start,
            stop,
            first_seq,
            priority,
            enqueued_at,
            None,
            enqueued,
        )?;
        let count = entries.len();
        self.levels
            .push_all(&mut entries, priority)
            .map_err(|err| self.push_error(err, priority))?;
        Ok(count)
    }

    /// Queue `entry` (a copy of it) at the back of its priority's line.
    fn push(&mut self, entry: PyRef<'_, PyEntry>) -> PyResult<()> {
        let data = entry.data.clone_ref(entry.py());
        self.push_data(data)
    }

    /// Pop up to `count` entries, count a delivery for each, move them into `held` and
    /// return their DISPATCH frame (length header included); None when nothing was queued.
    ///
    /// With `runs`, the dispatched seqs are appended to it as inclusive `(first, last)`
    /// runs of consecutive seqs (what a journal records per frame, without a Python
    /// object per message).
    #[pyo3(signature = (held, count, runs=None))]
    fn dispatch<'py>(
        &mut self,
        py: Python<'py>,
        held: &mut PyInFlight,
        count: usize,
        runs: Option<&Bound<'py, PyList>>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let n = count.min(self.levels.len());
        if n == 0 {
            return Ok(None);
        }
        let mut frame = DispatchFrame::new(n);
        held.entries.reserve(n);
        let mut run: Option<(u64, u64)> = None;
        for mut entry in self.levels.pop_up_to(n) {
            entry.attempt += 1;
            frame.add(py, &entry)?;
            if let Some(runs) = runs {
                run = match run {
                    Some((first, last)) if entry.seq == last + 1 => Some((first, entry.seq)),
                    Some(done) => {
                        runs.append(done)?;
                        Some((entry.seq, entry.seq))
                    }
                    None => Some((entry.seq, entry.seq)),
                };
            }
            held.entries.insert(entry.seq, entry);
        }
        if let (Some(runs), Some(done)) = (runs, run) {
            runs.append(done)?;
        }
        Ok(Some(frame.finish(py)))
    }

    /// Remove every queued entry, in dispatch order.
    fn take_all<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let entries = self
            .levels
            .take_all()
            .into_iter()
            .flatten()
            .map(|data| Py::new(py, PyEntry { data }));
        PyList::new(py, entries.collect::<PyResult<Vec<_>>>()?)
    }
}

/// The entries dispatched to one worker and not yet settled, by seq.
///
/// Example:
///     >>> settled, keys = worker.held.settle(done_seqs, clock(), latency_histogram)
#[pyclass(name = "InFlight", module = "sluiceway._core")]
pub struct PyInFlight {
    entries: HashMap<u64, EntryData>,
}

#[pymethods]
impl PyInFlight {
    /// An empty table.
    #[new]
    fn new() -> Self {
        PyInFlight {
            entries: HashMap::new(),
        }
    }

    fn __len__(&self) -> usize {
        self.entries.len()
    }

    fn __bool__(&self) -> bool {
        !self.entries.is_empty()
    }

    fn __contains__(&self, seq: u64) -> bool {
        self.entries.contains_key(&seq)
    }

    /// Hold `entry` (a copy, its delivery counted) and return its DISPATCH frame of one.
    fn hold<'py>(&mut self, entry: PyRef<'py, PyEntry>) -> PyResult<Bound<'py, PyBytes>> {
        let py = entry.py();
        let mut data = entry.data.clone_ref(py);
        data.attempt += 1;
        let mut frame = DispatchFrame::new(1);
        frame.add(py, &data)?;
        self.entries.insert(data.seq, data);
        Ok(frame.finish(py))
    }

    /// Remove and return the entry held under `seq`, or None.
    fn pop(&mut self, seq: u64) -> Option<PyEntry> {
        self.entries.remove(&seq).map(|data| PyEntry { data })
    }

    /// Remove every entry, oldest (lowest seq) first.
    fn take_all<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let mut all: Vec<EntryData> = self.entries.drain().map(|(_, data)| data).collect();
        all.sort_unstable_by_key(|data| data.seq);
        let entries = all.into_iter().map(|data| Py::new(py, PyEntry { data }));
        PyList::new(py, entries.collect::<PyResult<Vec<_>>>()?)
    }

    /// Settle each of `seqs` (acknowledged plain successes): remove it, count
    /// `now - enqueued` into `histogram`. Seqs not held are skipped. Returns `(settled,
    /// keys)`: how many were removed, and the ordering keys of those that had one, in
    /// `seqs` order. A latency below zero (a clock that went back) counts as zero.
    fn settle<'py>(
        &mut self,
        seqs: &Bound<'py, PyList>,
        now: f64,
        histogram: &Bound<'py, PyLatencyHistogram>,
    ) -> PyResult<(usize, Bound<'py, PyList>)> {
        let py = seqs.py();
        let mut latencies: Vec<f64> = Vec::with_capacity(seqs.len());
        let mut keys: Vec<Py<PyString>> = Vec::new();
        for seq in seqs.iter() {
            let Some(entry) = self.entries.remove(&seq.extract::<u64>()?) else {
                continue;
            };
            let latency = now - entry.enqueued;
            // The ack is never lost over a clock that went back (or NaN): counted as zero.
            latencies.push(if latency >= 0.0 && latency.is_finite() {
                latency
            } else {
                0.0
            });
            if let Some(key) = entry.key {
                keys.push(key);
            }
        }
        // Every latency is finite and non-negative: recording cannot refuse one.
        let _ = histogram.get().record_values(&latencies);
        Ok((latencies.len(), PyList::new(py, keys)?))
    }
}
