//! Python bindings of the rate limiters (`sluiceway._core`).
//!
//! Every call here is O(1) or amortised O(1) and takes well under a microsecond,
//! so the GIL stays attached: detaching and re-attaching would cost more than the
//! work itself. Thread safety comes from the `parking_lot::Mutex` each limiter
//! holds, never from the GIL, so the module is free-threading ready.

use parking_lot::{Mutex, MutexGuard};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::composite::{non_empty, time_until_all, try_acquire_all, Limit};
use super::keyed::KeyedLimiter;
use super::token_bucket::TokenBucket;
use super::window::WindowLimiter;
use super::{count, finite_time, LimitError};
use crate::clock;

impl From<LimitError> for PyErr {
    fn from(err: LimitError) -> PyErr {
        PyValueError::new_err(err.to_string())
    }
}

/// The caller's `now`, or the monotonic clock; `ValueError` if not finite.
fn resolve(now: Option<f64>) -> PyResult<f64> {
    Ok(finite_time(clock::resolve(now))?)
}

/// A token bucket: `rate` tokens per second accrue up to `burst`; starts full.
///
/// Guarantee: over any interval of length `T`, at most `burst + rate * T`
/// tokens are taken. Bursts up to `burst` pass at once, then the pace is `rate`.
///
/// How it works: the bucket stores its tokens and the time it last counted them;
/// every call first adds `elapsed * rate` (capped at `burst`), so there is no
/// timer and no background thread. `try_acquire(n)` takes `n` tokens if they are
/// all held, else takes none. `time_until(n)` is 0.0 exactly when `try_acquire(n)`
/// would succeed, and acquiring at `now + time_until(n, now)` succeeds.
/// `set_rate` first counts tokens at the old rate, so accrued tokens are kept.
///
/// Time: `now` is seconds on any monotonic scale (default: `time.monotonic()`);
/// keep to one scale per limiter (the constructor's `now` included). A `now`
/// earlier than the latest seen counts as the latest, so a clock step back
/// never refunds tokens; waits are measured from the latest time seen.
///
/// Errors: `ValueError` for `rate`/`burst`/`n` not finite and > 0, for
/// `n > burst` (a request that could never pass) and for a non-finite `now`.
///
/// | operation                       | time | memory |
/// |---------------------------------|------|--------|
/// | `try_acquire`, `time_until`     | O(1) | O(1)   |
/// | `tokens`, `set_rate`            | O(1) | O(1)   |
///
/// Example:
///     bucket = TokenBucket(rate=80.0, burst=80.0)
///     if not bucket.try_acquire():
///         await asyncio.sleep(bucket.time_until())
///
/// Warning: a bucket lets `burst` requests through at once after an idle
/// spell; when a provider counts requests per fixed window, use `WindowLimiter`.
#[pyclass(name = "TokenBucket", module = "sluiceway._core", frozen)]
pub struct PyTokenBucket {
    state: Mutex<TokenBucket>,
}

#[pymethods]
impl PyTokenBucket {
    #[new]
    #[pyo3(signature = (rate, burst, now=None))]
    fn new(rate: f64, burst: f64, now: Option<f64>) -> PyResult<Self> {
        Ok(Self {
            state: Mutex::new(TokenBucket::new(rate, burst, resolve(now)?)?),
        })
    }

    #[getter]
    fn rate(&self) -> f64 {
        self.state.lock().rate()
    }

    #[getter]
    fn burst(&self) -> f64 {
        self.state.lock().burst()
    }

    /// Take `n` tokens if all are held at `now`; returns whether it did.
    #[pyo3(signature = (n=1.0, now=None))]
    fn try_acquire(&self, n: f64, now: Option<f64>) -> PyResult<bool> {
        let now = resolve(now)?;
        Ok(self.state.lock().try_acquire(n, now)?)
    }

    /// Seconds until `n` tokens are held (0.0 if they are now); `ValueError` if `n > burst`.
    #[pyo3(signature = (n=1.0, now=None))]
    fn time_until(&self, n: f64, now: Option<f64>) -> PyResult<f64> {
        let now = resolve(now)?;
        Ok(self.state.lock().time_until(n, now)?)
    }

