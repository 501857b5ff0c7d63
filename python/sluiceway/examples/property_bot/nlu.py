"""Rule-based intent and entity extraction for how tenants really write on WhatsApp.

No model, no training data: a handful of regular expressions that cover the phrasings a
property manager actually receives ("is 4B free?", "2BR under 2k", "sink leaking in unit 12",
"can I see 3C sat at 2pm"). Every rule is here, so a wrong answer is easy to trace.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

import msgspec

Intent = Literal["help", "availability", "search", "rent", "maintenance", "viewing", "unknown"]

_WORD_NUMBERS = {"studio": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5}

#: Units written as digits plus one letter ("4B", "12a") are recognised anywhere; plain numbers
#: ("12", "203") only after "unit", "apt", "apartment", "flat", "#" or "no." (else "2 bed" and
#: "$2000" would look like units).
#: "k" is excluded from unit letters: "2k" is a budget.
_UNIT_LETTERED = re.compile(r"\b(?:unit|apt\.?|apartment|flat|#)?\s*(\d{1,3}[a-jl-z])\b", re.IGNORECASE)
_UNIT_NUMBERED = re.compile(
    r"(?:\b(?:unit|apt\.?|apartment|flat|no\.?|number|see|view|tour|visit|book)\s*#?\s*|#\s*)(\d{1,3})\b(?![:.]\d|\s*(?:am|pm)\b)",
    re.IGNORECASE,
)

_BEDROOMS = re.compile(
    r"\b(\d|one|two|three|four|five)[\s-]*(?:bed(?:room)?s?|br|bd|bdr|bdrm|b/r)\b|\b(studio)s?\b",
    re.IGNORECASE,
)

#: A number is a budget when it carries "$", "k", "/month", or follows a budget word.
_MONEY = re.compile(
    r"(?P<cue>under|below|less than|max(?:imum)?|up to|no more than|within|budget(?: of| is)?|around|about|<=?)?"
    r"\s*(?P<dollar>\$)?\s*(?P<amount>\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)\s*(?P<k>k\b)?"
    r"(?P<per>\s*(?:/|a|per)\s*(?:mo|month|mth)\b)?",
    re.IGNORECASE,
)

_BUILDINGS = {
    "maple": "Maple Court",
    "harbor": "Harbor View",
    "harbour": "Harbor View",
    "cedar": "Cedar House",
}

_BUILDING_NAMES = re.compile(r"\b(?:maple court|harbou?r view|cedar house)\b", re.IGNORECASE)

_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_WEEKDAY = re.compile(
    r"\b(next\s+)?(mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)(?:day|sday|nesday|rsday|urday)?\b", re.IGNORECASE
)
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_MONTH_NAME = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DATE_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_DATE_SLASH = re.compile(r"\b(\d{1,2})/(\d{1,2})(?:/(\d{2,4}))?\b")
_DATE_MONTH_DAY = re.compile(_MONTH_NAME + r"\s+(\d{1,2})(?:st|nd|rd|th)?\b", re.IGNORECASE)
_DATE_DAY_MONTH = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MONTH_NAME, re.IGNORECASE)
_TIME = re.compile(
    r"\b(?:at\s+)?(\d{1,2})(?::(\d{2}))?\s*(am|pm)\b|\b(?:at\s+)?(\d{1,2}):(\d{2})\b|\bat\s+(\d{1,2})\b", re.IGNORECASE
)

#: Problem words make a maintenance request; naming an appliance alone ("is there a dishwasher?") does not.
_MAINTENANCE = re.compile(
    r"\b(leak\w*|drip\w*|broke\w*|break\w*|not working|doesn'?t work|isn'?t working|won'?t|stopped|"
    r"clog\w*|block(?:ed|age)|repair\w*|fix|fixed|mou?ld\w*|damp|pests?|roach\w*|cockroach\w*|mice|mouse|rats?|"
    r"bugs|no (?:hot )?water|no heat\w*|no power|no a/?c|cold water only|lock(?:ed)? out|cracked|damaged|"
    r"maintenance|flood\w*|fire|smoke|smell\w*|emergency|burst|sparking|tripp\w*|out of order|"
    r"not (?:turning|coming) on|not draining|overflow\w*|problem with|issue with)\b",
    re.IGNORECASE,
)
_VIEWING = re.compile(
    r"\b(view(?:ing)?s?|tour\w*|visit\w*|viewing|see (?:it|the|unit|apt|apartment|flat|place|\d\w*)|"
    r"look (?:at|around)|show(?:ing)? (?:me|us)|book\w*|schedule\w*|appointment|come (?:by|see|and see))\b",
    re.IGNORECASE,
)
_RENT = re.compile(r"\b(rent\w*|price\w*|cost\w*|how much|monthly|per month|charge)\b", re.IGNORECASE)
_AVAILABILITY = re.compile(
    r"\b(availab\w*|vacan\w*|free|open|empty|still (?:there|up|on the market)|taken|move in|"
    r"when can i|ready|for rent|to rent|let)\b",
    re.IGNORECASE,
)
_SEARCH = re.compile(
    r"\b(looking for|look for|searching|search|need (?:a|an)|want (?:a|an)|any\w*|show me|list|options|"
    r"apartments?|apts?|flats?|units?|places?|homes?|studios?|cheap\w*|budget)\b",
    re.IGNORECASE,
)
_HELP = re.compile(
    r"^\s*(hi|hello|hey|hiya|yo|good (?:morning|afternoon|evening)|help|menu|start|options|\?+|"
    r"what can you do\??|how does this work\??|info)\W*$|\bhelp\b|\bwhat can you\b",
    re.IGNORECASE,
)


class Parsed(msgspec.Struct, frozen=True, kw_only=True):
    """What a tenant asked, and the details they gave."""

    intent: Intent
    unit: str | None = None
    bedrooms: int | None = None
    max_rent: int | None = None
    building: str | None = None
    date: dt.date | None = None
    time: str | None = None


def extract_unit(text: str) -> str | None:
    """The unit id mentioned in ``text`` ("4B", "unit 12" → "12"), upper-cased, or None."""
    match = _UNIT_NUMBERED.search(text)
    if match:
        return match.group(1)
    for match in _UNIT_LETTERED.finditer(text):
        # "2BR"/"2 bd" are bedrooms, not unit 2B: the letter must not start a bedroom word.
        if not _BEDROOMS.match(text, match.start(1)):
            return match.group(1).upper()
    return None


def extract_bedrooms(text: str) -> int | None:
    """Bedrooms asked for: "2 bed", "2BR", "two bedroom" → 2; "studio" → 0."""
    match = _BEDROOMS.search(text)
    if not match:
        return None
    word = (match.group(1) or match.group(2)).lower()
    return int(word) if word.isdigit() else _WORD_NUMBERS[word]


def extract_budget(text: str) -> int | None:
    """A monthly budget in dollars: "$2,000", "under 2k", "2.5k", "max 1800", "1800/month"."""
    for match in _MONEY.finditer(text):
        cue, dollar, k, per = match.group("cue"), match.group("dollar"), match.group("k"), match.group("per")
        if not (cue or dollar or k or per):
            continue
        amount = float(match.group("amount").replace(",", ""))
        if k:
            amount *= 1000
        # "under 2 bed" or "at 3": a cue alone before a tiny number is not a budget.
        if amount < 100:
            continue
        return int(amount)
    return None


def extract_building(text: str) -> str | None:
    """The building named in ``text``, by its distinctive word ("maple" → "Maple Court")."""
    lowered = text.lower()
    for word, building in _BUILDINGS.items():
        if re.search(rf"\b{word}\b", lowered):
            return building
    return None


def _next_weekday(today: dt.date, weekday: int, force_next_week: bool) -> dt.date:
    days = (weekday - today.weekday()) % 7
    if days == 0 or force_next_week:
        days = days or 7
    return today + dt.timedelta(days=days)


def _year_for(today: dt.date, month: int, day: int) -> dt.date | None:
    try:
        candidate = dt.date(today.year, month, day)
        return candidate if candidate >= today else dt.date(today.year + 1, month, day)
    except ValueError:
        return None


def extract_date(text: str, today: dt.date) -> dt.date | None:
    """A date: "today", "tomorrow", "saturday", "next mon", "12/5" (month/day), "Dec 5", "5th December", ISO."""
    lowered = text.lower()
    if re.search(r"\btoday\b|\btonight\b", lowered):
        return today
    if re.search(r"\b(tomorrow|tmrw|tmr|2moro)\b", lowered):
        return today + dt.timedelta(days=1)
    if match := _DATE_ISO.search(text):
        try:
            return dt.date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            return None
    if match := _DATE_MONTH_DAY.search(text):
        return _year_for(today, _MONTHS.index(match.group(1).lower()[:3]) + 1, int(match.group(2)))
    if match := _DATE_DAY_MONTH.search(text):
        return _year_for(today, _MONTHS.index(match.group(2).lower()[:3]) + 1, int(match.group(1)))
    if match := _DATE_SLASH.search(text):
        month, day = int(match.group(1)), int(match.group(2))
        if match.group(3):
            year = int(match.group(3))
            try:
                return dt.date(year + 2000 if year < 100 else year, month, day)
            except ValueError:
                return None
        return _year_for(today, month, day)
    if match := _WEEKDAY.search(text):
        weekday = [w[:3] for w in _WEEKDAYS].index(match.group(2).lower()[:3])
        return _next_weekday(today, weekday, bool(match.group(1)))
    return None


def extract_time(text: str) -> str | None:
    """A time of day as "HH:MM": "3pm", "at 10", "14:00", "10:30am"."""
    match = _TIME.search(text)
    if not match:
        return None
    if match.group(1):
        hour, minute = int(match.group(1)) % 12, int(match.group(2) or 0)
        if match.group(3).lower() == "pm":
            hour += 12
    elif match.group(4):
        hour, minute = int(match.group(4)), int(match.group(5))
    else:
        hour, minute = int(match.group(6)), 0
        if hour < 8:  # "at 3" for a viewing means the afternoon
            hour += 12
    if hour > 23 or minute > 59:
        return None
    return f"{hour:02d}:{minute:02d}"


def parse(text: str, today: dt.date) -> Parsed:
    """The intent and entities of one tenant message; ``today`` anchors relative dates.

    Example::

        parse("any 2BR under $2,000 at maple?", today)
        # Parsed(intent='search', bedrooms=2, max_rent=2000, building='Maple Court')
    """
    # Building names must not read as intents ("Harbor View" is not a viewing request).
    text = _BUILDING_NAMES.sub(" ", text) if (building := extract_building(text)) else text
    unit = extract_unit(text)
    bedrooms = extract_bedrooms(text)
    budget = extract_budget(text)
    date = extract_date(text, today)
    time = extract_time(text)
    intent: Intent
    if _HELP.match(text) and not (unit or bedrooms is not None or budget is not None):
        intent = "help"
    elif _VIEWING.search(text) and (unit or date or re.search(r"\bview|tour|visit", text, re.IGNORECASE)):
        intent = "viewing"
    elif _MAINTENANCE.search(text) and not (bedrooms is not None or budget is not None):
        intent = "maintenance"
    elif _RENT.search(text) and unit:
        intent = "rent"
    elif unit and (_AVAILABILITY.search(text) or not _RENT.search(text)):
        intent = "availability"
    elif (
        bedrooms is not None
        or budget is not None
        or building
        or _SEARCH.search(text)
        or _AVAILABILITY.search(text)
        or _RENT.search(text)
    ):
        intent = "search"
    elif _HELP.search(text):
        intent = "help"
    else:
        intent = "unknown"
    return Parsed(intent=intent, unit=unit, bedrooms=bedrooms, max_rent=budget, building=building, date=date, time=time)
