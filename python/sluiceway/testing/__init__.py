"""Test doubles shipped with sluiceway: a manual clock and local emulators of the
WhatsApp Cloud and Google Sheets APIs. Used by tests and the demo, never by library code.
"""

from sluiceway.testing.clock import ManualClock as ManualClock
from sluiceway.testing.scripted_transport import ScriptedTransport as ScriptedTransport
from sluiceway.testing.whatsapp_emulator import WhatsAppEmulator as WhatsAppEmulator

__all__ = ["ManualClock", "ScriptedTransport", "WhatsAppEmulator"]
