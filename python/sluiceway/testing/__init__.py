"""Test doubles shipped with sluiceway: a manual clock, local emulators of the WhatsApp Cloud
and Google Sheets APIs, and ``BotTester`` to unit-test a bot's handler. Used by tests and the
demo, never by library code.

``sluiceway.testing.handlers`` holds engine handlers (record, fail, crash, hang, block)
that tests run in real worker processes; import it by module path. The emulators are
imported on first use, so that a worker loading those handlers does not load their dependencies.
"""

from typing import TYPE_CHECKING

from sluiceway.testing.clock import ManualClock as ManualClock
from sluiceway.testing.waiting import wait_until as wait_until

if TYPE_CHECKING:
    from sluiceway.testing.bot_tester import BotReply as BotReply
    from sluiceway.testing.bot_tester import BotTester as BotTester
    from sluiceway.testing.scripted_transport import ScriptedTransport as ScriptedTransport
    from sluiceway.testing.sheets_emulator import SheetsEmulator as SheetsEmulator
    from sluiceway.testing.whatsapp_emulator import WhatsAppEmulator as WhatsAppEmulator
else:
    from sluiceway._lazy import lazy_exports

    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "BotReply": "sluiceway.testing.bot_tester",
            "BotTester": "sluiceway.testing.bot_tester",
            "ScriptedTransport": "sluiceway.testing.scripted_transport",
            "SheetsEmulator": "sluiceway.testing.sheets_emulator",
            "WhatsAppEmulator": "sluiceway.testing.whatsapp_emulator",
        },
    )

__all__ = [
    "BotReply",
    "BotTester",
    "ManualClock",
    "ScriptedTransport",
    "SheetsEmulator",
    "WhatsAppEmulator",
    "wait_until",
]
