"""Cells of downloaded spreadsheets (CSV and XLSX) that a spreadsheet program shows as
text, never runs as a formula (OWASP "CSV injection")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# A spreadsheet starts a formula at any of these (tab and carriage return too, since
# some programs strip them before looking at the next character).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def needs_escape(value: object) -> bool:
    """Only text is escaped: a real negative number stays a number."""
    return isinstance(value, str) and value.startswith(FORMULA_STARTS)


def csv_cell(value: object) -> object:
    """A CSV value with a leading apostrophe where a spreadsheet would read a formula:
    OWASP's advice, since CSV has no way to mark a cell as text."""
    return "'" + value if needs_escape(value) and isinstance(value, str) else value


def xlsx_row(sheet: Any, values: Sequence[object]) -> None:
    """Append a row to an openpyxl worksheet; openpyxl takes every string beginning with
    "=" as a formula, so such cells are stored as plain strings explicitly."""
    sheet.append(values)
    for cell, value in zip(sheet[sheet.max_row], values, strict=False):
        if needs_escape(value):
            cell.value = value
            cell.data_type = "s"