    /// Tokens held at `now`.
    #[pyo3(signature = (now=None))]
    fn tokens(&self, now: Option<f64>) -> PyResult<f64> {
        let now = resolve(now)?;
        Ok(self.state.lock().tokens(now))
    }

    /// Change the refill rate from `now` on (adaptive throttling); tokens accrued so far are kept.
    #[pyo3(signature = (rate, now=None))]
    fn set_rate(&self, rate: f64, now: Option<f64>) -> PyResult<()> {
        let now = resolve(now)?;
        Ok(self.state.lock().set_rate(rate, now)?)
    }

    fn __repr__(&self) -> String {
        let b = self.state.lock();
        format!("TokenBucket(rate={:?}, burst={:?})", b.rate(), b.burst())
    }
}

/// An exact sliding-window log: never more than `limit` acquisitions in any
/// half-open interval `[t, t + window)`.
///
/// Guarantee: an acquisition admitted at `s` counts against every `now` with
/// `now - s < window` and no longer counts from `now = s + window` on. So for
/// the admitted instants in order, the k-th and the (k + limit)-th are always
/// at least `window` apart; no interval of length `window` that includes its
/// start but not its end holds more than `limit` of them. Unlike fixed windows
/// or token buckets there is no boundary burst: this is the exact form of a
/// provider's "N per second / minute / hour".
///
/// How it works: the admitted instants inside the window are kept oldest first
/// as runs `(instant, count)` (a batch `n` is one run). Each call drops the runs
/// that left the window, then admits if `held + n <= limit`. `time_until(n)` is
/// the time at which enough of the oldest runs expire.
///
/// Time: as `TokenBucket` (a `now` earlier than the latest seen counts as the
/// latest; waits are measured from the latest time seen).
///
/// | operation       | time                 | memory                           |
/// |-----------------|----------------------|----------------------------------|
/// | `try_acquire`   | amortised O(1)       | O(distinct instants in window) <= O(limit) |
/// | `time_until(n)` | O(runs covering n)   |                                  |
/// | `tokens`        | amortised O(1)       |                                  |
///
/// Example:
///     per_second = WindowLimiter(limit=80, window=1.0)
///     per_second.try_acquire()
///
/// Warning: memory grows with the acquisitions inside the window (up to `limit`
/// runs of 16 bytes); for limits in the millions prefer a `TokenBucket`.
#[pyclass(name = "WindowLimiter", module = "sluiceway._core", frozen)]
pub struct PyWindowLimiter {
    state: Mutex<WindowLimiter>,
}

#[pymethods]
impl PyWindowLimiter {
    #[new]
    fn new(limit: i64, window: f64) -> PyResult<Self> {
        Ok(Self {
            state: Mutex::new(WindowLimiter::new(limit, window)?),
        })
    }

    #[getter]
    fn limit(&self) -> u32 {
        self.state.lock().limit()
    }

    #[getter]
    fn window(&self) -> f64 {
        self.state.lock().window()
    }

    /// Admit `n` acquisitions at `now` if the window has room; returns whether it did.
    #[pyo3(signature = (n=1, now=None))]
    fn try_acquire(&self, n: i64, now: Option<f64>) -> PyResult<bool> {
        let now = resolve(now)?;
        Ok(self.state.lock().try_acquire(n, now)?)
    }

    /// Seconds until `n` acquisitions would be admitted; `ValueError` if `n > limit`.
    #[pyo3(signature = (n=1, now=None))]
    fn time_until(&self, n: i64, now: Option<f64>) -> PyResult<f64> {
        let now = resolve(now)?;
        Ok(self.state.lock().time_until(n, now)?)
    }

    /// Acquisitions admitted right now.
    #[pyo3(signature = (now=None))]
    fn tokens(&self, now: Option<f64>) -> PyResult<f64> {
        let now = resolve(now)?;
        Ok(self.state.lock().tokens(now) as f64)
    }

