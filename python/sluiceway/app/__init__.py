"""The bot runtime: settings, the signed webhook ingress, the handler context and ``Bot``.

``sluiceway run module:bot`` starts a ``Runtime`` (``sluiceway.app.runtime``): the webhook
ingress, the engine's workers running the bot, the sender and the monitor.
"""

from sluiceway.app.bot import Bot as Bot
from sluiceway.app.context import Context as Context
from sluiceway.app.inbound import InboundMessage as InboundMessage
from sluiceway.app.settings import Settings as Settings
from sluiceway.app.settings import load_settings as load_settings

__all__ = ["Bot", "Context", "InboundMessage", "Settings", "load_settings"]
