"""sluiceway: move chat messages fast and safely."""

from sluiceway._core import __version__ as __version__
from sluiceway.whatsapp import BatchSender as BatchSender
from sluiceway.whatsapp import BreakerConfig as BreakerConfig
from sluiceway.whatsapp import DeadLetter as DeadLetter
from sluiceway.whatsapp import OutboundMessage as OutboundMessage
from sluiceway.whatsapp import RateLimits as RateLimits
from sluiceway.whatsapp import RecipientLimit as RecipientLimit
from sluiceway.whatsapp import SendError as SendError
from sluiceway.whatsapp import SenderConfig as SenderConfig
from sluiceway.whatsapp import WhatsAppCloudTransport as WhatsAppCloudTransport

__all__ = [
    "BatchSender",
    "BreakerConfig",
    "DeadLetter",
    "OutboundMessage",
    "RateLimits",
    "RecipientLimit",
    "SendError",
    "SenderConfig",
    "WhatsAppCloudTransport",
    "__version__",
]
