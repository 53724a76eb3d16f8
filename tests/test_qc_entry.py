"""QC records from the web, through the pages' own forms on both databases: a file upload
with its per-row report (nothing written when a row is refused), the template, one record
entered by hand, who may do it, and the import's audit sentence in French."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from bs4 import BeautifulSoup
from flask.testing import FlaskClient
from openpyxl import load_workbook
from sqlalchemy import func, select

from app.auth.models import Clinic, User
from app.auth.roles import Role
from app.extensions import db
from app.qc import entry_routes
from app.qc.models import QcImportBatch, QcRecord
from app.qc.pseudonyms import install_secret, study_pseudonym
from tests.conftest import login, post_hand_built
from tests.forms import FormNotFound, submit_form
from tests.test_results_page import visible_text


@pytest.fixture
def people(make_user: Callable[..., User], make_clinic: Callable[..., Clinic]) -> dict[str, Any]:
    clinic = make_clinic("Mathare Clinic", country="KE")
    other = make_clinic("Quezon Clinic", city="Manila", country="PH")
    return {
        "clinic": clinic, "other": other,
        "amina": make_user(username="amina", clinic=clinic, full_name="Amina Otieno"),
        "jose": make_user(Role.TRAINEE_RADIOGRAPHER, username="jose", clinic=other),
        "qc": make_user(Role.TRAINER, username="dr.qc", full_name="Dr QC"),
        "qc2": make_user(Role.TRAINER, username="dr.second", full_name="Dr Second"),
        "admin": make_user(Role.ADMIN, username="root"),
    }


def count(model: type) -> int:
    return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def every_stored_text() -> str:
    parts = []
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            for stored in conn.execute(select(table)):
                parts.extend(json.dumps(v, default=str) for v in stored)
    return "\n".join(parts).lower()


def text_of(response: Any) -> str:
    return visible_text(response.get_data(as_text=True))


def upload(client: FlaskClient, data: bytes, name: str, **fields: Any) -> Any:
    return submit_form(client, "/qc/import", button="Import",
                       fields={"file": (io.BytesIO(data), name), **fields})


def template_from_page(client: FlaskClient, fmt: str = "csv") -> bytes:
    """The template the import page links to, with the example user names made real."""
    page = BeautifulSoup(client.get("/qc/import").get_data(as_text=True), "html.parser")
    link = page.find("a", href=lambda h: bool(h) and h.endswith(f"template.{fmt}"))
    assert link is not None
    response = client.get(str(link["href"]))
    assert response.status_code == 200 and "attachment" in response.headers[
        "Content-Disposition"]
    return response.data


def real_names(csv_text: str) -> str:
    return (csv_text.replace("reader.username", "amina")
            .replace("reader@example.org", "jose@example.org").replace("qc.radiologist", "dr.qc"))


def report_rows(response: Any) -> list[tuple[str, str, str]]:
    page = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    section = page.find(attrs={"data-testid": "import-report"})
    assert section is not None
    return [tuple(td.get_text(" ", strip=True) for td in tr.find_all("td"))  # type: ignore[misc]
            for tr in section.select("tbody tr")]


# ---- the file upload ----------------------------------------------------------------------


def test_a_trainer_imports_the_template_and_a_second_upload_changes_nothing(
        client: FlaskClient, people: dict[str, Any]) -> None:
    assert login(client, "dr.qc").status_code == 302
    data = real_names(template_from_page(client).decode()).encode()
    first = upload(client, data, "march.csv")
    assert first.status_code == 200, text_of(first)
    assert "2 created, 0 updated, 0 unchanged." in text_of(first)
    assert count(QcRecord) == 2
    stored = {r.reader.username: r for r in db.session.scalars(select(QcRecord))}
    assert stored["amina"].study_pseudonym == study_pseudonym("ACC-2026-000123",
                                                              install_secret())
    assert (stored["jose"].grade, stored["jose"].qc_tb, stored["jose"].qc_radiologist_id) == (
        "3b", True, people["qc"].id)
    batch = db.session.scalars(select(QcImportBatch)).one()
    assert (batch.source, batch.imported_by_id) == ("csv", people["qc"].id)
    again = upload(client, data, "march-again.csv")
    assert again.status_code == 200
    assert "0 created, 0 updated, 2 unchanged." in text_of(again)
    assert count(QcRecord) == 2
    assert "acc-2026" not in every_stored_text()


def test_the_xlsx_template_imports_too(client: FlaskClient, people: dict[str, Any]) -> None:
    assert login(client, "root").status_code == 302
    book = load_workbook(io.BytesIO(template_from_page(client, "xlsx")))
    sheet = book.active
    assert sheet is not None
    names = {"reader.username": "amina", "reader@example.org": "jose@example.org",
             "qc.radiologist": "dr.qc"}
    for line in sheet.iter_rows():
        for cell in line:
            if cell.value in names:
                cell.value = names[cell.value]
    out = io.BytesIO()
    book.save(out)
    response = upload(client, out.getvalue(), "march.xlsx")
    assert response.status_code == 200, text_of(response)
    assert "2 created" in text_of(response)
    assert db.session.scalars(select(QcImportBatch)).one().source == "xlsx"


BAD_ROWS = (
    "study_reference,reader,read_date,qc_radiologist,grade,primary_classification,"
    "qc_classification\r\n"
    "ACC-1,amina,2026-03-02,dr.qc,1,normal,normal\r\n"
    "ACC-2,nobody,2026-03-02,dr.qc,1,normal,normal\r\n"
    "ACC-3,amina,2026-03-02,dr.qc,7,normal,normal\r\n"
    f"ACC-4,amina,{(date.today() + timedelta(days=10)).isoformat()},dr.qc,1,normal,normal\r\n"
)


def test_malformed_rows_are_reported_row_column_reason_and_nothing_is_written(
        client: FlaskClient, people: dict[str, Any]) -> None:
    assert login(client, "dr.qc").status_code == 302
    response = upload(client, BAD_ROWS.encode(), "bad.csv")
    assert response.status_code == 422
    assert "Refused: 3 problems; nothing was imported." in text_of(response)
    rows = report_rows(response)
    assert [(r, c) for r, c, _ in rows] == [("3", "reader"), ("4", "grade"), ("5", "read_date")]
    assert "no account has the user name or e-mail nobody" in rows[0][2]
    assert "7 is not a grade" in rows[1][2] and "in the future" in rows[2][2]
    assert count(QcRecord) == 0 and count(QcImportBatch) == 0


def test_the_report_is_in_the_readers_language(client: FlaskClient,
                                               people: dict[str, Any]) -> None:
    people["qc"].language = "fr"
    db.session.commit()
    assert login(client, "dr.qc").status_code == 302
    response = submit_form(client, "/qc/import", button="Importer",
                           fields={"file": (io.BytesIO(BAD_ROWS.encode()), "bad.csv")})
    assert response.status_code == 422
    text = text_of(response)
    assert "Refusé\u00a0: 3 problèmes\u00a0; rien n\u2019a été importé." in text
    assert "7 n'est pas un grade" in text
    assert "aucun compte n'a le nom d'utilisateur" in text


def test_phi_in_free_text_and_unknown_columns_is_never_stored(
        client: FlaskClient, people: dict[str, Any]) -> None:
    assert login(client, "dr.qc").status_code == 302
    data = (b"study_reference,reader,read_date,qc_radiologist,grade,primary_classification,"
            b"qc_classification,comment,patient_name,primary_other_text\r\n"
            b"ACC-9,amina,2026-03-02,dr.qc,1,normal,normal,Jane Wanjiru DOB 1980-04-02,"
            b"Jane Wanjiru,MRN 5566\r\n")
    response = upload(client, data, "phi.csv")
    assert response.status_code == 200, text_of(response)
    assert "patient_name" in text_of(response)  # named as ignored
    stored = every_stored_text()
    assert count(QcRecord) == 1
    for planted in ("wanjiru", "1980-04-02", "5566", "acc-9", "phi.csv"):
        assert planted not in stored, planted


def test_files_that_are_not_tables_are_refused_with_the_reason(
        client: FlaskClient, people: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    assert login(client, "dr.qc").status_code == 302
    pdf = upload(client, b"%PDF-1.4", "scan.pdf")
    assert pdf.status_code == 400 and "choose a .csv or .xlsx file" in text_of(pdf)
    broken = upload(client, b"not a zip", "march.xlsx")
    assert broken.status_code == 400 and "not an Excel workbook" in text_of(broken)
    empty = upload(client, b"", "empty.csv")
    assert empty.status_code == 400 and "the file is empty" in text_of(empty)
    monkeypatch.setattr(entry_routes, "MAX_FILE_BYTES", 100)
    big = upload(client, BAD_ROWS.encode(), "big.csv")
    assert big.status_code == 413 and "the file is larger than" in text_of(big)
    assert count(QcRecord) == 0 and count(QcImportBatch) == 0


def test_the_form_needs_a_file(client: FlaskClient, people: dict[str, Any]) -> None:
    assert login(client, "dr.qc").status_code == 302
    response = submit_form(client, "/qc/import", button="Import")
    assert response.status_code == 400 and "This field is required" in text_of(response)


def test_template_downloads(client: FlaskClient, people: dict[str, Any]) -> None:
    assert login(client, "dr.qc").status_code == 302
    csv_file = client.get("/qc/template.csv?scheme=ds3030")
    assert csv_file.status_code == 200 and csv_file.mimetype == "text/csv"
    assert csv_file.get_data(as_text=True).startswith("study_reference,reader,")
    assert "primary_overall" in csv_file.get_data(as_text=True)
    assert client.get("/qc/template.pdf").status_code == 404
    unknown = client.get("/qc/template.csv?scheme=nothing")
    assert unknown.status_code == 400 and "nothing" in text_of(unknown)
    quality = client.get("/qc/template.csv?scheme=image_quality")
    assert quality.status_code == 400


# ---- who may ------------------------------------------------------------------------------


@pytest.mark.parametrize(("roles", "status"), [
    ((Role.TRAINEE_RADIOLOGIST,), 403), ((Role.PROGRAMME_LEAD,), 403),
    ((Role.TRAINER,), 200), ((Role.ADMIN,), 200),
])
def test_only_trainers_and_administrators_enter_qc_records(
        client: FlaskClient, login_as: Callable[..., User], roles: tuple[Role, ...],
        status: int) -> None:
    login_as(*roles)
    for path in ("/qc/import", "/qc/records/new", "/qc/template.csv"):
        assert client.get(path).status_code == status, path
    nav = BeautifulSoup(client.get("/help/").get_data(as_text=True), "html.parser").find("nav")
    assert nav is not None
    assert bool(nav.find("a", href="/qc/import")) == (status == 200)


def test_without_signing_in_the_pages_ask_for_it(client: FlaskClient) -> None:
    for path in ("/qc/import", "/qc/records/new", "/qc/template.xlsx"):
        response = client.get(path)
        assert response.status_code == 302 and "/auth/login" in response.location


# ---- one record by hand -------------------------------------------------------------------


def by_hand(**values: Any) -> dict[str, Any]:
    base = {"reader": "amina", "read_date": "2026-03-02", "qc_date": "2026-03-09",
            "study_reference": "ACC-77", "primary_classification": "normal",
            "qc_classification": "abnormal_tb", "qc_findings": ["infiltrate", "cavitary_lesion"],
            "qc_tb_likelihood": "4", "grade": "3b"}
    return {**base, **values}


def test_a_trainer_enters_one_record_and_entering_it_again_updates_it(
        client: FlaskClient, people: dict[str, Any]) -> None:
    assert login(client, "dr.qc").status_code == 302
    page = client.get("/qc/records/new").get_data(as_text=True)
    assert "Dr QC" in visible_text(page)  # the QC radiologist: the trainer signed in
    saved = submit_form(client, "/qc/records/new", button="Save the QC record",
                        fields=by_hand(), follow_redirects=True)
    assert saved.status_code == 200
    assert "The QC record was saved." in text_of(saved)
    assert "ACC-77" not in saved.get_data(as_text=True)  # never shown again
    record = db.session.scalars(select(QcRecord)).one()
    assert (record.reader_id, record.clinic_id, record.qc_radiologist_id) == (
        people["amina"].id, people["clinic"].id, people["qc"].id)
    assert record.qc_read == {"classification": "abnormal_tb", "tb_likelihood": 4,
                              "findings": ["infiltrate", "cavitary_lesion"]}
    assert (record.primary_tb, record.qc_tb, record.grade) == (False, True, "3b")
    assert record.batch.source == "manual"
    same = submit_form(client, "/qc/records/new", button="Save the QC record",
                       fields=by_hand(study_reference=" acc-77 "), follow_redirects=True)
    assert "nothing changed" in text_of(same)
    changed = submit_form(client, "/qc/records/new", button="Save the QC record",
                          fields=by_hand(primary_classification="abnormal_tb", grade="1"),
                          follow_redirects=True)
    assert "it was updated" in text_of(changed)
    assert count(QcRecord) == 1
    db.session.expire_all()
    assert db.session.scalars(select(QcRecord)).one().grade == "1"
    assert "acc-77" not in every_stored_text()


def test_bad_hand_entries_are_refused_beside_their_fields_and_nothing_is_written(
        client: FlaskClient, people: dict[str, Any]) -> None:
    assert login(client, "dr.qc").status_code == 302
    empty = submit_form(client, "/qc/records/new", button="Save the QC record")
    assert empty.status_code == 422
    page = BeautifulSoup(empty.get_data(as_text=True), "html.parser")

    def error_beside(name: str) -> str:
        control = page.find(attrs={"name": name})
        assert control is not None, name
        box = control.find_parent(class_="field")
        assert box is not None and "has-error" in box["class"], name
        return " ".join(e.get_text() for e in box.select(".error"))

    assert "a user name or e-mail is needed" in error_beside("reader")
    assert "a date is needed" in error_beside("read_date")
    assert "the study reference is needed" in error_beside("study_reference")
    assert "the grade is needed" in error_beside("grade")
    assert "the classification is needed" in error_beside("primary_classification")
    assert "the classification is needed" in error_beside("qc_classification")
    wrong = submit_form(client, "/qc/records/new", button="Save the QC record",
                        fields=by_hand(grade="1", qc_date="2026-02-01"))
    assert wrong.status_code == 422
    text = text_of(wrong)
    assert "the sputum decisions differ" in text and "before the read date" in text
    assert 'value="ACC-77"' in wrong.get_data(as_text=True)  # kept to correct, not saved
    future = (date.today() + timedelta(days=30)).isoformat()
    later = submit_form(client, "/qc/records/new", button="Save the QC record",
                        fields=by_hand(read_date=future, qc_date=""))
    assert later.status_code == 422 and "in the future" in text_of(later)
    assert count(QcRecord) == 0 and count(QcImportBatch) == 0


def test_choices_the_page_does_not_offer_cannot_be_sent(
        client: FlaskClient, people: dict[str, Any]) -> None:
    assert login(client, "dr.qc").status_code == 302
    with pytest.raises(FormNotFound):  # a trainer enters their own QC reads
        submit_form(client, "/qc/records/new", button="Save the QC record",
                    fields=by_hand(qc_radiologist="dr.second"))
    with pytest.raises(FormNotFound):  # the QC radiologist is not a reader to choose
        submit_form(client, "/qc/records/new", button="Save the QC record",
                    fields=by_hand(reader="dr.second"))
    forged = post_hand_built(client, "/qc/records/new", {**by_hand(reader="dr.second"),
                                                         "scheme": "tb_screening"})
    assert forged.status_code == 400 and "Not a valid choice" in text_of(forged)
    forged_scheme = post_hand_built(client, "/qc/records/new",
                                    {**by_hand(), "scheme": "image_quality"})
    assert forged_scheme.status_code == 400
    assert client.get("/qc/records/new?scheme=nothing").status_code == 400
    assert count(QcRecord) == 0


def test_an_administrator_chooses_the_qc_radiologist(client: FlaskClient,
                                                     people: dict[str, Any]) -> None:
    assert login(client, "root").status_code == 302
    missing = submit_form(client, "/qc/records/new", button="Save the QC record",
                          fields=by_hand())
    assert missing.status_code == 422 and "a user name or e-mail is needed" in text_of(missing)
    saved = submit_form(client, "/qc/records/new", button="Save the QC record",
                        fields=by_hand(qc_radiologist="dr.second", clinic="Quezon Clinic"))
    assert saved.status_code == 303
    record = db.session.scalars(select(QcRecord)).one()
    assert (record.qc_radiologist_id, record.clinic_id) == (people["qc2"].id,
                                                            people["other"].id)


def test_the_hand_entry_page_speaks_the_readers_language(
        client: FlaskClient, people: dict[str, Any]) -> None:
    people["qc"].language = "fr"
    db.session.commit()
    assert login(client, "dr.qc").status_code == 302
    text = text_of(client.get("/qc/records/new"))
    for phrase in ("Saisir un résultat de contrôle qualité", "Normale",
                   "Anormale \u2013 évocatrice de tuberculose", "Lésion cavitaire",
                   "3b\u00a0: discordance majeure"):
        assert phrase in text, phrase
    page = BeautifulSoup(client.get("/qc/records/new?scheme=ds3030").get_data(as_text=True),
                         "html.parser")
    assert page.find(attrs={"name": "primary_overall"}) is not None
    assert page.find(attrs={"name": "primary_other_text"}) is None  # free text: not asked


# ---- the audit ------------------------------------------------------------------------------


def test_the_audit_page_says_what_an_import_did_in_french(
        client: FlaskClient, people: dict[str, Any]) -> None:
    assert login(client, "dr.qc").status_code == 302
    assert submit_form(client, "/qc/records/new", button="Save the QC record",
                       fields=by_hand()).status_code == 303
    people["admin"].language = "fr"
    db.session.commit()
    client.delete_cookie(client.application.config["SESSION_COOKIE_NAME"])
    assert login(client, "root").status_code == 302
    text = text_of(client.get("/admin/audit"))
    assert "Résultats de contrôle qualité importés" in text
    assert ("A importé des résultats de contrôle qualité depuis le formulaire de saisie "
            "(créés\u00a0: 1, mis à jour\u00a0: 0, inchangés\u00a0: 0).") in text


def test_the_trainers_guide_explains_qc_records(client: FlaskClient) -> None:
    text = text_of(client.get("/help/trainer"))
    assert "import the QC centre's re-reads" in text and "Or enter one record by hand" in text
