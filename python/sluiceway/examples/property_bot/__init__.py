"""A WhatsApp property-management bot: tenants ask about units, rent, viewings and repairs.

The sample spreadsheet lives in ``data/`` as one CSV per sheet (``SHEETS``); ``sluiceway demo``
loads it into the Sheets emulator. ``app.py`` is the bot itself.
"""

from pathlib import Path

#: The sample spreadsheet: sheet name → CSV file.
SHEETS = {
    "Units": Path(__file__).parent / "data" / "units.csv",
    "Viewings": Path(__file__).parent / "data" / "viewings.csv",
    "Maintenance": Path(__file__).parent / "data" / "maintenance.csv",
    "Staff": Path(__file__).parent / "data" / "staff.csv",
}
