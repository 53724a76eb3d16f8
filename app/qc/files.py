"""Reading QC import files (CSV, XLSX) into rows, and writing the import template.

A file becomes a list of ``(row number, {column: value})`` with row numbers as a
spreadsheet shows them (the header is row 1). Column names are normalised (lower case,
spaces and hyphens as "_") so "Study reference" and "study_reference" are one column.
Reading refuses what is not a table (``FileRefused``); checking the values is
``app.qc.importing``'s work.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from app.i18n import N_
from app.schemes.parts import Scheme
from app.schemes.registry import classification_item

#: A QC centre's monthly export is a few thousand rows; far more is a wrong file.
MAX_ROWS = 20_000
MAX_FILE_BYTES = 16 * 1024 * 1024
#: An .xlsx is a zip: what it unpacks to is bounded before openpyxl reads it (a small file
#: can unpack to gigabytes).
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
MULTI_SEPARATOR = ";"

Row = tuple[int, dict[str, Any]]
Table = tuple[list[str], list[Row]]  # (column names, rows)

#: Columns that are not answers, in the template's order.
RECORD_COLUMNS = ("study_reference", "reader", "clinic", "read_date", "qc_date",
                  "qc_radiologist", "grade", "scheme")
REQUIRED_COLUMNS = ("study_reference", "reader", "read_date", "qc_radiologist", "grade")
#: The two reads' answer columns are "primary_<item>" and "qc_<item>".
READS = ("primary", "qc")
#: Item types an import takes; text items are free text and are never stored.
ANSWER_TYPES = ("choice", "multi", "scale")


class FileRefused(ValueError):
    """The file is not a table we can read. ``reason`` is marked for translation and
    formatted with ``params``."""

    def __init__(self, reason: str, **params: Any) -> None:
        super().__init__(reason % params if params else reason)
        self.reason = reason
        self.params = params


def column_name(header: Any) -> str:
    return "_".join(str(header or "").strip().lower().replace("-", " ").split())


def answer_columns(scheme: Scheme) -> list[str]:
    keys = [item.key for item in scheme.items if item.type in ANSWER_TYPES]
    return [f"{read}_{key}" for read in READS for key in keys]


def required_answer_columns(scheme: Scheme) -> list[str]:
    key = classification_item(scheme)
    return [f"{read}_{key}" for read in READS] if key else []


def _table(headers: Sequence[Any], body: Sequence[tuple[int, Sequence[Any]]]) -> Table:
    names = [column_name(h) for h in headers]
    if not any(names):
        raise FileRefused(N_("the first row must name the columns"))
    seen: set[str] = set()
    for name in names:
        if name and name in seen:
            raise FileRefused(N_("the column %(column)s appears twice"), column=name)
        seen.add(name)
    rows: list[Row] = []
    for number, values in body:
        if all(v is None or str(v).strip() == "" for v in values):
            continue  # blank lines of a spreadsheet are not rows
        if len(rows) >= MAX_ROWS:
            raise FileRefused(N_("the file has more than %(limit)s rows; split it"),
                              limit=MAX_ROWS)
        rows.append((number, {name: value for name, value in zip(names, values, strict=False)
                              if name}))
    return [n for n in names if n], rows


def read_csv(data: bytes) -> Table:
    """UTF-8 (with or without the byte-order mark Excel writes), else Windows-1252, which
    is what Excel's plain "CSV" gives; comma, semicolon (Excel in French or Spanish) or tab."""
    if len(data) > MAX_FILE_BYTES:
        raise FileRefused(N_("the file is larger than %(limit)s MB"),
                          limit=MAX_FILE_BYTES // 1024**2)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            raise FileRefused(N_("the file is not UTF-8 or Windows-1252 text")) from None
    if "\x00" in text:
        raise FileRefused(N_("the file is not a CSV table"))
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count)
    try:
        lines = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error:
        raise FileRefused(N_("the file is not a CSV table")) from None
    if not lines:
        raise FileRefused(N_("the file is empty"))
    return _table(lines[0], [(n, line) for n, line in enumerate(lines[1:], 2)])


