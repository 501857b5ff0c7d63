"""A1 notation: parse a Sheets range into a rectangle and decide whether two overlap.

Google's grammar (https://developers.google.com/sheets/api/guides/concepts#cell):
an optional sheet name (``'Units'!``, quoted when it holds spaces or punctuation,
a ``'`` inside doubled as ``''``) followed by a cell (``A1``), a rectangle
(``A1:F200``), whole columns (``A:C``), whole rows (``2:5``) or an open-ended
rectangle (``A2:F``: columns A..F from row 2 down). A range with no ``!`` whose text is
not a cell reference is a sheet name or a named range: we cannot know which cells
it covers without the spreadsheet's metadata, so it parses to an *unbounded* range
that overlaps everything in the spreadsheet. When unsure, invalidate more, never less.

Rows and columns are 1-based and inclusive; ``None`` as an end means "to the end of
the sheet".
"""

from __future__ import annotations

import re
from functools import lru_cache

import msgspec

from sluiceway.sheets.errors import InvalidRangeError

#: Parsed ranges kept by :func:`parse_a1`; cache keys repeat, so parsing is paid once.
PARSE_CACHE_SIZE = 4096

#: Google Sheets' column limit is 18,278 (``ZZZ``), so a column is at most three letters.
MAX_COLUMN_LETTERS = 3

_ENDPOINT = re.compile(r"\$?([A-Za-z]{1,3})?\$?([0-9]+)?")


class A1Range(msgspec.Struct, frozen=True):
    """A rectangle of one sheet, or the unknown extent of a named range / bare sheet name.

    ``sheet`` is ``None`` for an unqualified range (Google reads it on the first sheet,
    which we cannot name without metadata, so it is treated as possibly any sheet).
    ``unbounded`` marks a range we could not interpret: it overlaps everything.
    """

    sheet: str | None
    first_row: int = 1
    last_row: int | None = None
    first_column: int = 1
    last_column: int | None = None
    unbounded: bool = False

    def overlaps(self, other: A1Range) -> bool:
        """Whether some cell may belong to both ranges (``True`` whenever that cannot be ruled out)."""
        if self.unbounded or other.unbounded:
            return True
        if self.sheet is not None and other.sheet is not None and self.sheet.casefold() != other.sheet.casefold():
            return False
        return _intersects(self.first_row, self.last_row, other.first_row, other.last_row) and _intersects(
            self.first_column, self.last_column, other.first_column, other.last_column
        )

    def whole_sheet(self) -> A1Range:
        """Every cell of this range's sheet (all sheets when unqualified)."""
        return A1Range(self.sheet, unbounded=self.unbounded)


def _intersects(a_first: int, a_last: int | None, b_first: int, b_last: int | None) -> bool:
    return (a_last is None or b_first <= a_last) and (b_last is None or a_first <= b_last)


def column_number(letters: str) -> int:
    """``A`` → 1, ``Z`` → 26, ``AA`` → 27 (case-insensitive)."""
    number = 0
    for ch in letters.upper():
        number = number * 26 + (ord(ch) - 64)
    return number


