//! `ByteLRU.get` and `ByteLRU.lookup` as raw `METH_FASTCALL` methods: the cache hit path.
//!
//! A PyO3 method pays, on every call, for its generic argument parser (which copies
//! the arguments into a table and checks each parameter) and for its trampoline
//! (thread-local attach count, reference pool check, result and error plumbing): in
//! an abi3 build that is more than the whole hash lookup, and it made a hit slower
//! than cachebox's with a small cache. The methods here serve the common calls —
//! `get(key)`, `get(key, now)` and `get(key, now=t)` with an exact `str` key, a `float`,
//! `int` or `None` for `now`, and an entry that is absent, fresh or stale — with a few
//! stable-ABI calls and no Python object created or freed.
//!
//! Every other call (`key=` by keyword, a `str` subclass, another type for `now`, bad
//! arguments, an expired entry that must be dropped, a contended lock) is forwarded
//! unchanged to PyO3's own method, which this module keeps when it takes its place in
//! the type: so behaviour, errors and messages are PyO3's, and only the speed differs.

use super::{hash32, same_key, PyByteLRU};
use crate::clock;
use crate::lru_cache::store::Read;
use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::panic::PanicException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};
use std::ffi::{CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::OnceLock;

/// The arguments of a `METH_FASTCALL | METH_KEYWORDS` call of a `ByteLRU` method.
///
/// CPython passes `nargs` positional arguments at `args`, followed by one value per
/// name in the tuple `kwnames` (NULL when there are none), all live for the call;
/// `slf` is a `ByteLRU` (the method descriptor checks it, and the class cannot be
/// subclassed); the thread is attached.
#[derive(Clone, Copy)]
struct Call {
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: usize,
    kwnames: *mut ffi::PyObject,
}

impl Call {
    /// Argument `i`: positional below `nargs`, then the keyword values in order.
    ///
    /// # Safety
    /// `i < nargs + len(kwnames)`.
    #[inline(always)]
    unsafe fn arg(&self, i: usize) -> *mut ffi::PyObject {
        // SAFETY: in bounds by the caller's promise.
        unsafe { *self.args.add(i) }
    }
}

/// One method served here, and PyO3's method it forwards the other calls to.
struct FastMethod {
    name: &'static CStr,
    /// PyO3's method descriptor, set when this one takes its place.
    pyo3_method: OnceLock<Py<PyAny>>,
}

/// `get`: a stale entry is a miss; returns the value or `None`.
static GET: FastMethod = FastMethod {
    name: c"get",
    pyo3_method: OnceLock::new(),
};

/// `lookup`: a stale entry is returned; returns `(value, stale)` or `None`.
static LOOKUP: FastMethod = FastMethod {
    name: c"lookup",
    pyo3_method: OnceLock::new(),
};

/// The interned `"now"`, the keyword name CPython passes (interned) for `now=`.
static NOW: OnceLock<Py<PyString>> = OnceLock::new();

/// Puts the fast `get` and `lookup` in `ByteLRU`'s type, in place of PyO3's (kept to
/// forward to), with PyO3's docstring and text signature. Idempotent.
pub fn install(py: Python<'_>) -> PyResult<()> {
    let ty = py.get_type::<PyByteLRU>();
    NOW.get_or_init(|| PyString::intern(py, "now").unbind());
    GET.install(&ty, read::<false>)?;
    LOOKUP.install(&ty, read::<true>)
}

impl FastMethod {
    fn install(
        &'static self,
        ty: &Bound<'_, PyType>,
        meth: ffi::PyCFunctionFastWithKeywords,
    ) -> PyResult<()> {
        if self.pyo3_method.get().is_some() {
            return Ok(());
        }
        let py = ty.py();
        let name = self.name.to_str().expect("method names are ASCII");
        let pyo3_method = ty.getattr(name)?;
        // `name(signature)\n--\n\n` before the docstring is where CPython reads
        // `__text_signature__` from (and `inspect.signature`, and stubtest).
        let doc = format!(
            "{name}{}\n--\n\n{}",
            pyo3_method
                .getattr("__text_signature__")?
                .extract::<String>()?,
            pyo3_method.getattr("__doc__")?.extract::<String>()?,
        );
        let doc = CString::new(doc).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        // The type refers to its methods' definitions for as long as the process
        // lives, so these are leaked on purpose (once per method).
        let def = Box::leak(Box::new(ffi::PyMethodDef {
            ml_name: self.name.as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunctionFastWithKeywords: meth,
            },
            ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
            ml_doc: doc.into_raw(),
        }));
        // SAFETY: `ty` is a live type object and `def` lives forever; the result is a
        // new reference or NULL with an error set.
        let descr = unsafe {
            Bound::from_owned_ptr_or_err(py, ffi::PyDescr_NewMethod(ty.as_type_ptr(), def))?
        };
        // The method is kept before the type can call ours, which forwards to it.
        let _ = self.pyo3_method.set(pyo3_method.unbind());
        ty.setattr(name, descr)
    }

    /// The result of the call, served here when it is a common one, else by PyO3's method.
    ///
    /// # Safety
    /// `call` is as CPython passes it (see [`Call`]).
    #[inline(always)]
    unsafe fn serve_or_forward<const ACCEPT_STALE: bool>(&self, call: Call) -> *mut ffi::PyObject {
        match catch_unwind(AssertUnwindSafe(move || unsafe {
            serve::<ACCEPT_STALE>(call)
        })) {
            Ok(Some(result)) => result,
            Ok(None) => unsafe { self.forward(call) },
            Err(payload) => raise_panic(payload),
        }
    }

    /// Calls PyO3's method with the same arguments.
    #[cold]
    #[inline(never)]
    unsafe fn forward(&self, call: Call) -> *mut ffi::PyObject {
        Python::attach(|py| {
            // SAFETY: see `Call`.
            let result = unsafe { self.forward_attached(py, call) };
            match result {
                Ok(value) => value.into_ptr(),
                Err(err) => {
                    err.restore(py);
                    ptr::null_mut()
                }
            }
        })
    }

    unsafe fn forward_attached<'py>(
        &self,
        py: Python<'py>,
        call: Call,
    ) -> PyResult<Bound<'py, PyAny>> {
        let method = self
            .pyo3_method
            .get()
            .expect("installed before the type can call it")
            .bind(py);
        // SAFETY: see `Call`.
        unsafe {
            let arg = |i: usize| Borrowed::from_ptr(py, call.arg(i));
            let nargs = call.nargs;
            let mut positional = Vec::with_capacity(1 + nargs);
            positional.push(Borrowed::from_ptr(py, call.slf));
            positional.extend((0..nargs).map(arg));
            let positional = PyTuple::new(py, positional)?;
            let keywords = match Borrowed::from_ptr_or_opt(py, call.kwnames) {
                None => None,
                Some(names) => {
                    let names = names.cast_unchecked::<PyTuple>();
                    let keywords = PyDict::new(py);
                    for (j, name) in names.iter().enumerate() {
                        keywords.set_item(name, arg(nargs + j))?;
                    }
                    Some(keywords)
                }
            };
            method.call(positional, keywords.as_ref())
        }
    }
}

