"""The engine's exceptions, all derived from ``sluiceway.errors.SluicewayError``."""

from __future__ import annotations

from sluiceway.errors import SluicewayError


class Backpressure(SluicewayError):
    """``enqueue_nowait`` found the queue over its high-water mark (and not yet back at the low one)."""


class UnencodablePayload(SluicewayError, TypeError):
    """``enqueue_message`` was given a payload msgpack cannot encode (refused before it is accepted)."""


class EngineNotRunning(SluicewayError):
    """The engine was used before ``start()`` or after ``shutdown()``."""


class WorkerStartupError(SluicewayError):
    """A worker process could not start: its handler or setup hook failed to import or run."""


class HandlerError(SluicewayError):
    """A handler's exception that could not be carried across processes as itself.

    ``submit`` raises the handler's own exception when it can be pickled, and this otherwise;
    ``error_type`` and ``traceback`` keep what the worker saw.
    """

    def __init__(self, error_type: str, message: str, traceback: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.traceback = traceback


class MessageDeadLettered(SluicewayError):
    """``submit``'s message ended in the dead-letter queue without an exception to re-raise (its
    worker crashed or hung on every attempt)."""


class DuplicateMessage(SluicewayError):
    """``accept(..., dedup_key=...)`` was given a key already accepted within ``dedup_window``:
    nothing was accepted (``Accepted.committed`` is False; its ``result`` raises this)."""


class BrokerUnavailable(SluicewayError, ConnectionError):
    """The Redis broker could not be reached (or answered an error): the message was not accepted.

    The runtime's ingress answers 503, and Meta re-delivers it later."""
