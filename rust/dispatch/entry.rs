//! One accepted message as the supervisor keeps it, and its DISPATCH wire form.
//!
//! `EntryData` is the Rust record the queue and the in-flight tables hold (no Python
//! object per message on the batch path); `sluiceway._core.Entry` is the same record
//! handed to Python for the rarer paths (ordering-key lines, retries, dead letters).

use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};

use super::msgpack::{self, MsgpackError};

/// The DISPATCH frame kind (`sluiceway.engine.transport.DISPATCH`).
pub const DISPATCH_KIND: u64 = 2;

/// A message's msgpack payload: a range of a buffer that a whole batch may share.
#[derive(Clone, Debug)]
pub struct Payload {
    buffer: Arc<[u8]>,
    start: usize,
    end: usize,
}

impl Payload {
    pub fn whole(bytes: &[u8]) -> Self {
        Payload {
            buffer: Arc::from(bytes),
            start: 0,
            end: bytes.len(),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buffer[self.start..self.end]
    }
}

/// The payloads of one msgpack array, each a range of one shared copy of it.
pub fn split_payloads(encoded: &[u8]) -> PyResult<Vec<Payload>> {
    let ranges = msgpack::split_array(encoded).map_err(|err| {
        let what = match err {
            MsgpackError::NotAnArray => "not a msgpack array".to_string(),
            MsgpackError::Truncated => "truncated".to_string(),
            MsgpackError::InvalidByte(b) => format!("invalid byte 0x{b:02x}"),
            MsgpackError::TrailingBytes => "followed by stray bytes".to_string(),
            MsgpackError::TooDeep => "nested too deep".to_string(),
        };
        PyValueError::new_err(format!(
            "payloads must be one msgpack array: input is {what}"
        ))
    })?;
    let buffer: Arc<[u8]> = Arc::from(encoded);
    Ok(ranges
        .into_iter()
        .map(|(start, end)| Payload {
            buffer: buffer.clone(),
            start,
            end,
        })
        .collect())
}

/// A batch of payloads, encoded as one msgpack array and split once.
///
/// Example:
///     >>> batch = PayloadBatch(msgspec.msgpack.encode([{"n": 1}, {"n": 2}]))
///     >>> len(batch)
///     2
#[pyclass(name = "PayloadBatch", module = "sluiceway._core", frozen)]
pub struct PyPayloadBatch {
    pub(crate) payloads: Vec<Payload>,
}

impl PyPayloadBatch {
    /// New entries (no delivery yet) for the payloads `start..stop`, seqs from `first_seq`
    /// on; `ValueError` for a range outside the batch.
    #[allow(clippy::too_many_arguments)]
    pub fn entries(
        &self,
        py: Python<'_>,
        start: usize,
        stop: usize,
        first_seq: u64,
        priority: usize,
        enqueued_at: f64,
        key: Option<&Py<PyString>>,
        enqueued: f64,
    ) -> PyResult<Vec<EntryData>> {
        let payloads = self.payloads.get(start..stop).ok_or_else(|| {
            PyValueError::new_err(format!(
                "range {start}..{stop} is outside a batch of {}",
                self.payloads.len()
            ))
        })?;
        Ok(payloads
            .iter()
            .enumerate()
            .map(|(i, payload)| EntryData {
                seq: first_seq + i as u64,
                attempt: 0,
                priority,
                enqueued_at,
                key: key.map(|k| k.clone_ref(py)),
                future: None,
                payload: payload.clone(),
                enqueued,
            })
            .collect())
    }
}

#[pymethods]
impl PyPayloadBatch {
    /// `ValueError` unless `encoded` is exactly one msgpack array.
    #[new]
    fn new(encoded: &[u8]) -> PyResult<Self> {
        Ok(PyPayloadBatch {
            payloads: split_payloads(encoded)?,
        })
    }

    fn __len__(&self) -> usize {
        self.payloads.len()
    }
}

/// One accepted message.
#[derive(Debug)]
pub struct EntryData {
    pub seq: u64,
    /// Deliveries so far.
    pub attempt: u32,
    pub priority: usize,
    /// Wall clock at acceptance, shown to handlers.
    pub enqueued_at: f64,
    pub key: Option<Py<PyString>>,
    /// The `submit` future waiting for the handler's result, if any.
    pub future: Option<Py<PyAny>>,
    pub payload: Payload,
    /// Supervisor clock at acceptance, for latency.
    pub enqueued: f64,
}

impl EntryData {
    pub fn clone_ref(&self, py: Python<'_>) -> Self {
        EntryData {
            seq: self.seq,
            attempt: self.attempt,
            priority: self.priority,
            enqueued_at: self.enqueued_at,
            key: self.key.as_ref().map(|k| k.clone_ref(py)),
            future: self.future.as_ref().map(|f| f.clone_ref(py)),
            payload: self.payload.clone(),
            enqueued: self.enqueued,
        }
    }