/// The common calls of `get` (or `lookup` if `ACCEPT_STALE`); `None` for any other, with nothing done or counted.
#[inline(always)]
unsafe fn serve<const ACCEPT_STALE: bool>(call: Call) -> Option<*mut ffi::PyObject> {
    // SAFETY (whole body): see `Call`.
    unsafe {
        let now = match (call.nargs, call.kwnames.is_null()) {
            (1, true) => None,
            (2, true) => Some(call.arg(1)),
            (1, false) if only_now(call.kwnames) => Some(call.arg(1)),
            _ => return None,
        };
        let now = match now {
            Some(t) if t != ffi::Py_None() => Some(finite_seconds(t)?),
            _ => None,
        };
        let key = call.arg(0);
        if ffi::Py_TYPE(key) != ptr::addr_of_mut!(ffi::PyUnicode_Type) {
            return None;
        }
        let py = Python::assume_attached();
        let this = Borrowed::from_ptr(py, call.slf).cast_unchecked::<PyByteLRU>();
        let this = this.get();
        let hash = hash32(key);
        let mut store = this.store.try_lock()?;
        let read =
            store.read_unexpired(hash, same_key(key), ACCEPT_STALE, || clock::resolve(now))?;
        Some(match read {
            Read::Fresh(value) if !ACCEPT_STALE => new_ref(value.as_ptr()),
            Read::Fresh(value) => ffi::PyTuple_Pack(2, value.as_ptr(), ffi::Py_False()),
            Read::Stale(value) => ffi::PyTuple_Pack(2, value.as_ptr(), ffi::Py_True()),
            Read::Miss => new_ref(ffi::Py_None()),
        })
    }
}

/// The C entry point of `get` (or of `lookup` if `ACCEPT_STALE`).
unsafe extern "C" fn read<const ACCEPT_STALE: bool>(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let method = if ACCEPT_STALE { &LOOKUP } else { &GET };
    let call = Call {
        slf,
        args,
        nargs: nargs as usize,
        kwnames,
    };
    // SAFETY: CPython calls this as a `METH_FASTCALL | METH_KEYWORDS` method of `ByteLRU`.
    unsafe { method.serve_or_forward::<ACCEPT_STALE>(call) }
}

/// Whether the keyword names are exactly `("now",)` (as CPython interns it).
#[inline(always)]
unsafe fn only_now(kwnames: *mut ffi::PyObject) -> bool {
    let Some(now) = NOW.get() else { return false };
    // SAFETY: `kwnames` is a live tuple; item 0 exists when its size is 1.
    unsafe { ffi::PyTuple_Size(kwnames) == 1 && ffi::PyTuple_GetItem(kwnames, 0) == now.as_ptr() }
}

/// The value of an exact `float` or `int` when it is finite; `None` for anything else
/// (PyO3's method then converts it, or raises the error).
#[inline(always)]
unsafe fn finite_seconds(obj: *mut ffi::PyObject) -> Option<f64> {
    // SAFETY: `obj` is live and the thread is attached.
    unsafe {
        let ty = ffi::Py_TYPE(obj);
        let t = if ty == ptr::addr_of_mut!(ffi::PyFloat_Type) {
            // Cannot fail on an exact float.
            ffi::PyFloat_AsDouble(obj)
        } else if ty == ptr::addr_of_mut!(ffi::PyLong_Type) {
            let t = ffi::PyLong_AsDouble(obj);
            if t == -1.0 && !ffi::PyErr_Occurred().is_null() {
                // Too large for a float: leave the error to PyO3's method.
                ffi::PyErr_Clear();
                return None;
            }
            t
        } else {
            return None;
        };
        t.is_finite().then_some(t)
    }
}

/// `obj` with its reference count raised, to return.
#[inline(always)]
unsafe fn new_ref(obj: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: `obj` is live and the thread is attached.
    unsafe { ffi::Py_INCREF(obj) };
    obj
}

/// Raises `PanicException` for a panic caught in the fast path, as PyO3 would.
#[cold]
fn raise_panic(payload: Box<dyn std::any::Any + Send>) -> *mut ffi::PyObject {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic from Rust code".to_owned());
    Python::attach(|py| PanicException::new_err(msg).restore(py));
    ptr::null_mut()
}
