"""Importing QC records (CSV, XLSX, by hand, the command line) on both databases: per-row
reasons, nothing half-imported, duplicates and re-imports, and no patient data stored."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_babel import force_locale
from openpyxl import Workbook
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.auth.models import Clinic, User
from app.auth.roles import Role
from app.extensions import db
from app.qc.files import template_columns, template_csv, template_xlsx
from app.qc.importing import add_record, import_file
from app.qc.models import QcImportBatch, QcRecord
from app.qc.pseudonyms import install_secret, matches, study_pseudonym
from app.schemes.registry import get_scheme

TEMPLATE = Path(__file__).resolve().parents[1] / "app" / "static" / "qc" / "qc-import-template.csv"


@pytest.fixture
def people(make_user: Callable[..., User], make_clinic: Callable[..., Clinic]) -> dict[str, Any]:
    clinic = make_clinic("Mathare Clinic", country="KE")
    other = make_clinic("Quezon Clinic", city="Manila", country="PH")
    return {
        "clinic": clinic, "other": other,
        "amina": make_user(username="amina", clinic=clinic),
        "jose": make_user(username="jose", clinic=other),
        "drifter": make_user(username="drifter"),  # no clinic
        "qc": make_user(Role.TRAINER, username="dr.qc"),
        "lead": make_user(Role.PROGRAMME_LEAD, username="lead"),
    }


def row(**values: Any) -> dict[str, Any]:
    base = {"study_reference": "ACC-1001", "reader": "amina", "read_date": "2026-03-02",
            "qc_date": "2026-03-09", "qc_radiologist": "dr.qc", "grade": "1",
            "primary_classification": "normal", "qc_classification": "normal"}
    return {**base, **values}


def csv_bytes(rows: list[dict[str, Any]], columns: list[str] | None = None,
              delimiter: str = ",") -> bytes:
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, delimiter=delimiter)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def records() -> list[QcRecord]:
    return list(db.session.scalars(select(QcRecord).order_by(QcRecord.id)))


def every_stored_text() -> str:
    """Every value of every table, as text: what a database copy would reveal."""
    parts = []
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            for stored in conn.execute(select(table)):
                parts.extend(json.dumps(v, default=str) for v in stored)
    return "\n".join(parts).lower()


def test_csv_import_stores_pseudonyms_reads_and_grades(people: dict[str, Any]) -> None:
    rows = [row(),
            row(study_reference="ACC-1002", reader="jose@example.org", grade="3b",
                primary_classification="Normal", qc_classification="abnormal_tb",
                qc_findings="infiltrate; cavitary_lesion", qc_tb_likelihood="5"),
            row(study_reference="ACC-1003", clinic="quezon clinic", grade="2a",
                primary_classification="abnormal_not_tb", qc_classification="normal")]
    report = import_file(csv_bytes(rows), "march.csv", actor=people["lead"])
    assert not report.refused, [p.english() for p in report.problems]
    assert [(o.row, o.status) for o in report.outcomes] == [(2, "created"), (3, "created"),
                                                            (4, "created")]
    first, second, third = records()
    secret = install_secret()
    assert first.study_pseudonym == study_pseudonym("ACC-1001", secret)
    assert first.study_pseudonym.startswith("QC-") and len(first.study_pseudonym) == 35
    assert matches(" acc-1001 ", first.study_pseudonym, secret)
    assert (first.reader_id, first.clinic_id) == (people["amina"].id, people["clinic"].id)
    assert (first.read_date, first.qc_date, first.grade) == (date(2026, 3, 2), date(2026, 3, 9),
                                                             "1")
    assert second.reader_id == people["jose"].id and second.clinic_id == people["other"].id
    assert second.qc_read == {"classification": "abnormal_tb", "tb_likelihood": 5,
                              "findings": ["infiltrate", "cavitary_lesion"]}
    assert second.primary_read == {"classification": "normal"}  # the label was accepted
    assert (second.primary_tb, second.qc_tb, second.grade) == (False, True, "3b")
    assert third.clinic_id == people["other"].id  # the row's clinic, not the reader's
    assert (second.scheme_key, second.scheme_version) == ("tb_screening", 1)
    batch = db.session.get(QcImportBatch, report.batch_id)
    assert batch is not None and (batch.source, batch.created, batch.imported_by_id) == (
        "csv", 3, people["lead"].id)
    assert first.batch_id == batch.id and len(batch.file_sha256 or "") == 64
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "qc.import"))
    assert event is not None and event.detail["created"] == 3
    assert "acc-100" not in every_stored_text()


def test_xlsx_import_reads_date_cells_and_numeric_grades(people: dict[str, Any]) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Study reference", "Reader", "Read date", "QC radiologist", "Grade",
                  "Primary classification", "QC classification"])
    sheet.append(["X-1", "AMINA", datetime(2026, 2, 1), "dr.qc", 1, "normal", "normal"])
    sheet.append([None] * 7)  # a blank line is not a row
    sheet.append(["X-2", "amina", date(2026, 2, 3), "dr.qc", "3B", "normal", "abnormal_tb"])
    out = io.BytesIO()
    book.save(out)
    report = import_file(out.getvalue(), "feb.XLSX")
    assert not report.refused, [p.english() for p in report.problems]
    assert report.source == "xlsx" and [o.row for o in report.outcomes] == [2, 4]
    assert [(r.read_date, r.grade) for r in records()] == [(date(2026, 2, 1), "1"),
                                                           (date(2026, 2, 3), "3b")]


def test_malformed_rows_refuse_the_whole_file_with_a_reason_per_row(
        people: dict[str, Any]) -> None:
    future = (datetime.now(UTC).date() + timedelta(days=3)).isoformat()
    rows = [
        row(),  # 2: fine, but not imported since others are refused
        row(study_reference="A3", reader="nobody@example.org"),  # 3
        row(study_reference="A4", read_date="02/03/2026"),  # 4
        row(study_reference="A5", read_date=future),  # 5
        row(study_reference="A6", grade="4"),  # 6
        row(study_reference="A7", grade="1", qc_classification="abnormal_tb"),  # 7
        row(study_reference="A8", primary_classification="probably TB"),  # 8
        row(study_reference=""),  # 9
        row(study_reference="A10", qc_date="2026-03-01"),  # 10
        row(study_reference="A11", qc_radiologist="jose"),  # 11
        row(study_reference="A12", clinic="Nowhere Clinic"),  # 12
        row(study_reference="A13", reader="drifter"),  # 13
        row(study_reference="A14", grade="2b"),  # 14
        row(study_reference="A15", qc_classification=""),  # 15
        row(study_reference="A16", primary_tb_likelihood="9"),  # 16
        row(study_reference="A17", scheme="image_quality"),  # 17
        row(study_reference="A18", qc_radiologist="amina"),  # 18
    ]
    report = import_file(csv_bytes(rows), "bad.csv")
    assert report.refused and report.batch_id is None and report.outcomes == []
    assert [(p.row, p.field) for p in report.problems] == [
        (3, "reader"), (4, "read_date"), (5, "read_date"), (6, "grade"), (7, "grade"),
        (8, "primary_classification"), (9, "study_reference"), (10, "qc_date"),
        (11, "qc_radiologist"), (12, "clinic"), (13, "clinic"), (14, "grade"),
        (15, "qc_classification"), (16, "primary"), (17, "scheme"), (18, "qc_radiologist")]
    reasons = {p.row: p.english() for p in report.problems}
    assert reasons[3] == "no account has the user name or e-mail nobody@example.org"
    assert reasons[4] == "02/03/2026 is not a date in the form YYYY-MM-DD"
    assert reasons[7] == "the sputum decisions differ, so the grade is 2b or 3b, not 1"
    assert "abnormal_tb" in reasons[8] and reasons[13].startswith("the reader has no clinic")
    assert reasons[11] == "jose is not a trainer (QC radiologists have the trainer role)"
    assert db.session.scalar(select(func.count()).select_from(QcRecord)) == 0
    assert db.session.scalar(select(func.count()).select_from(QcImportBatch)) == 0


def test_files_that_are_not_a_template_table(people: dict[str, Any]) -> None:
    missing = import_file(csv_bytes([{"study_reference": "A", "reader": "amina"}]), "x.csv")
    assert {(p.row, p.field) for p in missing.problems} >= {
        (1, "read_date"), (1, "grade"), (1, "qc_radiologist"), (1, "primary_classification")}
    for data, name, reason in [
        (b"", "empty.csv", "the file is empty"),
        (b"PK\x03\x04 not really", "x.xlsx", "the file is not an Excel workbook (.xlsx)"),
        (b"a,b", "x.pdf", "choose a .csv or .xlsx file"),
        (b"grade,grade\n1,1\n", "twice.csv", "the column grade appears twice"),
    ]:
        report = import_file(data, name)
        assert report.refused and report.problems[0].english() == reason, name
    header_only = import_file(csv_bytes([], columns=list(row())), "none.csv")
    assert header_only.problems[0].english() == "there are no rows to import"
    # Excel in French writes semicolons and Windows-1252; both are read.
    latin = csv_bytes([row(clinic="Mathare Clinic")], delimiter=";").decode().encode("cp1252")
    assert not import_file(latin, "fr.csv").refused


def test_duplicates_in_a_file_and_across_imports_are_idempotent(people: dict[str, Any]) -> None:
    rows = [row(), row(study_reference=" acc-1001 "), row(study_reference="ACC-1002")]
    first = import_file(csv_bytes(rows), "a.csv")
    assert [(o.row, o.status, o.same_as_row) for o in first.outcomes] == [
        (2, "created", None), (3, "duplicate", 2), (4, "created", None)]
    assert len(records()) == 2
    again = import_file(csv_bytes(rows), "a.csv")
    assert [o.status for o in again.outcomes] == ["unchanged", "duplicate", "unchanged"]
    assert len(records()) == 2
    corrected = import_file(csv_bytes([row(grade="2a", primary_classification="abnormal_not_tb")]),
                            "b.csv")
    assert [o.status for o in corrected.outcomes] == ["updated"]
    kept = db.session.scalar(select(QcRecord).where(QcRecord.id == corrected.outcomes[0].record_id))
    assert kept is not None and kept.grade == "2a" and kept.batch_id == corrected.batch_id
    # Another reader's read of the same study is another record.
    other = import_file(csv_bytes([row(reader="jose")]), "c.csv")
    assert [o.status for o in other.outcomes] == ["created"] and len(records()) == 3
    batches = db.session.scalars(select(QcImportBatch).order_by(QcImportBatch.id)).all()
    assert [(b.created, b.updated, b.unchanged) for b in batches] == [
        (2, 0, 0), (0, 0, 2), (0, 1, 0), (1, 0, 0)]
    conflict = import_file(csv_bytes([row(study_reference="N1"),
                                      row(study_reference="n1", grade="3a",
                                          primary_classification="abnormal_not_tb")]), "d.csv")
    assert [(p.row, p.field) for p in conflict.problems] == [(3, "study_reference")]
    assert conflict.problems[0].english() == (
        "row 2 has the same study and reader with other reads or grade")
    assert len(records()) == 3


PHI = ["Jane Wanjiru Doe", "1984-07-12", "KE-NAT-20394857", "+254 700 123 456",
       "Plot 7, Mathare North", "MRN-99887766"]


def test_patient_data_in_free_text_and_unknown_columns_is_never_stored(
        people: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rows = [
        row(study_reference="MRN-99887766 Jane Wanjiru Doe", comment="Jane Wanjiru Doe, born "
            "1984-07-12, ID KE-NAT-20394857", patient_name="Jane Wanjiru Doe",
            date_of_birth="1984-07-12", national_id="KE-NAT-20394857",
            phone="+254 700 123 456", address="Plot 7, Mathare North",
            primary_other_text="Jane Wanjiru Doe 1984-07-12"),
        row(study_reference="ACC-2", scheme="ds3030", primary_overall="abnormal",
            primary_findings="cardiac", qc_overall="abnormal",
            qc_findings="Cardiac;Pleural effusion", grade="2b",
            primary_other_text="KE-NAT-20394857 Plot 7, Mathare North",
            qc_other_text="MRN-99887766", comment="+254 700 123 456"),
    ]
    report = import_file(csv_bytes(rows), "phi.csv")
    assert not report.refused, [p.english() for p in report.problems]
    assert set(report.ignored_columns) == {"comment", "patient_name", "date_of_birth",
                                           "national_id", "phone", "address",
                                           "primary_other_text", "qc_other_text"}
    ds = records()[1]
    assert ds.scheme_key == "ds3030" and ds.qc_read["findings"] == ["pleural_effusion", "cardiac"]
    assert (ds.primary_tb, ds.qc_tb) == (False, True)
    stored = every_stored_text()
    for value in PHI:
        assert value.lower() not in stored, value
    # By hand too: a record's free text never reaches a table.
    added = add_record(row(study_reference="ACC-3", comment="Jane Wanjiru Doe"))
    assert not added.refused and "jane" not in every_stored_text()
    logged = caplog.text.lower()
    assert all(value.lower() not in logged for value in PHI)


def test_a_record_by_hand(people: dict[str, Any]) -> None:
    report = add_record(row(study_reference="H-1", grade="3b", qc_classification="abnormal_tb"),
                        actor=people["lead"])
    assert [o.status for o in report.outcomes] == ["created"] and report.source == "manual"
    refused = add_record({"study_reference": "H-2", "reader": "amina"})
    assert [(p.field, p.english()) for p in refused.problems] == [
        ("qc_radiologist", "a user name or e-mail is needed"),
        ("read_date", "a date is needed (YYYY-MM-DD)"),
        ("primary_classification", "the classification is needed"),
        ("qc_classification", "the classification is needed"),
        ("grade", "the grade is needed (1, 2a, 2b, 3a or 3b)")]
    assert len(records()) == 1


def test_reasons_are_translated(people: dict[str, Any]) -> None:
    report = import_file(csv_bytes([row(reader="ghost")]), "x.csv")
    problem = report.problems[0]
    with force_locale("fr"):
        french = problem.text()
    with force_locale("es"):
        spanish = problem.text()
    assert "ghost" in french and "ghost" in spanish
    assert french != problem.english() and spanish != problem.english()


def test_command_line_import_and_exit_codes(app: Flask, people: dict[str, Any],
                                           tmp_path: Path) -> None:
    runner = app.test_cli_runner()
    good = tmp_path / "good.csv"
    good.write_bytes(csv_bytes([row(), row(), row(study_reference="B", comment="x")]))
    done = runner.invoke(args=["qc", "import", str(good), "--as", "lead"])
    assert done.exit_code == 0, done.output
    assert "2 created, 0 updated, 0 unchanged, 1 duplicate rows" in done.output
    assert "row 3: the same as row 2, imported once" in done.output
    assert "column comment is not in the template: ignored, not stored" in done.output
    again = runner.invoke(args=["qc", "import", str(good)])
    assert again.exit_code == 0 and "0 created, 0 updated, 2 unchanged" in again.output
    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_bytes([row(study_reference="C"), row(study_reference="D", grade="9")]))
    refused = runner.invoke(args=["qc", "import", str(bad)])
    assert refused.exit_code == 1
    assert "row 3, grade: 9 is not a grade (1, 2a, 2b, 3a or 3b)" in refused.stderr
    assert "Refused: 1 problem; nothing was imported." in refused.stderr
    assert len(records()) == 2
    wrong_scheme = runner.invoke(args=["qc", "import", str(good), "--scheme", "nope"])
    assert wrong_scheme.exit_code == 1 and "there is no reporting scheme nope" in (
        wrong_scheme.stderr)
    assert runner.invoke(args=["qc", "import", str(tmp_path / "missing.csv")]).exit_code == 2


def _fill(text: str) -> str:
    return (text.replace("reader.username", "amina").replace("reader@example.org",
                                                             "amina@example.org")
            .replace("qc.radiologist", "dr.qc"))


def test_the_template_documents_and_imports(app: Flask, people: dict[str, Any],
                                            tmp_path: Path) -> None:
    scheme = get_scheme("tb_screening")
    # The downloadable template is the one the code writes.
    assert TEMPLATE.read_bytes().decode() == template_csv(scheme)
    report = import_file(_fill(template_csv(scheme)).encode(), "template.csv")
    assert not report.refused, [p.english() for p in report.problems]
    assert report.ignored_columns == ["comment"] and len(records()) == 2
    ds = get_scheme("ds3030")
    assert "primary_other_text" not in template_columns(ds)
    filled = _fill(template_csv(ds)).replace("ACC-2026", "DS-2026")
    assert not import_file(filled.encode(), "ds.csv", default_scheme="ds3030").refused
    written = tmp_path / "template.xlsx"
    result = app.test_cli_runner().invoke(args=["qc", "template", str(written)])
    assert result.exit_code == 0 and written.read_bytes()[:2] == b"PK"
    assert len(template_xlsx(scheme)) > 1000
    docs = (Path(__file__).resolve().parents[1] / "docs" / "qc-import.md").read_text()
    for column in template_columns(scheme):
        assert f"`{column}`" in docs, column


def test_imported_records_feed_the_measures(people: dict[str, Any]) -> None:
    from app.qc.measures import summaries_by
    from app.qc.records import load_reads

    rows = [row(study_reference=f"R{n}", read_date=f"2026-03-{n + 1:02d}",
                grade="3b" if n % 4 == 0 else "1",
                qc_classification="abnormal_tb" if n % 4 == 0 else "normal")
            for n in range(8)]
    rows += [row(study_reference=f"S{n}", reader="jose", grade="1") for n in range(3)]
    # A JSON batch (as the API will send): numbers and lists instead of text.
    api = add_record({**row(study_reference="J1", reader="jose", grade="2a"),
                      "qc_classification": "abnormal_not_tb", "qc_findings": ["fibrosis"],
                      "qc_tb_likelihood": 2}, source="api")
    assert not api.refused, [p.english() for p in api.problems]
    assert not import_file(csv_bytes(rows), "m.csv").refused
    everyone = load_reads()
    assert len(everyone) == 12
    assert [r.read_date for r in everyone] == sorted(r.read_date for r in everyone)
    kenya = load_reads(countries=["KE"])
    assert {r.reader for r in kenya} == {people["amina"].id} and len(kenya) == 8
    assert load_reads(countries=[]) == []
    march = load_reads(reader_ids=[people["amina"].id], start=date(2026, 3, 3),
                       end=date(2026, 3, 6))
    assert [r.read_date.day for r in march] == [3, 4, 5, 6]
    summary = summaries_by(everyone, "reader")[people["amina"].id]
    assert (summary.n, summary.major.successes, summary.sensitivity.value) == (8, 2, 0.0)
    assert summary.specificity.value == 1.0
    assert summaries_by(everyone, "country")["PH"].n == 4


def test_the_required_answer_columns_follow_the_schemes_the_rows_name(
        people: dict[str, Any]) -> None:
    ds_rows = [{"study_reference": "D1", "reader": "amina", "read_date": "2026-01-05",
                "qc_radiologist": "dr.qc", "grade": "1", "scheme": "ds3030",
                "primary_overall": "normal", "qc_overall": "normal"}]
    assert not import_file(csv_bytes(ds_rows), "ds.csv").refused
    mixed = [*ds_rows, row(study_reference="T1")]
    columns = [c for c in dict.fromkeys(k for r in mixed for k in r)
               if c != "qc_classification"]
    refused = import_file(csv_bytes([{k: v for k, v in r.items() if k in columns}
                                     for r in mixed], columns=columns), "mixed.csv")
    assert [(p.row, p.field) for p in refused.problems] == [(1, "qc_classification")]


def test_the_template_is_downloadable(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/static/qc/qc-import-template.csv")
    assert response.status_code == 200
    assert response.get_data() == TEMPLATE.read_bytes()
    assert response.mimetype == "text/csv"


def test_every_problem_of_a_row_is_reported(people: dict[str, Any]) -> None:
    report = import_file(csv_bytes([row(study_reference="", reader="ghost", grade="5",
                                        read_date="yesterday", primary_classification="x")]),
                         "x.csv")
    assert [(p.row, p.field) for p in report.problems] == [
        (2, "study_reference"), (2, "reader"), (2, "read_date"),
        (2, "primary_classification"), (2, "grade")]


def test_the_console_script_exits_1_with_the_report(tmp_path: Path) -> None:
    """``cxr-academy qc import FILE`` as an operator runs it, on a fresh instance."""
    import os
    import subprocess
    import sys

    script = Path(sys.executable).parent / "cxr-academy"
    env = {**os.environ, "CXR_ACADEMY_INSTANCE_PATH": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(script), *args], capture_output=True, text=True, env=env,
                              timeout=120, check=False)

    assert run("db", "upgrade").returncode == 0
    bad = tmp_path / "qc.csv"
    bad.write_bytes(csv_bytes([row()]))
    refused = run("qc", "import", str(bad))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "row 2, reader: no account has the user name or e-mail amina" in refused.stderr
    assert "Refused: 2 problems; nothing was imported." in refused.stderr
    template = tmp_path / "template.csv"
    assert run("qc", "template", str(template)).returncode == 0
    assert template.read_bytes() == TEMPLATE.read_bytes()


def test_a_workbook_that_unpacks_too_far_is_refused(people: dict[str, Any],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import app.qc.files

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(list(row()))
    for n in range(200):
        sheet.append(list(row(study_reference=f"Z{n}").values()))
    out = io.BytesIO()
    book.save(out)
    monkeypatch.setattr(app.qc.files, "MAX_UNPACKED_BYTES", 20_000)
    report = import_file(out.getvalue(), "big.xlsx")
    assert [p.english() for p in report.problems] == ["the workbook unpacks to more than 0 MB"]
    monkeypatch.setattr(app.qc.files, "MAX_FILE_BYTES", 1000)
    too_big = import_file(out.getvalue(), "big.xlsx")
    assert [p.english() for p in too_big.problems] == ["the file is larger than 0 MB"]
    assert records() == []
