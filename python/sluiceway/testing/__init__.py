"""Test doubles shipped with sluiceway: a manual clock and local emulators of the
WhatsApp Cloud and Google Sheets APIs. Used by tests and the demo, never by library code.

``sluiceway.testing.handlers`` holds engine handlers (record, fail, crash, hang, block)
that tests run in real worker processes; import it by module path.
"""

from sluiceway.testing.clock import ManualClock as ManualClock
from sluiceway.testing.scripted_transport import ScriptedTransport as ScriptedTransport
from sluiceway.testing.waiting import wait_until as wait_until
from sluiceway.testing.whatsapp_emulator import WhatsAppEmulator as WhatsAppEmulator
from sluiceway.testing.sheets_emulator import SheetsEmulator as SheetsEmulator

__all__ = [
    "ManualClock",
    "ScriptedTransport",
    "SheetsEmulator",
    "WhatsAppEmulator",
    "wait_until",
]
