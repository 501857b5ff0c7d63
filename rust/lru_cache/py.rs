//! The Python binding of the store: `sluiceway._core.ByteLRU`.

use super::store::{slot_bytes, Read, Store, TooLarge};
use crate::clock;
use parking_lot::lock_api::RawMutex as _;
use parking_lot::{Mutex, MutexGuard};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

mod fastcall;

pub use fastcall::install as install_fast_reads;

type PyStore = Store<Py<PyString>, Py<PyBytes>>;

/// The hash table's share of an entry: a `u32` slot index plus a control byte per
/// bucket, at hashbrown's load factor (7/8 just before it doubles, 7/16 just after)
/// rounded up.
const TABLE_BYTES_PER_ENTRY: usize = 8;

/// CPython's headers of the key `str` (a compact ASCII str: 40-byte header, 8-byte
/// hash and state, the NUL) and the value `bytes` (32-byte header and the NUL),
/// which the cache keeps alive and so holds in memory beside the characters counted.
const OBJECT_HEADER_BYTES: usize = 49 + 33;

/// Fixed bytes charged per entry on top of its key, value and tag bytes: one slab
/// slot (key and value pointers, deadlines, cost, list links, hash, tag handle),
/// its share of the hash table, and the key and value objects' headers.
pub const ENTRY_OVERHEAD: u64 = (slot_bytes::<Py<PyString>, Py<PyBytes>>()
    + TABLE_BYTES_PER_ENTRY
    + OBJECT_HEADER_BYTES) as u64;

/// Bytes charged per tag of an entry on top of the tag's name: the entry's tag
/// record and link, its place in the tag's member list, and allocator rounding.
pub const TAG_OVERHEAD: u64 = 48;

/// A least-recently-used cache of `str` keys to `bytes` values under an exact byte budget.
///
/// `ByteLRU(max_bytes, default_ttl=None)`
///
/// How it works
/// ------------
/// Entries live in a slab of fixed-size slots threaded by a doubly linked list in
/// recency order; a hash table maps each key to its slot. A slot's hot half (key,
/// value, links, hash: 32 bytes, one cache line) is apart from its cold half
/// (deadlines, cost), so a hit on an entry without TTL touches a single line. The key and value objects
/// themselves are stored (never copied), so a hit returns the very `bytes` object
/// that was set. Keys are hashed with the hash a `str` caches in itself and compared
/// by identity before equality. Every call that stores an entry first evicts least
/// recently used entries until the new one fits, so `bytes_used <= max_bytes` holds
/// after every call.
///
/// Each entry is fresh for `ttl` seconds (`default_ttl` when not given, `None` =
/// forever), then *stale* for `stale_ttl` seconds, then expired:
///
/// - `get(key)` returns fresh entries only;
/// - `lookup(key)` also returns stale ones, as `(value, True)`, for
///   stale-while-revalidate;
/// - an expired entry is never returned; it is dropped (an *expiration*) when a read
///   touches it or by `purge_expired()`; until then it still counts in `len()`,
///   `in`, `bytes_used` and may be evicted.
///
/// Every time-dependent method takes `now=` (seconds on any monotonic scale);
/// without it the cache reads `time.monotonic()`'s clock, and only for entries that
/// have a TTL.
///
/// Byte accounting
/// ---------------
/// An entry costs exactly
/// `len(key.encode()) + len(value) + sum(len(t.encode()) + ByteLRU.TAG_OVERHEAD for t in set(tags)) + ByteLRU.ENTRY_OVERHEAD`
/// bytes, and `bytes_used` is the sum over held entries. `ENTRY_OVERHEAD` (146 bytes on
/// 64-bit builds) is one slot (key and value pointers, two deadlines, cost, list
/// links, hash, tag handle), its share of the hash table and the CPython headers of
/// the key and value objects the cache keeps alive; `TAG_OVERHEAD` (48) is the tag
/// index's bookkeeping per tag of an entry. So `bytes_used` tracks the memory the
/// entries really hold, not just their payload. An entry costing more than
/// `max_bytes` on its own is refused with `ValueError`.
///
/// Tags
/// ----
/// `set(..., tags=("sheet:1", ...))` files the entry under each tag (a set: a repeat
/// counts once); `invalidate_tag(tag)` drops those entries in O(entries with the
/// tag), with no scan. Tag bookkeeping is kept only for entries that have tags.
///
/// Complexity
/// ----------
/// | operation                     | time                              |
/// |-------------------------------|-----------------------------------|
/// | `get`, `lookup`, `in`         | O(1)                              |
/// | `set`                         | O(1 + tags + entries evicted)     |
/// | `invalidate`                  | O(1 + its tags)                   |
/// | `invalidate_tag`, `tagged`    | O(entries with the tag)           |
/// | `purge_expired`               | O(entries ever held at once)      |
/// | `len`, `bytes_used`, `stats`  | O(1)                              |
///
/// Thread safety: every method runs under one internal lock and is atomic.
///
/// Example
/// -------
/// >>> cache = ByteLRU(max_bytes=1 << 20, default_ttl=60.0)
/// >>> cache.set("sheet:1!A1:C9", b"...", stale_ttl=300.0, tags=("sheet:1",))
/// >>> cache.get("sheet:1!A1:C9")
/// b'...'
/// >>> cache.invalidate_tag("sheet:1")
/// 1
///
/// Warning: the per-entry constants assume compact ASCII keys; a non-ASCII key's
/// larger header is not charged. Expired entries hold their bytes until a read
/// touches them or `purge_expired()` runs.
#[pyclass(name = "ByteLRU", module = "sluiceway._core", frozen)]
pub struct PyByteLRU {
    max_bytes: u64,
    default_ttl: Option<f64>,
    store: Mutex<PyStore>,
}

