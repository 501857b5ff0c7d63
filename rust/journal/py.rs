//! Python binding: `sluiceway._core.Journal`, `JournalError`, `JournalLocked`.
//!
//! Every operation method queues the operation and returns its ticket at once (no I/O
//! under the GIL). `wait(ticket)` blocks with the GIL released; an event loop instead
//! watches `fileno()` and calls `drain()`, which returns the highest processed ticket and
//! the results of tickets submitted without `wait=True`. `sluiceway.journal` wraps both.

use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use super::error::JournalError as Error;
use super::types::{DeadLetter, Message, Op, OutboxItem, Run, SenderDeadLetter, Sync, Value};
use super::writer::{Journal, JournalOptions};
use crate::dispatch::entry::{Payload, PyPayloadBatch};
use crate::errors::SluicewayError;

create_exception!(
    sluiceway._core,
    JournalError,
    SluicewayError,
    "The journal cannot be opened or a transaction failed; the message names the file and the cause."
);
create_exception!(
    sluiceway._core,
    JournalLocked,
    JournalError,
    "Another process (or another Journal in this one) has the journal open."
);

fn to_py_err(error: Error) -> PyErr {
    let text = error.to_string();
    match error {
        Error::Locked { .. } => JournalLocked::new_err(text),
        Error::Invalid(_) => PyValueError::new_err(text),
        _ => JournalError::new_err(text),
    }
}

fn message_tuple<'py>(py: Python<'py>, m: Message) -> PyResult<Bound<'py, PyTuple>> {
    (
        m.seq,
        m.priority,
        m.enqueued_at,
        m.ordering_key,
        m.attempt,
        m.dispatched,
        m.not_before,
        PyBytes::new(py, &m.payload),
    )
        .into_pyobject(py)
}

fn dead_letter_tuple<'py>(py: Python<'py>, d: DeadLetter) -> PyResult<Bound<'py, PyTuple>> {
    (
        d.id,
        d.seq,
        d.priority,
        d.enqueued_at,
        d.ordering_key,
        PyBytes::new(py, &d.payload),
        d.attempts,
        d.reason,
        d.error,
        d.traceback,
        d.dead_at,
    )
        .into_pyobject(py)
}

fn outbox_tuple<'py>(py: Python<'py>, o: OutboxItem) -> PyResult<Bound<'py, PyTuple>> {
    (
        o.id,
        o.recipient,
        PyBytes::new(py, &o.body),
        o.inbound_wamid,
        o.inbound_seq,
        o.state,
        o.sent_wamid,
        o.resends,
        o.created_at,
    )
        .into_pyobject(py)
}

fn sender_dead_letter_tuple<'py>(
    py: Python<'py>,
    d: SenderDeadLetter,
) -> PyResult<Bound<'py, PyTuple>> {
    (
        d.id,
        d.recipient,
        PyBytes::new(py, &d.body),
        d.inbound_wamid,
        d.inbound_seq,
        d.attempts,
        d.reason,
        d.error,
        d.failed_at,
    )
        .into_pyobject(py)
}

fn tuples<'py, T>(
    py: Python<'py>,
    items: Vec<T>,
    one: fn(Python<'py>, T) -> PyResult<Bound<'py, PyTuple>>,
) -> PyResult<Bound<'py, PyAny>> {
    let list = PyList::empty(py);
    for item in items {
        list.append(one(py, item)?)?;
    }
    Ok(list.into_any())
}

