"""A rate-limited, self-healing sender for the WhatsApp Cloud API.

``BatchSender`` (dispatch rounds under global and per-recipient limits, adaptive
throttling, retries, circuit breaker, failed sends) over a ``Transport`` such as
``WhatsAppCloudTransport`` (on :class:`sluiceway.http.HttpClient`); messages are msgspec Structs mirroring the API's
JSON.
"""

from sluiceway.whatsapp.batch_sender import BatchSender as BatchSender
from sluiceway.whatsapp.breaker import BreakerState as BreakerState
from sluiceway.whatsapp.breaker import CircuitBreaker as CircuitBreaker
from sluiceway.whatsapp.cloud_api import SendResult as SendResult
from sluiceway.whatsapp.cloud_api import Transport as Transport
from sluiceway.whatsapp.cloud_api import WhatsAppCloudTransport as WhatsAppCloudTransport
from sluiceway.whatsapp.config import BreakerConfig as BreakerConfig
from sluiceway.whatsapp.config import RateLimits as RateLimits
from sluiceway.whatsapp.config import RecipientLimit as RecipientLimit
from sluiceway.whatsapp.config import SenderConfig as SenderConfig
from sluiceway.whatsapp.errors import ErrorCategory as ErrorCategory
from sluiceway.whatsapp.errors import SenderClosed as SenderClosed
from sluiceway.whatsapp.errors import SendError as SendError
from sluiceway.whatsapp.errors import WhatsAppError as WhatsAppError
from sluiceway.whatsapp.errors import classify as classify
from sluiceway.whatsapp.media import DownloadedMedia as DownloadedMedia
from sluiceway.whatsapp.media import MediaClient as MediaClient
from sluiceway.whatsapp.media import MediaCorrupt as MediaCorrupt
from sluiceway.whatsapp.media import MediaError as MediaError
from sluiceway.whatsapp.media import MediaExpired as MediaExpired
from sluiceway.whatsapp.media import MediaNotFound as MediaNotFound
from sluiceway.whatsapp.media import MediaTooLarge as MediaTooLarge
from sluiceway.whatsapp.media import MediaTypeMismatch as MediaTypeMismatch
from sluiceway.whatsapp.media import MediaUnavailable as MediaUnavailable
from sluiceway.whatsapp.messages import Interactive as Interactive
from sluiceway.whatsapp.messages import InteractiveText as InteractiveText
from sluiceway.whatsapp.messages import Language as Language
from sluiceway.whatsapp.messages import ListRow as ListRow
from sluiceway.whatsapp.messages import ListSection as ListSection
from sluiceway.whatsapp.messages import Media as Media
from sluiceway.whatsapp.messages import OutboundMessage as OutboundMessage
from sluiceway.whatsapp.messages import ReadReceipt as ReadReceipt
from sluiceway.whatsapp.messages import ReplyButton as ReplyButton
from sluiceway.whatsapp.messages import Template as Template
from sluiceway.whatsapp.messages import Text as Text
from sluiceway.whatsapp.outcomes import FailedSend as FailedSend
from sluiceway.whatsapp.outcomes import LeftOver as LeftOver
from sluiceway.whatsapp.outcomes import MessageState as MessageState
from sluiceway.whatsapp.records import PRIORITIES as PRIORITIES
from sluiceway.whatsapp.retry import SendRetryPolicy as SendRetryPolicy
from sluiceway.whatsapp.webhooks import Status as Status
from sluiceway.whatsapp.webhooks import WebhookMessage as WebhookMessage
from sluiceway.whatsapp.webhooks import WebhookPayload as WebhookPayload

__all__ = [
    "PRIORITIES",
    "BatchSender",
    "BreakerConfig",
    "BreakerState",
    "CircuitBreaker",
    "DownloadedMedia",
    "ErrorCategory",
    "FailedSend",
    "Interactive",
    "InteractiveText",
    "Language",
    "LeftOver",
    "ListRow",
    "ListSection",
    "Media",
    "MediaClient",
    "MediaCorrupt",
    "MediaError",
    "MediaExpired",
    "MediaNotFound",
    "MediaTooLarge",
    "MediaTypeMismatch",
    "MediaUnavailable",
    "MessageState",
    "OutboundMessage",
    "RateLimits",
    "ReadReceipt",
    "RecipientLimit",
    "ReplyButton",
    "SendError",
    "SendResult",
    "SendRetryPolicy",
    "SenderClosed",
    "SenderConfig",
    "Status",
    "Template",
    "Text",
    "Transport",
    "WebhookMessage",
    "WebhookPayload",
    "WhatsAppCloudTransport",
    "WhatsAppError",
    "classify",
]
