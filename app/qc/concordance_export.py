"""The programme's QC concordance table as CSV and XLSX: headers in the reader's language
(``pgettext('export column', ...)``; in English the column keys themselves), cells as the
certification exports write them (ISO dates, True/False, proportions with three decimals in
CSV and as numbers in XLSX) and text that a spreadsheet would run as a formula escaped
(``app.exports``)."""

from __future__ import annotations

import csv
import io

from flask_babel import gettext, pgettext

from app.exports import csv_cell, xlsx_row
from app.qc.concordance import ConcordanceRow, ConcordanceTable
from app.qc.measures import Proportion

KEY_COLUMNS = {
    "reader": ("country", "clinic", "reader"),
    "clinic": ("country", "clinic"),
    "country": ("country",),
}
QC_COLUMNS = (
    "qc_reads", "first_read", "last_read",
    "kappa", "kappa_ci_low", "kappa_ci_high",
    "pabak", "pabak_ci_low", "pabak_ci_high",
    "major_discrepancies", "major_discrepancy_rate", "major_rate_ci_low", "major_rate_ci_high",
    "qc_sensitivity", "qc_sensitivity_ci_low", "qc_sensitivity_ci_high",
    "qc_specificity", "qc_specificity_ci_low", "qc_specificity_ci_high",
)
EXAM_COLUMNS = ("latest_exam", "latest_exam_passed", "latest_exam_sensitivity",
                "latest_exam_specificity")


def headers() -> dict[str, str]:
    return {
        "country": pgettext("export column", "country"),
        "clinic": pgettext("export column", "clinic"),
        "reader": pgettext("export column", "reader"),
        "qc_reads": pgettext("export column", "qc_reads"),
        "first_read": pgettext("export column", "first_read"),
        "last_read": pgettext("export column", "last_read"),
        "kappa": pgettext("export column", "kappa"),
        "kappa_ci_low": pgettext("export column", "kappa_ci_low"),
        "kappa_ci_high": pgettext("export column", "kappa_ci_high"),
        "pabak": pgettext("export column", "pabak"),
        "pabak_ci_low": pgettext("export column", "pabak_ci_low"),
        "pabak_ci_high": pgettext("export column", "pabak_ci_high"),
        "major_discrepancies": pgettext("export column", "major_discrepancies"),
        "major_discrepancy_rate": pgettext("export column", "major_discrepancy_rate"),
        "major_rate_ci_low": pgettext("export column", "major_rate_ci_low"),
        "major_rate_ci_high": pgettext("export column", "major_rate_ci_high"),
        "qc_sensitivity": pgettext("export column", "qc_sensitivity"),
        "qc_sensitivity_ci_low": pgettext("export column", "qc_sensitivity_ci_low"),
        "qc_sensitivity_ci_high": pgettext("export column", "qc_sensitivity_ci_high"),
        "qc_specificity": pgettext("export column", "qc_specificity"),
        "qc_specificity_ci_low": pgettext("export column", "qc_specificity_ci_low"),
        "qc_specificity_ci_high": pgettext("export column", "qc_specificity_ci_high"),
        "latest_exam": pgettext("export column", "latest_exam"),
        "latest_exam_passed": pgettext("export column", "latest_exam_passed"),
        "latest_exam_sensitivity": pgettext("export column", "latest_exam_sensitivity"),
        "latest_exam_specificity": pgettext("export column", "latest_exam_specificity"),
    }


def columns(by: str) -> tuple[str, ...]:
    return KEY_COLUMNS[by] + QC_COLUMNS + (EXAM_COLUMNS if by == "reader" else ())


def _proportion(p: Proportion) -> list[object]:
    low, high = p.ci if p.ci else (None, None)
    return [p.value, low, high]


def values(row: ConcordanceRow, by: str) -> list[object]:
    """One row's cells, in ``columns(by)`` order (None: nothing to show)."""
    s = row.summary
    a = s.agreement
    unit_cells: dict[str, list[object]] = {
        "reader": [row.country_code, row.clinic_name, row.name],
        "clinic": [row.country_code, row.name],
        "country": [row.country_code],
    }
    keys = unit_cells[by]
    kappa_ci = a.kappa_ci or (None, None)
    pabak_ci = a.pabak_ci or (None, None)
    cells = [
        *keys, s.n, s.first_date, s.last_date,
        a.kappa, *kappa_ci, a.pabak, *pabak_ci,
        s.major.successes, *_proportion(s.major),
        *_proportion(s.sensitivity), *_proportion(s.specificity),
    ]
    if by == "reader":
        exam = row.exam
        cells += ([exam.ended_at.date() if exam.ended_at else None, exam.passed,
                   exam.sensitivity, exam.specificity] if exam else [None] * 4)
    return cells


def table_csv(table: ConcordanceTable) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    words = headers()
    writer.writerow([words[key] for key in columns(table.by)])
    for row in table.rows:
        writer.writerow(["" if v is None else f"{v:.3f}" if isinstance(v, float)
                         else csv_cell(v) for v in values(row, table.by)])
    return out.getvalue()


def table_xlsx(table: ConcordanceTable, title: str) -> bytes:
    from openpyxl import Workbook  # type: ignore[import-untyped]

    book = Workbook()
    sheet = book.active
    sheet.title = gettext("QC concordance")[:31]
    xlsx_row(sheet, [title])
    words = headers()
    keys = columns(table.by)
    xlsx_row(sheet, [words[key] for key in keys])
    for row in table.rows:
        xlsx_row(sheet, values(row, table.by))
    rates = [i for i, key in enumerate(keys, start=1)
             if key.startswith(("major_rate", "major_discrepancy_rate", "qc_sens", "qc_spec"))
             or key in ("latest_exam_sensitivity", "latest_exam_specificity")]
    for column in rates:
        for (cell,) in sheet.iter_rows(min_row=3, min_col=column, max_col=column):
            cell.number_format = "0.0%"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