fn value_to_py(py: Python<'_>, value: Value) -> PyResult<Bound<'_, PyAny>> {
    Ok(match value {
        Value::None => py.None().into_bound(py),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Value::Int(n) => n.into_pyobject(py)?.into_any(),
        Value::Text(t) => t.into_pyobject(py)?.into_any(),
        Value::Messages(items) => tuples(py, items, message_tuple)?,
        Value::DeadLetters(items) => tuples(py, items, dead_letter_tuple)?,
        Value::Outbox(items) => tuples(py, items, outbox_tuple)?,
        Value::SenderDeadLetters(items) => tuples(py, items, sender_dead_letter_tuple)?,
        Value::Recovery(r) => (r.next_seq, tuples(py, r.messages, message_tuple)?)
            .into_pyobject(py)?
            .into_any(),
        Value::Stats(s) => {
            let d = PyDict::new(py);
            d.set_item("db_bytes", s.db_bytes)?;
            d.set_item("wal_bytes", s.wal_bytes)?;
            d.set_item("pending", s.pending)?;
            d.set_item("dispatched", s.dispatched)?;
            d.set_item("dead_letters", s.dead_letters)?;
            d.set_item("dedup", s.dedup)?;
            d.set_item("outbox", s.outbox)?;
            d.set_item("outbox_uncertain", s.outbox_uncertain)?;
            d.set_item("sender_dead_letters", s.sender_dead_letters)?;
            d.set_item("uncertain_resends", s.uncertain_resends)?;
            d.set_item("next_seq", s.next_seq)?;
            d.set_item("transactions", s.transactions)?;
            d.into_any()
        }
    })
}

fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        PyValueError::new_err(format!("{name} must be a finite number >= 0, got {value}"))
    })
}

/// The durable journal's engine room; use `sluiceway.journal.Journal`, which wraps it.
///
/// Example:
///     >>> core = Journal("/var/lib/bot/journal.db")
///     >>> core.wait(core.insert_payloads(0, [b"\x80"], 1, time.time(), None, True))
#[pyclass(name = "Journal", module = "sluiceway._core", frozen)]
pub struct PyJournal {
    inner: Journal,
}

impl PyJournal {
    fn submit(&self, op: Op, wait: bool) -> PyResult<u64> {
        self.inner.submit(op, wait).map_err(to_py_err)
    }
}

