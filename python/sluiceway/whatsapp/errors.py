"""The Cloud API's errors, classified by what a sender should do about them.

Meta reports most failures as HTTP 400 with a numeric ``error.code`` in a JSON
envelope and no ``Retry-After`` header, and recommends building error handling on
``code`` rather than on the HTTP status or the title ("WhatsApp error codes",
https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes). The
codes used here come from that page and from the throughput and pair-rate guides
(https://developers.facebook.com/docs/whatsapp/throughput,
https://developers.facebook.com/docs/whatsapp/cloud-api/overview#pair-rate-limits):

========  ===========================================  ===============
code      meaning                                      category
========  ===========================================  ===============
130429    Cloud API throughput reached                 THROUGHPUT
131056    pair rate limit (same sender → recipient)    PAIR_RATE
80007     WhatsApp Business Account rate limit         THROUGHPUT
4         application-level call-count limit           THROUGHPUT
131048    spam rate limit                              THROUGHPUT
131057    account in maintenance (throughput upgrade)  TRANSIENT
1, 2      API unknown / service temporarily down       TRANSIENT
131000    something went wrong                         TRANSIENT
131016    service overloaded                           TRANSIENT
0, 190    authentication failed / token expired        AUTH
100       invalid parameter                            PERMANENT
131026    message undeliverable                        PERMANENT
131047    more than 24 h since the user last replied   PERMANENT
131049    per-user marketing limit (meta advises not   PERMANENT
          to retry soon)
131051    unsupported message type                     PERMANENT
132000+   template errors (132001: template name or    PERMANENT
          language does not exist)
========  ===========================================  ===============

Anything else is PERMANENT when the HTTP status is 4xx and TRANSIENT when it is 5xx
or the request never got an answer (timeout, connection reset).
"""

from __future__ import annotations

import enum

from sluiceway.errors import SluicewayError


class ErrorCategory(enum.Enum):
    """What the sender does with a failed send."""

    #: Sent too fast for the business number or account: slow the global rate, retry.
    THROUGHPUT = "throughput"
    #: Sent too fast to one recipient: back that recipient off, retry.
    PAIR_RATE = "pair_rate"
    #: Temporary provider or network trouble: retry with backoff, counts against the breaker.
    TRANSIENT = "transient"
    #: The access token is invalid or expired: open the breaker and alert; messages wait.
    AUTH = "auth"
    #: This request can never succeed: dead-letter it with the provider's message.
    PERMANENT = "permanent"


_BY_CODE: dict[int, ErrorCategory] = {
    130429: ErrorCategory.THROUGHPUT,
    80007: ErrorCategory.THROUGHPUT,
    4: ErrorCategory.THROUGHPUT,
    131048: ErrorCategory.THROUGHPUT,
    131056: ErrorCategory.PAIR_RATE,
    131057: ErrorCategory.TRANSIENT,
    1: ErrorCategory.TRANSIENT,
    2: ErrorCategory.TRANSIENT,
    131000: ErrorCategory.TRANSIENT,
    131016: ErrorCategory.TRANSIENT,
    0: ErrorCategory.AUTH,
    190: ErrorCategory.AUTH,
    # Named though a 4xx is PERMANENT anyway: both are common with templates and the 24-hour window, and must
    # stay permanent even if Meta answers them with another status.
    131047: ErrorCategory.PERMANENT,
    132001: ErrorCategory.PERMANENT,
}


def classify(code: int | None, http_status: int | None) -> ErrorCategory:
    """The category of an error from its Graph ``code`` and HTTP status (either may be missing).

    Example::

        classify(130429, 400)   # ErrorCategory.THROUGHPUT
        classify(None, None)    # TRANSIENT: no answer at all (timeout, reset)
    """
    if code is not None:
        known = _BY_CODE.get(code)
        if known is not None:
            return known
    if http_status is None or http_status >= 500 or http_status == 429:
        return ErrorCategory.TRANSIENT
    if http_status == 401:
        return ErrorCategory.AUTH
    return ErrorCategory.PERMANENT


class WhatsAppError(SluicewayError):
    """Base class of the WhatsApp sender's errors."""


class SenderClosed(WhatsAppError, RuntimeError):
    """The sender was closed: it accepts and starts nothing more.

    Also a ``RuntimeError``, which is what callers caught before this class existed.
    """


class SendError(WhatsAppError):
    """A send the provider refused or never answered.

    ``code`` is the Graph ``error.code`` (``None`` when no envelope came back),
    ``http_status`` the HTTP status (``None`` for timeouts and connection errors),
    ``details`` the provider's ``error_data.details``. ``uncertain`` is true when the request
    was written but no answer came (a timeout or a broken connection after writing): the
    provider may have sent the message, so it must not be sent again blindly. The message
    never contains the access token or the request headers.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        details: str | None = None,
        fbtrace_id: str | None = None,
        uncertain: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        self.details = details
        self.fbtrace_id = fbtrace_id
        self.uncertain = uncertain
        self.category = classify(code, http_status)

    def __str__(self) -> str:
        where = (
            f"code {self.code}"
            if self.code is not None
            else f"HTTP {self.http_status}"
            if self.http_status
            else "no response"
        )
        return f"{self.message} ({where}, {self.category.value})"

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments need an explicit reduce to survive pickling to workers.
        return (_rebuild, (self.message, self.code, self.http_status, self.details, self.fbtrace_id, self.uncertain))


def _rebuild(
    message: str,
    code: int | None,
    http_status: int | None,
    details: str | None,
    fbtrace_id: str | None,
    uncertain: bool = False,
) -> SendError:
    return SendError(
        message, code=code, http_status=http_status, details=details, fbtrace_id=fbtrace_id, uncertain=uncertain
    )