def column_letters(number: int) -> str:
    """1 → ``A``, 27 → ``AA``; the inverse of :func:`column_number`."""
    if number < 1:
        raise ValueError(f"column numbers start at 1, got {number}")
    letters = ""
    while number:
        number, rem = divmod(number - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def quote_sheet(name: str) -> str:
    """The sheet name as it must appear before ``!``: quoted unless it is a plain identifier."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and not _ENDPOINT.fullmatch(name):
        return name
    return "'" + name.replace("'", "''") + "'"


@lru_cache(maxsize=PARSE_CACHE_SIZE)
def parse_a1(text: str) -> A1Range:
    """Parse a range in A1 notation.

    Raises :class:`~sluiceway.sheets.errors.InvalidRangeError` (a ``ValueError``) naming
    the problem for text that is no range at all: empty, an empty sheet name or cell
    part, a dangling ``:``, row 0, a column past ``ZZZ``.

    Example::

        >>> parse_a1("'Units'!A2:F")
        A1Range(sheet='Units', first_row=2, last_row=None, first_column=1, last_column=6, unbounded=False)
    """
    if not isinstance(text, str):
        raise TypeError(f"a range must be a str, got {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise InvalidRangeError(text, "the range is empty")
    sheet, cells = _split_sheet(text, stripped)
    if cells is None:
        # A bare sheet name or a named range: its extent is unknown without metadata.
        return A1Range(sheet, unbounded=sheet is None)
    return _parse_cells(text, sheet, cells)


def _split_sheet(text: str, stripped: str) -> tuple[str | None, str | None]:
    """(sheet name or None, cell part or None when there is no ``!``)."""
    if stripped.startswith("'"):
        i, name = 1, []
        while True:
            end = stripped.find("'", i)
            if end < 0:
                raise InvalidRangeError(text, "the quoted sheet name is never closed")
            name.append(stripped[i:end])
            if stripped.startswith("''", end):
                name.append("'")
                i = end + 2
                continue
            rest = stripped[end + 1 :]
            break
        sheet = "".join(name)
        if not sheet:
            raise InvalidRangeError(text, "the sheet name is empty")
        if not rest:
            return sheet, None
        if not rest.startswith("!"):
            raise InvalidRangeError(text, "a quoted sheet name must be followed by '!'")
        return sheet, _cell_part(text, rest[1:])
    bang = stripped.rfind("!")
    if bang < 0:
        if _looks_like_cells(stripped):
            return None, stripped
        return None, None  # named range or bare sheet name
    sheet = stripped[:bang].strip()
    if not sheet:
        raise InvalidRangeError(text, "the sheet name before '!' is empty")
    return sheet, _cell_part(text, stripped[bang + 1 :])


def _cell_part(text: str, cells: str) -> str:
    cells = cells.strip()
    if not cells:
        raise InvalidRangeError(text, "nothing follows '!'")
    return cells


def _looks_like_cells(s: str) -> bool:
    """Unqualified text that is meant as cells: a full cell (``B7``) or anything with ``:``."""
    if ":" in s:
        return True
    m = _ENDPOINT.fullmatch(s)
    return m is not None and m.group(1) is not None and m.group(2) is not None


def _parse_cells(text: str, sheet: str | None, cells: str) -> A1Range:
    parts = cells.split(":")
    if len(parts) > 2:
        raise InvalidRangeError(text, "a range has at most one ':'")
    start = _endpoint(text, parts[0])
    if len(parts) == 1:
        col, row = start
        if col is None or row is None:
            raise InvalidRangeError(text, f"{cells!r} is not a cell (expected e.g. 'B7')")
        return A1Range(sheet, row, row, col, col)
    end = _endpoint(text, parts[1])
    (c1, r1), (c2, r2) = start, end
    if (c1 is None) != (c2 is None) and (r1 is None) != (r2 is None):
        raise InvalidRangeError(text, f"{cells!r} mixes a column-only and a row-only endpoint")
    first_col, last_col = _bounds(c1, c2)
    first_row, last_row = _bounds(r1, r2)
    return A1Range(sheet, first_row, last_row, first_col, last_col)


def _bounds(a: int | None, b: int | None) -> tuple[int, int | None]:
    """Google reads ``B:A`` as ``A:B`` and a missing start as the first row/column."""
    if a is not None and b is not None:
        return min(a, b), max(a, b)
    return (a if a is not None else 1), b


def _endpoint(text: str, s: str) -> tuple[int | None, int | None]:
    s = s.strip()
    m = _ENDPOINT.fullmatch(s)
    if not s or m is None or (m.group(1) is None and m.group(2) is None):
        raise InvalidRangeError(text, f"{s!r} is not a cell, column or row reference")
    col = column_number(m.group(1)) if m.group(1) else None
    row = int(m.group(2)) if m.group(2) else None
    if row == 0:
        raise InvalidRangeError(text, "rows are numbered from 1")
    return col, row


def format_a1(r: A1Range) -> str:
    """The canonical A1 text of a bounded range (the inverse of :func:`parse_a1`)."""
    if r.unbounded:
        raise ValueError("an unbounded range (named range or bare sheet) has no A1 rectangle")
    prefix = "" if r.sheet is None else quote_sheet(r.sheet) + "!"
    if r.last_row is None and r.last_column is None and r.first_row == 1 and r.first_column == 1:
        if r.sheet is None:
            raise ValueError("an unqualified whole-sheet range has no A1 text")
        # Always quoted: an unquoted bare name would read back as a possible named range.
        return "'" + r.sheet.replace("'", "''") + "'"
    first_col = column_letters(r.first_column)
    last_col = "" if r.last_column is None else column_letters(r.last_column)
    last_row = "" if r.last_row is None else str(r.last_row)
    if r.first_row == r.last_row and r.first_column == r.last_column:
        return f"{prefix}{first_col}{r.first_row}"
    if r.last_column is None:  # whole rows, ``2:5``
        return (
            f"{prefix}{r.first_row}:{last_row}"
            if r.first_column == 1
            else f"{prefix}{first_col}{r.first_row}:{last_row}"
        )
    return f"{prefix}{first_col}{r.first_row}:{last_col}{last_row}"