#[pymethods]
impl PyJournal {
    #[new]
    #[pyo3(signature = (path, sync = "full", dedup_window = 604800.0, dedup_max_entries = 1_000_000,
                        max_batch_ops = 4096, max_wait = 0.0, idle_interval = 1.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: &str,
        sync: &str,
        dedup_window: f64,
        dedup_max_entries: u64,
        max_batch_ops: usize,
        max_wait: f64,
        idle_interval: f64,
    ) -> PyResult<Self> {
        let sync = Sync::parse(sync).ok_or_else(|| {
            PyValueError::new_err(format!("sync must be 'full' or 'normal', got '{sync}'"))
        })?;
        if !(dedup_window.is_finite() && dedup_window > 0.0) {
            return Err(PyValueError::new_err(format!(
                "dedup_window must be > 0 seconds, got {dedup_window}"
            )));
        }
        if dedup_max_entries == 0 || max_batch_ops == 0 {
            return Err(PyValueError::new_err(
                "dedup_max_entries and max_batch_ops must be >= 1",
            ));
        }
        let options = JournalOptions {
            sync,
            dedup_window,
            dedup_max_entries,
            max_batch_ops,
            max_wait: seconds("max_wait", max_wait)?,
            idle_interval: seconds("idle_interval", idle_interval)?,
        };
        let path = path.to_string();
        let inner = py
            .detach(|| Journal::open(&path, options))
            .map_err(to_py_err)?;
        Ok(PyJournal { inner })
    }

    #[getter]
    fn path(&self) -> &str {
        self.inner.path()
    }

    /// Readable after each commit; `drain()` empties it.
    fn fileno(&self) -> i32 {
        self.inner.notify_fd()
    }

    /// The highest processed ticket, `(ticket, result)` for the tickets submitted without
    /// `wait` that have one (an exception instance if the ticket failed), and whether the
    /// writer has stopped (closed, or died): then later tickets will never be processed.
    fn drain<'py>(&self, py: Python<'py>) -> PyResult<(u64, Bound<'py, PyList>, bool)> {
        let (committed, outcomes, stopped) = self.inner.drain();
        let list = PyList::empty(py);
        for (ticket, outcome) in outcomes {
            let value = match outcome {
                Ok(value) => value_to_py(py, value)?,
                Err(error) => to_py_err(error).into_value(py).into_bound(py).into_any(),
            };
            list.append((ticket, value))?;
        }
        Ok((committed, list, stopped))
    }

    /// Block (GIL released) until `ticket`, submitted with `wait=True`, is committed; its result.
    fn wait<'py>(&self, py: Python<'py>, ticket: u64) -> PyResult<Bound<'py, PyAny>> {
        let outcome = py.detach(|| self.inner.wait(ticket));
        value_to_py(py, outcome.map_err(to_py_err)?)
    }

    /// Commit what is queued, stop the writer, release the file.
    fn close(&self, py: Python<'_>) {
        py.detach(|| self.inner.close());
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    #[pyo3(signature = (batch, start, stop, first_seq, priority, enqueued_at, ordering_key = None, wait = false))]
    #[allow(clippy::too_many_arguments)]
    fn insert_batch(
        &self,
        batch: &PyPayloadBatch,
        start: usize,
        stop: usize,
        first_seq: u64,
        priority: u32,
        enqueued_at: f64,
        ordering_key: Option<String>,
        wait: bool,
    ) -> PyResult<u64> {
        let payloads = batch.payloads.get(start..stop).ok_or_else(|| {
            PyValueError::new_err(format!(
                "range {start}..{stop} is outside a batch of {}",
                batch.payloads.len()
            ))
        })?;
        let op = Op::Insert {
            first_seq,
            priority,
            enqueued_at,
            ordering_key,
            payloads: payloads.to_vec(),
        };
        self.submit(op, wait)
    }

    #[pyo3(signature = (first_seq, payloads, priority, enqueued_at, ordering_key = None, wait = false))]
    fn insert_payloads(
        &self,
        first_seq: u64,
        payloads: Vec<Bound<'_, PyBytes>>,
        priority: u32,
        enqueued_at: f64,
        ordering_key: Option<String>,
        wait: bool,
    ) -> PyResult<u64> {
        let payloads = payloads
            .iter()
            .map(|p| Payload::whole(p.as_bytes()))
            .collect();
        self.submit(
            Op::Insert {
                first_seq,
                priority,
                enqueued_at,
                ordering_key,
                payloads,
            },
            wait,
        )
    }

    #[pyo3(signature = (runs, wait = false))]
    fn dispatch(&self, runs: Vec<Run>, wait: bool) -> PyResult<u64> {
        self.submit(Op::Dispatch(runs), wait)
    }

    #[pyo3(signature = (runs, wait = false))]
    fn complete(&self, runs: Vec<Run>, wait: bool) -> PyResult<u64> {
        self.submit(Op::Complete(runs), wait)
    }

    #[pyo3(signature = (runs, wait = false))]
    fn requeue(&self, runs: Vec<Run>, wait: bool) -> PyResult<u64> {
        self.submit(Op::Requeue(runs), wait)
    }

    #[pyo3(signature = (items, wait = false))]
    fn retry(&self, items: Vec<(u64, u32, f64)>, wait: bool) -> PyResult<u64> {
        self.submit(Op::Retry(items), wait)
    }

    #[pyo3(signature = (seq, reason, error, traceback, now, wait = false))]
    fn dead_letter(
        &self,
        seq: u64,
        reason: String,
        error: String,
        traceback: String,
        now: f64,
        wait: bool,
    ) -> PyResult<u64> {
        self.submit(
            Op::DeadLetter {
                seq,
                reason,
                error,
                traceback,
                now,
            },
            wait,
        )
    }

    #[pyo3(signature = (limit = None, wait = false))]
    fn dead_letters(&self, limit: Option<u64>, wait: bool) -> PyResult<u64> {
        self.submit(Op::ListDeadLetters { limit }, wait)
    }

    #[pyo3(signature = (ids = None, first_seq = None, wait = false))]
    fn replay_dead_letters(
        &self,
        ids: Option<Vec<i64>>,
        first_seq: Option<u64>,
        wait: bool,
    ) -> PyResult<u64> {
        self.submit(Op::ReplayDeadLetters { ids, first_seq }, wait)
    }

    #[pyo3(signature = (ids = None, wait = false))]
    fn purge_dead_letters(&self, ids: Option<Vec<i64>>, wait: bool) -> PyResult<u64> {
        self.submit(Op::PurgeDeadLetters { ids }, wait)
    }

    #[pyo3(signature = (wamid, seq, priority, enqueued_at, ordering_key, payload, now, wait = false))]
    #[allow(clippy::too_many_arguments)]
    fn accept_webhook(
        &self,
        wamid: String,
        seq: u64,
        priority: u32,
        enqueued_at: f64,
        ordering_key: Option<String>,
        payload: Vec<u8>,
        now: f64,
        wait: bool,
    ) -> PyResult<u64> {
        let message = Message {
            seq,
            priority,
            enqueued_at,
            ordering_key,
            attempt: 0,
            dispatched: false,
            not_before: None,
            payload,
        };
        self.submit(
            Op::AcceptWebhook {
                wamid,
                message,
                now,
            },
            wait,
        )
    }

    #[pyo3(signature = (now, limit = 10_000, wait = false))]
    fn expire(&self, now: f64, limit: u64, wait: bool) -> PyResult<u64> {
        self.submit(Op::Expire { now, limit }, wait)
    }

    #[pyo3(signature = (recipient, body, inbound_wamid, inbound_seq, now, wait = false))]
    fn outbox_add(
        &self,
        recipient: String,
        body: Vec<u8>,
        inbound_wamid: Option<String>,
        inbound_seq: Option<u64>,
        now: f64,
        wait: bool,
    ) -> PyResult<u64> {
        self.submit(
            Op::OutboxAdd {
                recipient,
                body,
                inbound_wamid,
                inbound_seq,
                now,
            },
            wait,
        )
    }

    #[pyo3(signature = (id, now, wait = false))]
    fn outbox_sending(&self, id: i64, now: f64, wait: bool) -> PyResult<u64> {
        self.submit(Op::OutboxSending { id, now }, wait)
    }

    #[pyo3(signature = (id, wamid, now, wait = false))]
    fn outbox_sent(&self, id: i64, wamid: String, now: f64, wait: bool) -> PyResult<u64> {
        self.submit(Op::OutboxSent { id, wamid, now }, wait)
    }

    #[pyo3(signature = (wamid, wait = false))]
    fn outbox_status(&self, wamid: String, wait: bool) -> PyResult<u64> {
        self.submit(Op::OutboxStatus { wamid }, wait)
    }

    #[pyo3(signature = (wait = false))]
    fn outbox_unsent(&self, wait: bool) -> PyResult<u64> {
        self.submit(Op::OutboxUnsent, wait)
    }

    #[pyo3(signature = (id, reason, error, attempts, now, wait = false))]
    fn outbox_fail(
        &self,
        id: i64,
        reason: String,
        error: String,
        attempts: u32,
        now: f64,
        wait: bool,
    ) -> PyResult<u64> {
        self.submit(
            Op::OutboxFail {
                id,
                reason,
                error,
                attempts,
                now,
            },
            wait,
        )
    }

    #[pyo3(signature = (limit = None, wait = false))]
    fn sender_dead_letters(&self, limit: Option<u64>, wait: bool) -> PyResult<u64> {
        self.submit(Op::ListSenderDeadLetters { limit }, wait)
    }

    #[pyo3(signature = (now, ids = None, wait = false))]
    fn replay_sender_dead_letters(
        &self,
        now: f64,
        ids: Option<Vec<i64>>,
        wait: bool,
    ) -> PyResult<u64> {
        self.submit(Op::ReplaySenderDeadLetters { ids, now }, wait)
    }

    #[pyo3(signature = (ids = None, wait = false))]
    fn purge_sender_dead_letters(&self, ids: Option<Vec<i64>>, wait: bool) -> PyResult<u64> {
        self.submit(Op::PurgeSenderDeadLetters { ids }, wait)
    }

    #[pyo3(signature = (wait = false))]
    fn recover(&self, wait: bool) -> PyResult<u64> {
        self.submit(Op::Recover, wait)
    }

    #[pyo3(signature = (wait = false))]
    fn stats(&self, wait: bool) -> PyResult<u64> {
        self.submit(Op::Stats, wait)
    }

    #[pyo3(signature = (wait = false))]
    fn synchronous(&self, wait: bool) -> PyResult<u64> {
        self.submit(Op::Synchronous, wait)
    }
}