def read_xlsx(data: bytes) -> Table:
    """The first worksheet; date cells come as dates."""
    from zipfile import BadZipFile, ZipFile

    from openpyxl import load_workbook  # type: ignore[import-untyped]

    if len(data) > MAX_FILE_BYTES:
        raise FileRefused(N_("the file is larger than %(limit)s MB"),
                          limit=MAX_FILE_BYTES // 1024**2)
    try:
        with ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
    except (BadZipFile, ValueError, OSError):
        raise FileRefused(N_("the file is not an Excel workbook (.xlsx)")) from None
    if unpacked > MAX_UNPACKED_BYTES:
        raise FileRefused(N_("the workbook unpacks to more than %(limit)s MB"),
                          limit=MAX_UNPACKED_BYTES // 1024**2)
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (BadZipFile, KeyError, ValueError, OSError):
        raise FileRefused(N_("the file is not an Excel workbook (.xlsx)")) from None
    try:
        sheet = book.worksheets[0]
        lines = sheet.iter_rows(values_only=True)
        headers = next(lines, None)
        if headers is None:
            raise FileRefused(N_("the file is empty"))
        body = []
        for n, line in enumerate(lines, 2):
            body.append((n, line))
            if n > MAX_ROWS + 1000:  # blank rows do not count, but do not read forever
                break
        return _table(headers, body)
    finally:
        book.close()


def read_table(data: bytes, filename: str) -> tuple[str, Table]:
    """(source, (columns, rows)) by the file's extension: "csv" or "xlsx"."""
    name = filename.lower()
    if name.endswith(".xlsx"):
        return "xlsx", read_xlsx(data)
    if name.endswith((".csv", ".txt")):
        return "csv", read_csv(data)
    raise FileRefused(N_("choose a .csv or .xlsx file"))


# ---- the template -------------------------------------------------------------------------


def template_columns(scheme: Scheme) -> list[str]:
    return [*RECORD_COLUMNS, *answer_columns(scheme), "comment"]


def _example_reads(scheme: Scheme) -> tuple[dict[str, str], dict[str, str]]:
    """(a read that needs no sputum test, one that does) in the scheme's values."""
    key = classification_item(scheme)
    if key is None or not scheme.tb_decision:
        return {}, {}
    options = scheme.item(key).options
    negative = {key: next(o.value for o in options if not o.tb_positive)}
    decision = scheme.tb_decision
    item = scheme.item(decision["item"])
    if "positive_group" in decision:
        value = next(o.value for o in item.options if o.group == decision["positive_group"])
    else:
        value = decision["positive_values"][0]
    positive = {key: options[-1].value, item.key: value}
    return negative, positive


def _example_rows(scheme: Scheme) -> list[dict[str, Any]]:
    """Two made-up rows (user names to replace with real ones): a concordant read and a
    TB-suggestive image read as normal (3b)."""
    negative, positive = _example_reads(scheme)

    def answers(read: str, values: dict[str, str]) -> dict[str, str]:
        return {f"{read}_{k}": v for k, v in values.items()}

    return [
        {"study_reference": "ACC-2026-000123", "reader": "reader.username",
         "read_date": "2026-03-02", "qc_date": "2026-03-09", "qc_radiologist": "qc.radiologist",
         "grade": "1", "scheme": scheme.key, **answers("primary", negative),
         **answers("qc", negative),
         "comment": "never stored: leave patient details out all the same"},
        {"study_reference": "ACC-2026-000124", "reader": "reader@example.org",
         "read_date": "2026-03-02", "qc_radiologist": "qc.radiologist", "grade": "3b",
         "scheme": scheme.key, **answers("primary", negative), **answers("qc", positive)},
    ]


def template_csv(scheme: Scheme, examples: bool = True) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=template_columns(scheme), lineterminator="\r\n")
    writer.writeheader()
    for row in _example_rows(scheme) if examples else []:
        writer.writerow(row)
    return out.getvalue()


def template_xlsx(scheme: Scheme, examples: bool = True) -> bytes:
    from openpyxl import Workbook  # type: ignore[import-untyped]

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "QC reads"
    columns = template_columns(scheme)
    sheet.append(columns)
    for row in _example_rows(scheme) if examples else []:
        sheet.append([_cell(row.get(c)) for c in columns])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
        return date.fromisoformat(value)
    return value


def cell_text(value: Any) -> str:
    """A cell as text: numbers without a spurious ".0" (Excel stores grade 1 as 1.0)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else str(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()