    /// Change the limit (adaptive throttling); past acquisitions still count.
    fn set_limit(&self, limit: i64) -> PyResult<()> {
        Ok(self.state.lock().set_limit(limit)?)
    }

    fn __repr__(&self) -> String {
        let w = self.state.lock();
        format!(
            "WindowLimiter(limit={}, window={:?})",
            w.limit(),
            w.window()
        )
    }
}

/// A member of a `RateLimiter`: the Python object, shared with the caller.
enum Member {
    Bucket(Py<PyTokenBucket>),
    Window(Py<PyWindowLimiter>),
}

impl Member {
    fn object(&self, py: Python<'_>) -> Py<PyAny> {
        match self {
            Self::Bucket(b) => b.clone_ref(py).into_any(),
            Self::Window(w) => w.clone_ref(py).into_any(),
        }
    }

    /// Address of the member's lock: the global order in which locks are taken.
    fn lock_address(&self) -> usize {
        match self {
            Self::Bucket(b) => &b.get().state as *const _ as usize,
            Self::Window(w) => &w.get().state as *const _ as usize,
        }
    }
}

enum Guard<'a> {
    Bucket(MutexGuard<'a, TokenBucket>),
    Window(MutexGuard<'a, WindowLimiter>),
}

impl std::ops::Deref for Guard<'_> {
    type Target = dyn Limit;

    fn deref(&self) -> &(dyn Limit + 'static) {
        match self {
            Self::Bucket(g) => &**g,
            Self::Window(g) => &**g,
        }
    }
}

impl std::ops::DerefMut for Guard<'_> {
    fn deref_mut(&mut self) -> &mut (dyn Limit + 'static) {
        match self {
            Self::Bucket(g) => &mut **g,
            Self::Window(g) => &mut **g,
        }
    }
}

/// Several limiters at once, atomically: a request is admitted only when every
/// limiter admits it, and then it is taken from all of them; otherwise from none.
///
/// Guarantee: each member keeps its own guarantee, and a refused `try_acquire`
/// leaves every member exactly as it was (bar the lazy refill/expiry any call
/// does). `RateLimiter.per(second=, minute=, hour=)` builds exact
/// `WindowLimiter`s of 1 s, 60 s and 3600 s, so "80 per second and 1000 per
/// hour" holds over every interval, not only on clock boundaries.
///
/// How it works: the members are the very objects given (also usable on their
/// own). Each call locks all of them in one global order (by address), so two
/// composites sharing members never deadlock, asks each whether it admits `n` at
/// one `now`, and only if all do, takes `n` from each. `time_until` is the
/// largest member wait: a member that admits keeps admitting as time passes.
///
/// | operation       | time                      |
/// |-----------------|---------------------------|
/// | `try_acquire`   | O(members), amortised     |
/// | `time_until(n)` | sum of member costs       |
///
/// Example:
///     limiter = RateLimiter.per(second=80, hour=250_000)
///     limiter.try_acquire()
///
/// Warning: a member used directly as well keeps its state shared with the
/// composite: acquisitions made on it count against the composite too.
#[pyclass(name = "RateLimiter", module = "sluiceway._core", frozen)]
pub struct PyRateLimiter {
    /// In the order given, for `limiters`.
    members: Vec<Member>,
    /// Indices into `members` in lock order.
    lock_order: Vec<usize>,
}

impl PyRateLimiter {
    fn from_members(members: Vec<Member>) -> PyResult<Self> {
        non_empty(members.len())?;
        let mut lock_order: Vec<usize> = (0..members.len()).collect();
        lock_order.sort_by_key(|&i| members[i].lock_address());
        for pair in lock_order.windows(2) {
            if members[pair[0]].lock_address() == members[pair[1]].lock_address() {
                return Err(LimitError::Duplicate {
                    index: pair[0].max(pair[1]),
                }
                .into());
            }
        }
        Ok(Self {
            members,
            lock_order,
        })
    }

