//! Python exception types raised by the core.
//!
//! `SluicewayError` is the root of every sluiceway exception; the Python
//! package (`sluiceway.errors`) derives its own errors from it too.

use pyo3::create_exception;
use pyo3::exceptions::PyException;

create_exception!(
    sluiceway._core,
    SluicewayError,
    PyException,
    "Base class of every error sluiceway raises on purpose."
);
create_exception!(
    sluiceway._core,
    QueueFull,
    SluicewayError,
    "Raised by a bounded queue's push when it already holds `maxsize` items."
);
create_exception!(
    sluiceway._core,
    QueueEmpty,
    SluicewayError,
    "Raised by `pop()` on an empty queue."
);
