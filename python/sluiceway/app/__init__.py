"""The bot runtime: settings, the signed webhook ingress, the handler context and ``Bot``.

``sluiceway run module:bot`` starts a ``Runtime`` (``sluiceway.app.runtime``): the webhook
ingress, the engine's workers running the bot, the sender and the monitor.
"""

from sluiceway.app.bot import Bot as Bot
from sluiceway.app.context import Context as Context
from sluiceway.app.context import ReplyPending as ReplyPending
from sluiceway.app.context import SendHandle as SendHandle
from sluiceway.app.inbound import InboundMessage as InboundMessage
from sluiceway.app.priority import KeywordClassifier as KeywordClassifier
from sluiceway.app.settings import DEFAULT_HIGH_PRIORITY_KEYWORDS as DEFAULT_HIGH_PRIORITY_KEYWORDS
from sluiceway.app.settings import Settings as Settings
from sluiceway.app.settings import load_settings as load_settings

__all__ = [
    "DEFAULT_HIGH_PRIORITY_KEYWORDS",
    "Bot",
    "Context",
    "InboundMessage",
    "KeywordClassifier",
    "ReplyPending",
    "SendHandle",
    "Settings",
    "load_settings",
]