    fn lock(&self, i: usize) -> Guard<'_> {
        match &self.members[i] {
            Member::Bucket(b) => Guard::Bucket(b.get().state.lock()),
            Member::Window(w) => Guard::Window(w.get().state.lock()),
        }
    }

    /// Lock every member in lock order and run `f` over them; up to three members
    /// (the `per(second=, minute=, hour=)` case) need no heap allocation.
    fn with_locked<R>(&self, f: impl FnOnce(&mut [Guard<'_>]) -> R) -> R {
        // Array elements are evaluated left to right, so locks follow `lock_order`.
        match *self.lock_order.as_slice() {
            [a] => f(&mut [self.lock(a)]),
            [a, b] => f(&mut [self.lock(a), self.lock(b)]),
            [a, b, c] => f(&mut [self.lock(a), self.lock(b), self.lock(c)]),
            _ => f(&mut self
                .lock_order
                .iter()
                .map(|&i| self.lock(i))
                .collect::<Vec<_>>()),
        }
    }
}

#[pymethods]
impl PyRateLimiter {
    #[new]
    fn new(limiters: &Bound<'_, PyAny>) -> PyResult<Self> {
        let mut members = Vec::new();
        for (index, item) in limiters.try_iter()?.enumerate() {
            let item = item?;
            if let Ok(b) = item.cast::<PyTokenBucket>() {
                members.push(Member::Bucket(b.clone().unbind()));
            } else if let Ok(w) = item.cast::<PyWindowLimiter>() {
                members.push(Member::Window(w.clone().unbind()));
            } else {
                return Err(PyTypeError::new_err(format!(
                    "limiters[{index}] must be a TokenBucket or a WindowLimiter, got {}",
                    item.get_type().name()?
                )));
            }
        }
        Self::from_members(members)
    }

    /// Exact sliding windows of 1 s, 60 s and 3600 s for the limits given (at least one).
    #[classmethod]
    #[pyo3(signature = (second=None, minute=None, hour=None))]
    fn per(
        _cls: &Bound<'_, pyo3::types::PyType>,
        py: Python<'_>,
        second: Option<i64>,
        minute: Option<i64>,
        hour: Option<i64>,
    ) -> PyResult<Self> {
        let mut members = Vec::new();
        for (name, limit, window) in [
            ("second", second, 1.0),
            ("minute", minute, 60.0),
            ("hour", hour, 3600.0),
        ] {
            if let Some(limit) = limit {
                count(name, limit, 1)?;
                members.push(Member::Window(Py::new(
                    py,
                    PyWindowLimiter::new(limit, window)?,
                )?));
            }
        }
        if members.is_empty() {
            return Err(PyValueError::new_err(
                "give at least one of second, minute, hour",
            ));
        }
        Self::from_members(members)
    }

    /// The member limiters, in the order given.
    #[getter]
    fn limiters(&self, py: Python<'_>) -> Vec<Py<PyAny>> {
        self.members.iter().map(|m| m.object(py)).collect()
    }

    /// Take `n` from every member if all admit it at `now`, else from none.
    #[pyo3(signature = (n=1, now=None))]
    fn try_acquire(&self, n: i64, now: Option<f64>) -> PyResult<bool> {
        let n = count("n", n, 1)?;
        let now = resolve(now)?;
        Ok(self.with_locked(|limits| try_acquire_all(limits, n, now))?)
    }

    /// Seconds until every member would admit `n`; `ValueError` if some member never could.
    #[pyo3(signature = (n=1, now=None))]
    fn time_until(&self, n: i64, now: Option<f64>) -> PyResult<f64> {
        let n = count("n", n, 1)?;
        let now = resolve(now)?;
        Ok(self.with_locked(|limits| time_until_all(limits, n, now))?)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let reprs: Vec<String> = self
            .members
            .iter()
            .map(|m| m.object(py).bind(py).repr().map(|r| r.to_string()))
            .collect::<PyResult<_>>()?;
        Ok(format!("RateLimiter([{}])", reprs.join(", ")))
    }
}

/// One exact sliding window per key (e.g. per recipient), holding at most
/// `max_keys` keys.
///
/// Guarantee: for every key still held, never more than `limit` acquisitions in
/// any half-open interval `[t, t + window)` (as `WindowLimiter`). Memory is
/// bounded by `max_keys` windows.
///
/// How it works: keys are kept in the order of their latest admitted acquisition.
/// Windows are refreshed lazily, only when their key is used. When a new key
/// arrives and `max_keys` are held, the key whose latest acquisition is oldest is
/// forgotten. Its window empties first, so if any key is idle (empty window) an
/// idle key goes, which loses nothing (`stats()["idle_evictions"]`). Only when
/// no key is idle does a key with acquisitions still counting go
/// (`stats()["active_evictions"]`). `purge_idle()` frees every idle key at once.
///
/// | operation                     | time                    | memory              |
/// |-------------------------------|-------------------------|---------------------|
/// | `try_acquire(key)`            | amortised O(1) + hash   | O(max_keys * limit) worst case |
/// | `time_until(key, n)`          | O(runs covering n)      |                     |
/// | `purge_idle`                  | O(idle keys)            |                     |
///
/// Example:
///     per_recipient = KeyedLimiter(limit=1, window=6.0)
///     per_recipient.try_acquire("+15551234567")
///
/// Warning: an active eviction relaxes the guarantee of the evicted key: it
/// restarts with an empty window while its old acquisitions would still count.
/// Size `max_keys` above the number of keys active within one `window` to avoid it.
#[pyclass(name = "KeyedLimiter", module = "sluiceway._core", frozen)]
pub struct PyKeyedLimiter {
    state: Mutex<KeyedLimiter>,
}

#[pymethods]
impl PyKeyedLimiter {
    #[new]
    #[pyo3(signature = (limit, window, max_keys=100_000))]
    fn new(limit: i64, window: f64, max_keys: i64) -> PyResult<Self> {
        Ok(Self {
            state: Mutex::new(KeyedLimiter::new(limit, window, max_keys)?),
        })
    }

    #[getter]
    fn limit(&self) -> u32 {
        self.state.lock().limit()
    }

    #[getter]
    fn window(&self) -> f64 {
        self.state.lock().window()
    }

    #[getter]
    fn max_keys(&self) -> u32 {
        self.state.lock().max_keys()
    }

    /// Admit `n` acquisitions for `key` at `now` if its window has room.
    #[pyo3(signature = (key, n=1, now=None))]
    fn try_acquire(&self, key: &str, n: i64, now: Option<f64>) -> PyResult<bool> {
        let now = resolve(now)?;
        Ok(self.state.lock().try_acquire(key, n, now)?)
    }

    /// Seconds until `key` would admit `n` (0.0 for a key not held); `ValueError` if `n > limit`.
    #[pyo3(signature = (key, n=1, now=None))]
    fn time_until(&self, key: &str, n: i64, now: Option<f64>) -> PyResult<f64> {
        let now = resolve(now)?;
        Ok(self.state.lock().time_until(key, n, now)?)
    }

    /// Forget every key whose window is empty at `now`; returns how many.
    #[pyo3(signature = (now=None))]
    fn purge_idle(&self, now: Option<f64>) -> PyResult<usize> {
        let now = resolve(now)?;
        Ok(self.state.lock().purge_idle(now))
    }

    /// keys, max_keys, idle_evictions, active_evictions.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (len, max_keys, stats) = {
            let s = self.state.lock();
            (s.len(), s.max_keys(), s.stats())
        };
        let d = PyDict::new(py);
        d.set_item("keys", len)?;
        d.set_item("max_keys", max_keys)?;
        d.set_item("idle_evictions", stats.idle_evictions)?;
        d.set_item("active_evictions", stats.active_evictions)?;
        Ok(d)
    }

    fn __len__(&self) -> usize {
        self.state.lock().len()
    }

    fn __repr__(&self) -> String {
        let k = self.state.lock();
        format!(
            "KeyedLimiter(limit={}, window={:?}, max_keys={})",
            k.limit(),
            k.window(),
            k.max_keys()
        )
    }
}
