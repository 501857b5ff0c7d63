"""The property bot's answers: read the Units, Viewings and Maintenance sheets, write bookings and tickets.

Everything goes through a ``SheetStore`` (in the running bot, the cached ``SheetsClient`` of the
handler context: reads are served from the cache, and every write invalidates what it touched).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import msgspec

from sluiceway import DEFAULT_HIGH_PRIORITY_KEYWORDS, KeywordClassifier
from sluiceway.examples.property_bot.nlu import Parsed, parse

T = TypeVar("T")

UNITS_RANGE = "Units!A2:F"
VIEWINGS_RANGE = "Viewings!A2:E"
#: ticket, unit, reported_by, description, priority, status, reported_at, photo (a media id, for photo tickets)
MAINTENANCE_RANGE = "Maintenance!A2:H"
#: Viewings rows start at sheet row 2 (row 1 is the header).
FIRST_DATA_ROW = 2
#: Maintenance requests with these words are filed as urgent (the same words the ingress prioritises).
_URGENT = KeywordClassifier(DEFAULT_HIGH_PRIORITY_KEYWORDS)
#: At most this many units or slots are listed in one reply (WhatsApp is read on a phone).
MAX_LISTED = 5

HELP = (
    "Hi! I can help with:\n"
    '• availability: "is 4B available?"\n'
    '• search: "2 bed under $2,000", "studio at Harbor View"\n'
    '• rent: "rent for unit 12"\n'
    '• viewings: "view 3D on Saturday at 2pm"\n'
    '• maintenance: "sink leaking in 4B"'
)


class SheetStore(Protocol):
    """The subset of ``SheetsClient`` the property bot uses."""

    async def get_values(self, spreadsheet_id: str, cell_range: str, /) -> Sequence[Sequence[Any]]: ...

    async def append_values(self, spreadsheet_id: str, cell_range: str, values: list[list[Any]], /) -> object: ...

    async def update_values(self, spreadsheet_id: str, cell_range: str, values: list[list[Any]], /) -> object: ...


class Answer(msgspec.Struct, frozen=True):
    """What the desk says to a tenant, and what it understood."""

    intent: str
    text: str
    urgent: bool


class Unit(msgspec.Struct, frozen=True):
    unit: str
    building: str
    bedrooms: int
    rent: int
    status: str
    available_from: str

    def describe(self) -> str:
        beds = "studio" if self.bedrooms == 0 else f"{self.bedrooms} bed"
        return f"{self.unit} ({self.building}, {beds})"


class Slot(msgspec.Struct, frozen=True):
    row: int
    unit: str
    date: str
    time: str
    status: str
    booked_by: str

    def label(self) -> str:
        return f"{_day(self.date)} {self.time}"


def _cell(row: Sequence[Any], index: int) -> str:
    return str(row[index]).strip() if index < len(row) else ""


def _int(text: str) -> int:
    try:
        return int(float(text.replace("$", "").replace(",", "")))
    except ValueError:
        return 0


def _day(iso: str) -> str:
    try:
        return dt.date.fromisoformat(iso).strftime("%a %-d %b")
    except ValueError:
        return iso


def units_from(rows: Sequence[Sequence[Any]]) -> list[Unit]:
    """Units sheet rows as ``Unit`` records (blank rows skipped)."""
    return [
        Unit(_cell(r, 0).upper(), _cell(r, 1), _int(_cell(r, 2)), _int(_cell(r, 3)), _cell(r, 4).lower(), _cell(r, 5))
        for r in rows
        if _cell(r, 0)
    ]


def slots_from(rows: Sequence[Sequence[Any]]) -> list[Slot]:
    """Viewings sheet rows as ``Slot`` records, keeping their sheet row numbers."""
    return [
        Slot(FIRST_DATA_ROW + i, _cell(r, 0).upper(), _cell(r, 1), _cell(r, 2), _cell(r, 3).lower(), _cell(r, 4))
        for i, r in enumerate(rows)
        if _cell(r, 0)
    ]


def ticket_id(message_id: str) -> str:
    """A ticket number derived from the inbound message id, so a retried message never files twice."""
    return "M-" + hashlib.sha256(message_id.encode()).hexdigest()[:8].upper()


def _unit_status(unit: Unit) -> str:
    if unit.status == "available":
        when = f"from {_day(unit.available_from)}" if unit.available_from else "now"
        return f"{unit.describe()} is available {when} at ${unit.rent:,}/month."
    if unit.status == "reserved":
        return (
            f"{unit.describe()} is reserved (an application is "
            f"pending); it may free up from {_day(unit.available_from)}."
        )
    return f"{unit.describe()} is currently let."


def _not_found(unit_id: str) -> str:
    return f"I couldn't find unit {unit_id}. Units look like 4B (Maple Court), 12 (Harbor View) or 203 (Cedar House)."


class _ParsedRows(Generic[T]):
    """``parse(rows)``, remembered while the sheet's rows stay equal.

    Every cache hit decodes a fresh copy of the rows, so identity says nothing; comparing
    the rows with the last ones is a C-level loop, ~8x cheaper than parsing them again
    (measured on the example's Units sheet), and the records are frozen, so sharing is safe.
    """

    def __init__(self, parse: Callable[[Sequence[Sequence[Any]]], T]) -> None:
        self._parse = parse
        self._last: tuple[Sequence[Sequence[Any]], T] | None = None

    def __call__(self, rows: Sequence[Sequence[Any]]) -> T:
        last = self._last
        if last is None or last[0] != rows:
            last = self._last = (rows, self._parse(rows))
        return last[1]


#: The last Units and Viewings sheets parsed in this process (a desk is made per message).
_UNITS_BY_ID = _ParsedRows(lambda rows: {u.unit: u for u in units_from(rows)})
_SLOTS = _ParsedRows(slots_from)


class PropertyDesk:
    """Answers one tenant message from the sheets of ``spreadsheet_id``.

    Example::

        desk = PropertyDesk(ctx.sheets, ctx.settings.spreadsheet_id)
        answer = await desk.answer(msg.text, msg.sender, msg.id)
        await ctx.reply(answer.text)

    Warning: a viewing booking reads the slot and then writes it (Sheets has no
    compare-and-set), so two tenants booking the same slot in the same instant can both be
    told yes; per-tenant ordering does not serialise different tenants.
    """

    def __init__(self, store: SheetStore, spreadsheet_id: str) -> None:
        self._store = store
        self._spreadsheet_id = spreadsheet_id

    async def _units(self) -> dict[str, Unit]:
        return _UNITS_BY_ID(await self._store.get_values(self._spreadsheet_id, UNITS_RANGE))

    async def _slots(self, unit_id: str) -> list[Slot]:
        rows = await self._store.get_values(self._spreadsheet_id, VIEWINGS_RANGE)
        return [s for s in _SLOTS(rows) if s.unit == unit_id]

    async def answer(self, text: str, sender: str, message_id: str, today: dt.date | None = None) -> Answer:
        """The reply to ``text`` from ``sender``; ``message_id`` makes writes idempotent."""
        parsed = parse(text, today or dt.date.today())
        reply = await self._reply(parsed, text, sender, message_id)
        return Answer(parsed.intent, reply, parsed.intent == "maintenance" and _URGENT(text) == "high")

    async def _reply(self, parsed: Parsed, text: str, sender: str, message_id: str) -> str:
        if parsed.intent == "help":
            return HELP
        if parsed.intent == "search":
            return await self._search(parsed)
        if parsed.intent == "maintenance":
            return await self._maintenance(parsed, text, sender, message_id)
        if parsed.intent == "unknown":
            return "Sorry, I didn't get that. " + HELP
        if parsed.unit is None:
            return "Which unit do you mean? For example: 4B, unit 12 or 203."
        units = await self._units()
        unit = units.get(parsed.unit)
        if unit is None:
            return _not_found(parsed.unit)
        if parsed.intent == "rent":
            return f"Rent for {unit.describe()} is ${unit.rent:,}/month."
        if parsed.intent == "viewing":
            return await self._book(unit, parsed, sender)
        return await self._availability(unit)

    async def _availability(self, unit: Unit) -> str:
        reply = _unit_status(unit)
        if unit.status != "available":
            return reply
        open_slots = [s for s in await self._slots(unit.unit) if s.status == "open"]
        if open_slots:
            listed = ", ".join(s.label() for s in open_slots[:MAX_LISTED])
            reply += f' Open viewings: {listed}. Reply e.g. "view {unit.unit} {open_slots[0].label()}" to book.'
        else:
            reply += " All viewing slots are booked for now."
        return reply

    async def _search(self, parsed: Parsed) -> str:
        units = [u for u in (await self._units()).values() if u.status == "available"]
        criteria = []
        if parsed.bedrooms is not None:
            units = [u for u in units if u.bedrooms == parsed.bedrooms]
            criteria.append("studio" if parsed.bedrooms == 0 else f"{parsed.bedrooms} bed")
        if parsed.max_rent is not None:
            units = [u for u in units if u.rent <= parsed.max_rent]
            criteria.append(f"up to ${parsed.max_rent:,}")
        if parsed.building is not None:
            units = [u for u in units if u.building == parsed.building]
            criteria.append(f"at {parsed.building}")
        wanted = " ".join(criteria) or "available"
        if not units:
            return f"No available units match {wanted} right now. Try a higher budget or another size."
        units.sort(key=lambda u: (u.rent, u.unit))
        listed = "\n".join(
            f"• {u.describe()}: ${u.rent:,}/month, from {_day(u.available_from)}" for u in units[:MAX_LISTED]
        )
        more = f"\n…and {len(units) - MAX_LISTED} more." if len(units) > MAX_LISTED else ""
        return f"{len(units)} unit{'s' if len(units) != 1 else ''} {wanted}:\n{listed}{more}"

    async def _maintenance(self, parsed: Parsed, text: str, sender: str, message_id: str) -> str:
        if parsed.unit is None:
            return 'Sorry to hear that. Which unit is it? Please resend with your unit, e.g. "leak in unit 4B".'
        ticket = ticket_id(message_id)
        rows = await self._store.get_values(self._spreadsheet_id, MAINTENANCE_RANGE)
        urgent = _URGENT(text) == "high"
        if all(_cell(r, 0) != ticket for r in rows):
            now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            row = [ticket, parsed.unit, sender, text, "high" if urgent else "normal", "open", now]
            await self._store.append_values(self._spreadsheet_id, MAINTENANCE_RANGE, [row])
        reply = f"Thanks, maintenance ticket {ticket} is logged for {parsed.unit}"
        if urgent:
            return reply + " as URGENT; the on-call technician is being notified. If anyone is in danger, call 911."
        return reply + ". We'll be in touch to arrange a visit."

    async def _book(self, unit: Unit, parsed: Parsed, sender: str) -> str:
        if unit.status != "available":
            return _unit_status(unit) + " Viewings are only offered for available units."
        slots = await self._slots(unit.unit)
        mine = [s for s in slots if s.status == "booked" and s.booked_by == sender and _matches(s, parsed)]
        if mine and (parsed.date or parsed.time):
            return f"You're booked to view {unit.unit} on {mine[0].label()}."
        open_slots = [s for s in slots if s.status == "open"]
        if not open_slots:
            return f"Sorry, all viewing slots for {unit.unit} are booked."
        if parsed.date is None and parsed.time is None:
            listed = ", ".join(s.label() for s in open_slots[:MAX_LISTED])
            return f"When would you like to view {unit.unit}? Open slots: {listed}."
        chosen = [s for s in open_slots if _matches(s, parsed)]
        if not chosen:
            listed = ", ".join(s.label() for s in open_slots[:MAX_LISTED])
            return f"That time isn't open for {unit.unit}. Open slots: {listed}."
        slot = chosen[0]
        await self._store.update_values(self._spreadsheet_id, f"Viewings!D{slot.row}:E{slot.row}", [["booked", sender]])
        return f"Booked: viewing of {unit.describe()} on {slot.label()}. See you there!"


def _matches(slot: Slot, parsed: Parsed) -> bool:
    if parsed.date is not None and slot.date != parsed.date.isoformat():
        return False
    return parsed.time is None or slot.time == parsed.time
