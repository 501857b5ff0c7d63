"""Test doubles shipped with sluiceway: a manual clock and local emulators of the
WhatsApp Cloud and Google Sheets APIs. Used by tests and the demo, never by library code.
"""

from sluiceway.testing.clock import ManualClock as ManualClock

__all__ = ["ManualClock"]
