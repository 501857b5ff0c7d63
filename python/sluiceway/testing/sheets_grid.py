"""The in-memory spreadsheets behind :class:`~sluiceway.testing.SheetsEmulator`.

Implements the values semantics of the Sheets v4 REST API that the emulator serves:
reading a rectangle (trailing empty cells and rows trimmed, as Google does), writing
one, appending below a table, ``RAW`` versus ``USER_ENTERED`` input and
``FORMATTED_VALUE`` versus ``UNFORMATTED_VALUE`` output. Errors are raised as
:class:`ApiError` carrying Google's status and message.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sluiceway.sheets.errors import InvalidRangeError
from sluiceway.sheets.ranges import A1Range, column_letters, format_a1, parse_a1

#: A new sheet's grid, as Google creates it: 1000 rows by 26 columns (A..Z).
DEFAULT_ROWS = 1000
DEFAULT_COLUMNS = 26

Rows = list[list[Any]]


class ApiError(Exception):
    """An error answer: HTTP ``code``, Google's canonical ``status`` and ``message``."""

    def __init__(self, code: int, status: str, message: str, details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.status, self.message, self.details = code, status, message, details or []

    def body(self) -> dict[str, Any]:
        """Google's JSON error body (https://cloud.google.com/apis/design/errors#http_mapping)."""
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def bad_request(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message)


class Sheet:
    """One tab: a sparse-at-the-edges list of rows."""

    def __init__(self, title: str, rows: Rows) -> None:
        self.title = title
        self.rows = rows

    @property
    def row_count(self) -> int:
        return max(DEFAULT_ROWS, len(self.rows))

    @property
    def column_count(self) -> int:
        return max(DEFAULT_COLUMNS, max((len(r) for r in self.rows), default=0))


class Spreadsheet:
    """The sheets of one spreadsheet, in tab order, found by case-insensitive title."""

    def __init__(self, spreadsheet_id: str) -> None:
        self.spreadsheet_id = spreadsheet_id
        self.sheets: dict[str, Sheet] = {}

    def add_sheet(self, title: str, rows: Rows) -> None:
        self.sheets[title.casefold()] = Sheet(title, rows)

    def resolve(self, text: str) -> tuple[Sheet, A1Range]:
        """The sheet and bounded rectangle a request's range names; 400 like Google when it names none."""
        try:
            r = parse_a1(text)
        except InvalidRangeError:
            raise bad_request(f"Unable to parse range: {text}") from None
        if r.unbounded:  # a bare name: Google reads it as a sheet title
            sheet = self.sheets.get(text.strip().casefold())
            if sheet is None:
                raise bad_request(f"Unable to parse range: {text}")
            return sheet, self._clamp(sheet, A1Range(sheet.title))
        if r.sheet is None:
            if not self.sheets:
                raise bad_request(f"Unable to parse range: {text}")
            sheet = next(iter(self.sheets.values()))
        else:
            found = self.sheets.get(r.sheet.casefold())
            if found is None:
                raise bad_request(f"Unable to parse range: {text}")
            sheet = found
        return sheet, self._clamp(sheet, r)

    @staticmethod
    def _clamp(sheet: Sheet, r: A1Range) -> A1Range:
        last_row = sheet.row_count if r.last_row is None else r.last_row
        last_col = sheet.column_count if r.last_column is None else r.last_column
        return A1Range(sheet.title, r.first_row, last_row, r.first_column, last_col)

    def read(self, text: str, *, formatted: bool = True) -> dict[str, Any]:
        """A ``ValueRange`` for ``text``; ``values`` is omitted when the rectangle is empty."""
        sheet, r = self.resolve(text)
        assert r.last_row is not None and r.last_column is not None
        out: Rows = []
        for row in sheet.rows[r.first_row - 1 : r.last_row]:
            cells = [_render(v, formatted) for v in row[r.first_column - 1 : r.last_column]]
            while cells and cells[-1] == "":
                cells.pop()
            out.append(cells)
        while out and not out[-1]:
            out.pop()
        value_range: dict[str, Any] = {"range": format_a1(r), "majorDimension": "ROWS"}
        if out:
            value_range["values"] = out
        return value_range

    def write(self, text: str, values: Rows, *, user_entered: bool, major_dimension: str = "ROWS") -> dict[str, Any]:
        """Write ``values`` from the range's top-left cell; 400 if they spill out of the range."""
        sheet, r = self.resolve(text)
        rows = _rows(values, major_dimension)
        return self._write_at(sheet, r, r.first_row, rows, user_entered)

    def append(self, text: str, values: Rows, *, user_entered: bool, major_dimension: str = "ROWS") -> dict[str, Any]:
        """Append ``values`` below the last non-empty row of the range's columns, like Google's table detection."""
        sheet, r = self.resolve(text)
        rows = _rows(values, major_dimension)
        if r.first_column == r.last_column and r.first_row == r.last_row:
            # A single cell marks where the table starts: it spans every column to its right.
            r = A1Range(sheet.title, r.first_row, r.last_row, r.first_column, sheet.column_count)
        assert r.last_column is not None
        last = r.first_row - 1
        for i in range(r.first_row - 1, len(sheet.rows)):
            if any(v not in ("", None) for v in sheet.rows[i][r.first_column - 1 : r.last_column]):
                last = i + 1
        width = max((len(row) for row in rows), default=1)
        target = A1Range(
            sheet.title, last + 1, max(last + len(rows), last + 1), r.first_column, r.first_column + width - 1
        )
        updates = self._write_at(sheet, target, last + 1, rows, user_entered)
        answer: dict[str, Any] = {"spreadsheetId": self.spreadsheet_id, "updates": updates}
        if last >= r.first_row:
            answer["tableRange"] = format_a1(A1Range(sheet.title, r.first_row, last, r.first_column, r.last_column))
        return answer

    def _write_at(self, sheet: Sheet, r: A1Range, first_row: int, rows: Rows, user_entered: bool) -> dict[str, Any]:
        width = max((len(row) for row in rows), default=0)
        if r.last_row is not None and first_row + len(rows) - 1 > r.last_row:
            raise bad_request(
                f"Requested writing within range [{format_a1(r)}], "
                f"but tried writing to row [{first_row + len(rows) - 1}]"
            )
        if r.last_column is not None and r.first_column + width - 1 > r.last_column:
            raise bad_request(
                f"Requested writing within range [{format_a1(r)}], but tried writing to column "
                f"[{column_letters(r.first_column + width - 1)}]"
            )
        for i, row in enumerate(rows):
            index = first_row - 1 + i
            while len(sheet.rows) <= index:
                sheet.rows.append([])
            target = sheet.rows[index]
            for j, value in enumerate(row):
                col = r.first_column - 1 + j
                while len(target) <= col:
                    target.append("")
                if value is not None:  # Google leaves a cell alone for a null value
                    target[col] = _parse_input(value) if user_entered else value
        updated = A1Range(
            sheet.title,
            first_row,
            first_row + max(len(rows), 1) - 1,
            r.first_column,
            r.first_column + max(width, 1) - 1,
        )
        cells = sum(len(row) for row in rows)
        return {
            "spreadsheetId": self.spreadsheet_id,
            "updatedRange": format_a1(updated),
            "updatedRows": len(rows),
            "updatedColumns": width,
            "updatedCells": cells,
        }


def rows_from_csv(source: str | Path | io.TextIOBase | Iterable[str]) -> Rows:
    """Rows of a CSV file path, an open text file, or CSV text; cells read as USER_ENTERED input."""
    if isinstance(source, Path):
        with source.open(newline="", encoding="utf-8") as fh:
            return rows_from_csv(fh)
    if isinstance(source, str):
        source = io.StringIO(source)
    return [[_parse_input(cell) for cell in row] for row in csv.reader(source)]


def _rows(values: Any, major_dimension: str) -> Rows:
    if not isinstance(values, list) or not all(isinstance(row, list) for row in values):
        raise bad_request("Invalid values: expected a list of rows (lists of cell values)")
    if major_dimension == "COLUMNS":
        height = max((len(c) for c in values), default=0)
        return [[col[i] if i < len(col) else None for col in values] for i in range(height)]
    if major_dimension not in ("ROWS", "DIMENSION_UNSPECIFIED"):
        raise bad_request(f"Invalid value at 'data.major_dimension' ({major_dimension})")
    return values


def _parse_input(value: Any) -> Any:
    """USER_ENTERED: text that looks like a number or boolean becomes one, as if typed into the UI."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.upper() in ("TRUE", "FALSE"):
        return text.upper() == "TRUE"
    for kind in (int, float):
        try:
            return kind(text.replace(",", "")) if text else value
        except ValueError:
            continue
    return value


def _render(value: Any, formatted: bool) -> Any:
    """FORMATTED_VALUE renders every cell as its displayed text; UNFORMATTED_VALUE keeps numbers."""
    if value is None:
        return ""
    if not formatted:
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def new_spreadsheet(spreadsheet_id: str, sheets: Mapping[str, Sequence[Sequence[Any]]]) -> Spreadsheet:
    """A spreadsheet holding ``sheets`` (title → rows), in the mapping's order."""
    book = Spreadsheet(spreadsheet_id)
    for title, rows in sheets.items():
        book.add_sheet(title, [list(row) for row in rows])
    return book
