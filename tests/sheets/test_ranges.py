"""A1 parsing and overlap, checked against brute-force cell sets on a small grid."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluiceway.sheets.errors import InvalidRangeError
from sluiceway.sheets.ranges import A1Range, column_letters, column_number, format_a1, parse_a1

#: The grid is larger than any bounded endpoint drawn, so open ends reach past every bounded range.
GRID = 12
SHEETS = ["Units", "My Sheet", "It's", "units"]


def cells(r: A1Range, sheet_names: list[str]) -> set[tuple[str, int, int]]:
    """Every (sheet, row, column) of the grid inside ``r``; unqualified means the first sheet."""
    sheet = r.sheet if r.sheet is not None else sheet_names[0]
    last_row = GRID if r.last_row is None else r.last_row
    last_col = GRID if r.last_column is None else r.last_column
    return {
        (sheet.casefold(), row, col)
        for row in range(r.first_row, last_row + 1)
        for col in range(r.first_column, last_col + 1)
    }


@st.composite
def a1_texts(draw: st.DrawFn) -> tuple[str, A1Range]:
    """A range in one of Google's forms, with the rectangle it denotes."""
    sheet = draw(st.sampled_from([None, *SHEETS]))
    r1, r2 = sorted(draw(st.lists(st.integers(1, GRID - 1), min_size=2, max_size=2)))
    c1, c2 = sorted(draw(st.lists(st.integers(1, GRID - 1), min_size=2, max_size=2)))
    form = draw(st.sampled_from(["cell", "rect", "cols", "rows", "open", "reversed"]))
    a, b = column_letters(c1), column_letters(c2)
    text, rect = {
        "cell": (f"{a}{r1}", A1Range(sheet, r1, r1, c1, c1)),
        "rect": (f"{a}{r1}:{b}{r2}", A1Range(sheet, r1, r2, c1, c2)),
        "cols": (f"{a}:{b}", A1Range(sheet, 1, None, c1, c2)),
        "rows": (f"{r1}:{r2}", A1Range(sheet, r1, r2, 1, None)),
        "open": (f"{a}{r1}:{b}", A1Range(sheet, r1, None, c1, c2)),
        "reversed": (f"{b}{r2}:{a}{r1}", A1Range(sheet, r1, r2, c1, c2)),
    }[form]
    if sheet is not None:
        quoted = draw(st.booleans()) or not sheet.isalnum()
        text = ("'" + sheet.replace("'", "''") + "'" if quoted else sheet) + "!" + text
    return text, rect


@given(a1_texts())
def test_parse_denotes_the_drawn_rectangle(case: tuple[str, A1Range]) -> None:
    """Every A1 form parses to the rectangle it names, and formatting it parses back the same."""
    text, rect = case
    parsed = parse_a1(text)
    assert parsed == rect
    assert parse_a1(format_a1(parsed)) == parsed


@given(a1_texts(), a1_texts())
def test_overlap_matches_cell_set_intersection(a: tuple[str, A1Range], b: tuple[str, A1Range]) -> None:
    """Two qualified ranges overlap exactly when their cell sets intersect; unqualified ones never under-report."""
    ra, rb = parse_a1(a[0]), parse_a1(b[0])
    truth = bool(cells(ra, SHEETS) & cells(rb, SHEETS))
    if ra.sheet is not None and rb.sheet is not None:
        assert ra.overlaps(rb) == truth
    else:
        # The first sheet is unknown without metadata: overlap must hold whatever it is.
        assert ra.overlaps(rb) == any(bool(cells(ra, [s]) & cells(rb, [s])) for s in SHEETS)
    assert ra.overlaps(rb) == rb.overlaps(ra)


@pytest.mark.parametrize("text", ["MyNamedRange", "Units", "Sheet 1", "'Units'"])
def test_names_without_cells_cover_conservatively(text: str) -> None:
    """A named range or bare sheet name overlaps every range it could cover."""
    r = parse_a1(text)
    assert r.overlaps(parse_a1("Units!Z999"))
    if r.sheet is None:
        assert r.overlaps(parse_a1("Other!A1"))


def test_whole_sheet_covers_the_sheet_only() -> None:
    """``whole_sheet`` of a qualified range overlaps every cell of that sheet and none elsewhere."""
    whole = parse_a1("Units!B2:C3").whole_sheet()
    assert whole.overlaps(parse_a1("Units!ZZ5000"))
    assert not whole.overlaps(parse_a1("Other!A1"))
    assert parse_a1(format_a1(whole)) == whole


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("Units!", "nothing follows"),
        ("!A1", "sheet name before '!' is empty"),
        ("A1:", "not a cell"),
        (":B2", "not a cell"),
        ("A1:B2:C3", "at most one ':'"),
        ("A0", "numbered from 1"),
        ("Units!ABCD1", "not a cell"),
        ("'Units", "never closed"),
        ("'Units'A1", "followed by '!'"),
        ("Units!A", "not a cell"),
        ("A:5", "mixes"),
    ],
)
def test_malformed_ranges_are_rejected_with_the_problem_named(text: str, problem: str) -> None:
    """Text that is no range raises InvalidRangeError (a ValueError) saying what is wrong."""
    with pytest.raises(InvalidRangeError, match=problem) as info:
        parse_a1(text)
    assert isinstance(info.value, ValueError)


@given(st.integers(1, 18_278))
def test_column_letters_round_trip(n: int) -> None:
    """Column numbers and letters convert both ways without loss."""
    assert column_number(column_letters(n)) == n