/// Folds the hash a `str` caches in itself into the store's 32-bit hash.
///
/// # Safety
/// `key` is a live exact `str` and the thread is attached.
#[inline]
unsafe fn hash32(key: *mut ffi::PyObject) -> u32 {
    // SAFETY: hashing an exact `str` cannot fail (so never -1).
    let h = unsafe { ffi::PyObject_Hash(key) } as u64;
    (h ^ (h >> 32)) as u32
}

/// Key equality: identity first (the common case of a key object reused), then
/// `str` equality, which runs no Python code for exact `str` objects.
#[inline]
fn same_key(key: *mut ffi::PyObject) -> impl Fn(&Py<PyString>) -> bool {
    move |stored| {
        let stored = stored.as_ptr();
        // SAFETY: both are live exact `str` objects and the caller is attached.
        stored == key
            || match unsafe { ffi::PyObject_RichCompareBool(stored, key, ffi::Py_EQ) } {
                1 => true,
                0 => false,
                _ => {
                    // Comparing two exact `str` cannot fail; never leave an error set.
                    unsafe { ffi::PyErr_Clear() };
                    false
                }
            }
    }
}

/// An exact `str` copy of `key`, a `str` subclass instance whose hash and equality
/// could otherwise run Python code while the store is locked; `TypeError` for non-`str`.
#[cold]
fn exact_copy<'py>(key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyString>> {
    if !key.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "ByteLRU keys must be str, not {}",
            key.get_type().name()?
        )));
    }
    // SAFETY: `key` is a live `str` instance; PyUnicode_FromObject returns a new
    // reference to an exact `str` copy, or NULL with an error set.
    unsafe {
        Ok(
            Bound::from_owned_ptr_or_err(key.py(), ffi::PyUnicode_FromObject(key.as_ptr()))?
                .cast_into_unchecked::<PyString>(),
        )
    }
}

/// Binds `$name` to `$key` as an exact `str`: the object itself or, for a `str`
/// subclass, an exact copy; returns `TypeError` from the enclosing function otherwise.
macro_rules! exact_key {
    ($name:ident = $key:expr) => {
        let copy;
        let $name = match $key.cast_exact::<PyString>() {
            Ok(exact) => exact,
            Err(_) => {
                copy = exact_copy($key)?;
                &copy
            }
        };
    };
}

/// `value` as an exact `bytes` object (a `bytes` subclass is copied).
fn exact_bytes<'py>(value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    if let Ok(exact) = value.cast_exact::<PyBytes>() {
        return Ok(exact.clone());
    }
    match value.cast::<PyBytes>() {
        Ok(sub) => Ok(PyBytes::new(value.py(), sub.as_bytes())),
        Err(_) => Err(PyTypeError::new_err(format!(
            "ByteLRU values must be bytes, not {}",
            value.get_type().name()?
        ))),
    }
}

/// The tag names of `tags` (any iterable of `str` except a lone `str`), sorted and
/// without repeats; empty for `None`.
fn tag_names<'py>(tags: Option<&Bound<'py, PyAny>>) -> PyResult<Vec<Bound<'py, PyString>>> {
    let Some(tags) = tags else {
        return Ok(Vec::new());
    };
    if tags.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "tags must be a sequence of str, not a single str (write tags=(tag,))",
        ));
    }
    let iter = tags.try_iter().map_err(|_| {
        let name = tags
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default();
        PyTypeError::new_err(format!("tags must be a sequence of str, not {name}"))
    })?;
    let mut names = Vec::new();
    for item in iter {
        let item = item?;
        match item.cast_into::<PyString>() {
            Ok(name) => names.push(name),
            Err(err) => {
                return Err(PyTypeError::new_err(format!(
                    "each tag must be str, not {}",
                    err.into_inner().get_type().name()?
                )))
            }
        }
    }
    Ok(names)
}