    /// Append the wire form: `[seq, attempt, priority, enqueued_at, key, want_result, payload, enqueued]`
    /// (`want_result` is `true` with a future, nil without). Cannot fail for an entry made
    /// through `Entry` (its key was checked there) or `EntryQueue` (no key).
    pub fn write(&self, py: Python<'_>, out: &mut Vec<u8>) -> PyResult<()> {
        msgpack::write_array_header(out, 8);
        msgpack::write_uint(out, self.seq);
        msgpack::write_uint(out, self.attempt as u64);
        msgpack::write_uint(out, self.priority as u64);
        msgpack::write_f64(out, self.enqueued_at);
        match &self.key {
            Some(key) => msgpack::write_str(out, key.bind(py).to_str()?),
            None => msgpack::write_nil(out),
        }
        if self.future.is_some() {
            msgpack::write_true(out);
        } else {
            msgpack::write_nil(out);
        }
        out.extend_from_slice(self.payload.bytes());
        msgpack::write_f64(out, self.enqueued);
        Ok(())
    }
}

/// A DISPATCH frame under construction: the length header, `[DISPATCH, [entries...]]`.
pub struct DispatchFrame {
    bytes: Vec<u8>,
}

impl DispatchFrame {
    pub fn new(count: usize) -> Self {
        let mut bytes = Vec::with_capacity(16 + count * 40);
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        msgpack::write_array_header(&mut bytes, 2);
        msgpack::write_uint(&mut bytes, DISPATCH_KIND);
        msgpack::write_array_header(&mut bytes, count);
        DispatchFrame { bytes }
    }

    pub fn add(&mut self, py: Python<'_>, entry: &EntryData) -> PyResult<()> {
        entry.write(py, &mut self.bytes)
    }

    /// The frame's bytes, with the little-endian body length in front.
    pub fn finish<'py>(mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let body = (self.bytes.len() - 4) as u32;
        self.bytes[..4].copy_from_slice(&body.to_le_bytes());
        PyBytes::new(py, &self.bytes)
    }
}

/// `key` if it is text UTF-8 can carry (`UnicodeEncodeError` for lone surrogates), so that
/// writing it into a DISPATCH frame later cannot fail.
fn checked_key(py: Python<'_>, key: Option<Py<PyString>>) -> PyResult<Option<Py<PyString>>> {
    if let Some(key) = &key {
        key.bind(py).to_str()?;
    }
    Ok(key)
}

/// One accepted message, as the supervisor's Python code sees it.
///
/// Made by the supervisor for messages that wait outside the queue (behind their
/// ordering key, for a retry, as crash suspects) and handed back by `EntryQueue` and
/// `InFlight` when one leaves them. Pushing it into an `EntryQueue` copies it in: the
/// queue's copy is the one that moves on.
///
/// Not tracked by the cyclic GC: nothing it holds (a key string, a `submit` future)
/// refers back to it.
#[pyclass(name = "Entry", module = "sluiceway._core")]
pub struct PyEntry {
    pub(crate) data: EntryData,
}

#[pymethods]
impl PyEntry {
    #[new]
    #[pyo3(signature = (seq, priority, enqueued_at, key, future, payload, enqueued, attempt = 0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        seq: u64,
        priority: usize,
        enqueued_at: f64,
        key: Option<Py<PyString>>,
        future: Option<Py<PyAny>>,
        payload: &Bound<'_, PyBytes>,
        enqueued: f64,
        attempt: u32,
    ) -> PyResult<Self> {
        let py = payload.py();
        Ok(PyEntry {
            data: EntryData {
                seq,
                attempt,
                priority,
                enqueued_at,
                key: checked_key(py, key)?,
                future,
                payload: Payload::whole(payload.as_bytes()),
                enqueued,
            },
        })
    }

    /// One entry per payload of `batch[start:stop]`, with seqs from `first_seq` on.
    #[staticmethod]
    #[pyo3(signature = (batch, start, stop, first_seq, priority, enqueued_at, key, enqueued))]
    #[allow(clippy::too_many_arguments)]
    fn batch<'py>(
        py: Python<'py>,
        batch: &PyPayloadBatch,
        start: usize,
        stop: usize,
        first_seq: u64,
        priority: usize,
        enqueued_at: f64,
        key: Option<Py<PyString>>,
        enqueued: f64,
    ) -> PyResult<Bound<'py, PyList>> {
        let key = checked_key(py, key)?;
        let entries = batch
            .entries(
                py,
                start,
                stop,
                first_seq,
                priority,
                enqueued_at,
                key.as_ref(),
                enqueued,
            )?
            .into_iter()
            .map(|data| Py::new(py, PyEntry { data }));
        PyList::new(py, entries.collect::<PyResult<Vec<_>>>()?)
    }

    #[getter]
    fn seq(&self) -> u64 {
        self.data.seq
    }

    /// Deliveries so far.
    #[getter]
    fn attempt(&self) -> u32 {
        self.data.attempt
    }

    #[setter]
    fn set_attempt(&mut self, value: u32) {
        self.data.attempt = value;
    }

    #[getter]
    fn priority(&self) -> usize {
        self.data.priority
    }

    /// Wall clock at acceptance.
    #[getter]
    fn enqueued_at(&self) -> f64 {
        self.data.enqueued_at
    }

    #[getter]
    fn key(&self, py: Python<'_>) -> Option<Py<PyString>> {
        self.data.key.as_ref().map(|k| k.clone_ref(py))
    }

    /// The `submit` future waiting for the result, or None.
    #[getter]
    fn future(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.data.future.as_ref().map(|f| f.clone_ref(py))
    }

    /// The payload's msgpack bytes.
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.data.payload.bytes())
    }

    /// Supervisor clock at acceptance.
    #[getter]
    fn enqueued(&self) -> f64 {
        self.data.enqueued
    }

    fn __repr__(&self) -> String {
        format!(
            "Entry(seq={}, attempt={}, priority={})",
            self.data.seq, self.data.attempt, self.data.priority
        )
    }
}