/// `d` itself when it is a duration (finite or infinite, never negative or NaN).
fn check_duration(name: &str, d: f64) -> PyResult<f64> {
    if d >= 0.0 {
        Ok(d)
    } else {
        Err(PyValueError::new_err(format!(
            "{name} must be >= 0 seconds, got {d}"
        )))
    }
}

/// `now` itself when it is a usable instant (finite).
#[inline]
fn check_now(now: Option<f64>) -> PyResult<Option<f64>> {
    match now {
        Some(t) if !t.is_finite() => Err(PyValueError::new_err(format!(
            "now must be a finite number of seconds, got {t}"
        ))),
        _ => Ok(now),
    }
}

impl PyByteLRU {
    /// `(value, stale)` for the entry of `key`, stale ones only if `accept_stale`.
    #[inline(always)]
    fn read(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        now: Option<f64>,
        accept_stale: bool,
    ) -> PyResult<Option<(Py<PyBytes>, bool)>> {
        let now = check_now(now)?;
        exact_key!(key = key);
        // SAFETY: `key` is an exact `str`.
        let hash = unsafe { hash32(key.as_ptr()) };
        let mut store = self.lock(py);
        Ok(
            match store.read(hash, same_key(key.as_ptr()), accept_stale, || {
                clock::resolve(now)
            }) {
                Read::Fresh(v) => Some((v.clone_ref(py), false)),
                Read::Stale(v) => Some((v.clone_ref(py), true)),
                Read::Miss => None,
            },
        )
    }

    /// Locks the store without ever blocking while attached to the interpreter.
    ///
    /// Every critical section below is short, runs no Python code (keys are exact
    /// `str`, values exact `bytes`, and freeing them runs no finalizer) and never
    /// detaches, so under the GIL a holder never waits on the interpreter and
    /// `try_lock` always succeeds: staying attached saves the cost of a detach and
    /// re-attach on every call. Only where threads really run in parallel (a
    /// free-threaded interpreter) can the lock be contended; we then detach while
    /// waiting so a stop-the-world pause is never held up by a waiting thread.
    #[inline]
    fn lock(&self, py: Python<'_>) -> MutexGuard<'_, PyStore> {
        if let Some(guard) = self.store.try_lock() {
            return guard;
        }
        // SAFETY: the raw lock is taken here and handed to a guard that releases it.
        py.detach(|| unsafe { self.store.raw().lock() });
        unsafe { self.store.make_guard_unchecked() }
    }
}

#[pymethods]
impl PyByteLRU {
    /// Fixed bytes charged per entry: this cache's bookkeeping and the key and value objects' headers.
    #[classattr]
    const ENTRY_OVERHEAD: u64 = ENTRY_OVERHEAD;

    /// Fixed bytes charged per tag of an entry for the tag index's bookkeeping.
    #[classattr]
    const TAG_OVERHEAD: u64 = TAG_OVERHEAD;

    #[new]
    #[pyo3(signature = (max_bytes, default_ttl=None))]
    fn new(max_bytes: i64, default_ttl: Option<f64>) -> PyResult<Self> {
        if max_bytes <= 0 {
            return Err(PyValueError::new_err(format!(
                "max_bytes must be > 0, got {max_bytes}"
            )));
        }
        if let Some(ttl) = default_ttl {
            check_duration("default_ttl", ttl)?;
        }
        let max_bytes = max_bytes as u64;
        Ok(PyByteLRU {
            max_bytes,
            default_ttl,
            store: Mutex::new(Store::new(max_bytes)),
        })
    }

    /// The byte budget.
    #[getter]
    fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Bytes charged for the entries held (see the class docstring for the formula).
    #[getter]
    fn bytes_used(&self, py: Python<'_>) -> u64 {
        self.lock(py).bytes_used()
    }

    /// Store `value`: fresh for `ttl` (default `default_ttl`; `None` = forever), then stale for `stale_ttl`.
    #[pyo3(
        signature = (key, value, ttl=None, stale_ttl=0.0, tags=None, now=None),
        text_signature = "(self, key, value, ttl=None, stale_ttl=0.0, tags=(), now=None)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn set(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        ttl: Option<f64>,
        stale_ttl: f64,
        tags: Option<&Bound<'_, PyAny>>,
        now: Option<f64>,
    ) -> PyResult<()> {
        let now = check_now(now)?;
        let ttl = match ttl {
            Some(ttl) => Some(check_duration("ttl", ttl)?),
            None => self.default_ttl,
        };
        check_duration("stale_ttl", stale_ttl)?;
        let value = exact_bytes(value)?;
        let tags = tag_names(tags)?;
        let mut names = tags
            .iter()
            .map(|t| t.to_str())
            .collect::<PyResult<Vec<&str>>>()?;
        names.sort_unstable();
        names.dedup();
        exact_key!(key = key);
        let key_bytes = key.to_str()?.len() as u64;
        let value_bytes = value.as_bytes().len() as u64;
        let tag_bytes: u64 = names.iter().map(|t| t.len() as u64 + TAG_OVERHEAD).sum();
        let cost = key_bytes + value_bytes + tag_bytes + ENTRY_OVERHEAD;
        // SAFETY: `key` is an exact `str`.
        let hash = unsafe { hash32(key.as_ptr()) };
        let mut store = self.lock(py);
        store
            .insert(
                hash,
                same_key(key.as_ptr()),
                key.clone().unbind(),
                value.unbind(),
                cost,
                ttl,
                stale_ttl,
                names.iter().copied(),
                || clock::resolve(now),
            )
            .map_err(|TooLarge { cost, max_bytes }| {
                PyValueError::new_err(format!(
                    "entry costs {cost} bytes (key {key_bytes} + value {value_bytes} \
                     + tags {tag_bytes} + overhead {ENTRY_OVERHEAD}), more than max_bytes={max_bytes}"
                ))
            })
    }

    /// The value if present and fresh, else `None`.
    #[pyo3(signature = (key, now=None))]
    fn get(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        now: Option<f64>,
    ) -> PyResult<Option<Py<PyBytes>>> {
        Ok(self.read(py, key, now, false)?.map(|(value, _)| value))
    }

    /// `(value, stale)` for a fresh or stale entry, `None` when absent or past its stale window.
    #[pyo3(signature = (key, now=None))]
    fn lookup(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        now: Option<f64>,
    ) -> PyResult<Option<(Py<PyBytes>, bool)>> {
        self.read(py, key, now, true)
    }

    /// Drop the entry for `key`; whether one was held.
    fn invalidate(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        exact_key!(key = key);
        // SAFETY: `key` is an exact `str`.
        let hash = unsafe { hash32(key.as_ptr()) };
        Ok(self.lock(py).remove(hash, same_key(key.as_ptr())))
    }

    /// Drop every entry carrying `tag`; returns how many.
    fn invalidate_tag(&self, py: Python<'_>, tag: &str) -> usize {
        self.lock(py).remove_tag(tag)
    }

    /// Keys of the entries carrying `tag`, in no particular order.
    fn tagged(&self, py: Python<'_>, tag: &str) -> Vec<Py<PyString>> {
        let store = self.lock(py);
        store
            .tagged(tag)
            .into_iter()
            .map(|k| k.clone_ref(py))
            .collect()
    }

    /// Drop entries past their stale window; returns how many.
    #[pyo3(signature = (now=None))]
    fn purge_expired(&self, py: Python<'_>, now: Option<f64>) -> PyResult<usize> {
        let now = clock::resolve(check_now(now)?);
        Ok(self.lock(py).purge_expired(now))
    }

    /// Drop every entry; the `stats()` counters are kept.
    fn clear(&self, py: Python<'_>) {
        self.lock(py).clear();
    }

    /// hits, misses, stale_hits, evictions, expirations, entries, bytes_used, max_bytes.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (stats, entries, bytes_used) = {
            let store = self.lock(py);
            (store.stats(), store.len() as u64, store.bytes_used())
        };
        let dict = PyDict::new(py);
        for (name, value) in [
            ("hits", stats.hits),
            ("misses", stats.misses),
            ("stale_hits", stats.stale_hits),
            ("evictions", stats.evictions),
            ("expirations", stats.expirations),
            ("entries", entries),
            ("bytes_used", bytes_used),
            ("max_bytes", self.max_bytes),
        ] {
            dict.set_item(name, value)?;
        }
        Ok(dict)
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        self.lock(py).len()
    }

    /// Whether an entry for `key` is held (expired ones too, until dropped); no side effect.
    fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        if !key.is_instance_of::<PyString>() {
            return Ok(false);
        }
        exact_key!(key = key);
        // SAFETY: `key` is an exact `str`.
        let hash = unsafe { hash32(key.as_ptr()) };
        Ok(self.lock(py).contains(hash, same_key(key.as_ptr())))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let store = self.lock(py);
        format!(
            "ByteLRU(entries={}, bytes_used={}, max_bytes={})",
            store.len(),
            store.bytes_used(),
            self.max_bytes
        )
    }
}
