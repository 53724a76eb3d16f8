"""Teaching notes carry their language: a case holds a note per language (en, fr, es), the
trainer writes each on the case page, a trainee reads theirs (else the English one, else
any, marked with its language), and case files, the API and migrations keep them all."""

from __future__ import annotations

import json
import shutil

import pytest
from bs4 import BeautifulSoup
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, select, text

from app import MIGRATIONS_DIR
from app.auth.roles import Role
from app.cases.library_files import load_library
from app.cases.models import NOTE_LANGUAGES, Case, CaseTeachingNote
from app.extensions import db
from app.i18n import LANGUAGES
from app.quizzes.exercises import create_exercise
from tests.conftest import csrf_token, login, post_hand_built
from tests.forms import submit_form
from tests.test_api import bearer, make_token
from tests.test_attempts import cases, post_start, press_submit, save_url  # noqa: F401
from tests.test_library_files import LIBRARY

NOTES = {"en": "Thick-walled cavity: active TB until proven otherwise.",
         "fr": "Cavité à paroi épaisse\u00a0: tuberculose active jusqu'à preuve du contraire.",
         "es": "Cavidad de pared gruesa: TB activa mientras no se demuestre lo contrario."}
REVISION_BEFORE = "f3a9c1e7b5d2"


def test_the_note_languages_are_the_portals():
    assert tuple(LANGUAGES) == NOTE_LANGUAGES


def test_the_reader_gets_their_language_else_english_else_any(app, cases):  # noqa: F811
    case = cases[0]
    case.notes = []
    case.set_note("es", NOTES["es"])
    db.session.commit()
    assert case.note_for("fr").language == "es"  # no French, no English: the one there is
    case.set_note("en", NOTES["en"])
    assert case.note_for("fr").language == "en"
    assert case.note_for("es").text == NOTES["es"]
    case.set_note("es", "  ")  # an empty note is no note
    db.session.commit()
    assert case.notes_by_language == {"en": NOTES["en"]}
    assert case.teaching_notes == NOTES["en"]


# ---- the trainer's case page ---------------------------------------------------------------


def test_the_trainer_writes_a_note_per_language_on_the_case_page(client, login_as,
                                                                 cases):  # noqa: F811
    login_as(Role.TRAINER)
    case = cases[0]
    page = BeautifulSoup(client.get(f"/cases/{case.id}").get_data(as_text=True),
                         "html.parser")
    areas = {a["name"]: a.get("lang") for a in page.select("textarea[name^=teaching_notes]")}
    assert areas == {"teaching_notes": "en", "teaching_notes_fr": "fr",
                     "teaching_notes_es": "es"}
    response = submit_form(client, f"/cases/{case.id}", button="Save", fields={
        "teaching_notes": NOTES["en"], "teaching_notes_fr": NOTES["fr"],
        "teaching_notes_es": NOTES["es"]})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Case, case.id).notes_by_language == NOTES
    # The page shows each note in its own field; emptying one removes that note only.
    response = submit_form(client, f"/cases/{case.id}", button="Save",
                           fields={"teaching_notes_fr": ""})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Case, case.id).notes_by_language == {
        "en": NOTES["en"], "es": NOTES["es"]}


def test_an_oversize_note_is_refused_and_nothing_written(client, login_as,
                                                        cases):  # noqa: F811
    login_as(Role.TRAINER)
    case = cases[0]
    before = case.notes_by_language
    # Over the field's maxlength: a request no rendered form makes.
    response = post_hand_built(client, f"/cases/{case.id}", {
        "source": case.source, "teaching_notes_es": "x" * 20_001,
        "teaching_notes_fr": NOTES["fr"]})
    assert response.status_code == 400
    assert "20000" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Case, case.id).notes_by_language == before


# ---- the trainee's result page -------------------------------------------------------------


def _result_page(app, make_user, practice, language: str) -> BeautifulSoup:
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    client = app.test_client()
    login(client, trainee.username)
    started = post_start(client, practice)
    attempt_id = int(started.headers["Location"].split("/attempts/")[1].split("/")[0])
    token = csrf_token(client, started.headers["Location"])
    for position in (1, 2):
        client.post(save_url(attempt_id, position), headers={"X-CSRFToken": token},
                    json={"answers": {"overall": "normal"}, "marks": []})
    assert press_submit(client, attempt_id).status_code == 302
    trainee.language = language
    db.session.commit()
    html = client.get(f"/training/attempts/{attempt_id}/result").get_data(as_text=True)
    return BeautifulSoup(html, "html.parser")


def test_the_trainee_reads_the_note_in_their_language(app, make_user,
                                                      cases):  # noqa: F811
    for case in cases[:2]:
        case.notes = []
        for language, note in NOTES.items():
            case.set_note(language, note)
    cases[1].set_note("fr", "")  # the second case has no French note
    db.session.commit()
    practice = create_exercise(title="Practice", kind="practice", scheme_key="ds3030",
                               case_ids=[c.id for c in cases[:2]], actor=None)
    page = _result_page(app, make_user, practice, "fr")
    assert page.html["lang"] == "fr"
    shown = sorted((p.get_text(), p.get("lang")) for p in page.select("p.teaching"))
    # The French note as the page's own text; the English one marked as English.
    assert shown == sorted([(NOTES["fr"], None), (NOTES["en"], "en")])
    page = _result_page(app, make_user, practice, "es")
    assert [(p.get_text(), p.get("lang")) for p in page.select("p.teaching")] == [
        (NOTES["es"], None)] * 2


# ---- case files, the API -------------------------------------------------------------------


def test_case_files_carry_every_language_and_older_files_load_as_english(app, tmp_path):
    folder = tmp_path / "lib"
    (folder / "cases").mkdir(parents=True)
    shutil.copy(LIBRARY / "cases" / "phantom-cavity-1.json", folder / "cases")
    spec = json.loads((folder / "cases" / "phantom-cavity-1.json").read_text())
    assert set(spec["teaching_notes"]) == {"en", "fr", "es"}  # the demo speaks all three
    assert "Lésion cavitaire" in spec["teaching_notes"]["fr"]
    shutil.copy(LIBRARY / "cases" / "phantom-normal-1.json", folder / "cases")
    normal = json.loads((folder / "cases" / "phantom-normal-1.json").read_text())
    normal["teaching_notes"] = "Plain text: English."  # as files were before languages
    (folder / "cases" / "phantom-normal-1.json").write_text(json.dumps(normal))
    results = load_library(folder)
    assert [r.status for r in results] == ["loaded", "loaded"], results
    by_note = {c.teaching_notes.split(":")[0]: c for c in db.session.scalars(select(Case))}
    assert by_note["Plain text"].notes_by_language == {"en": "Plain text: English."}
    cavity = next(c for c in by_note.values() if "cavitary_lesion" in c.tags)
    assert cavity.notes_by_language == spec["teaching_notes"]

    exported = tmp_path / "exported"
    result = app.test_cli_runner().invoke(args=["cases", "export-library", str(exported)])
    assert result.exit_code == 0, result.output
    written = {p.stem: json.loads(p.read_text()) for p in (exported / "cases").glob("*.json")}
    assert sorted(s["teaching_notes"] for s in written.values()
                  if "fr" in s["teaching_notes"]) == [spec["teaching_notes"]]


@pytest.mark.parametrize(("notes", "message"), [
    ({"de": "Notiz"}, "teaching notes are in en, fr, es, not 'de'"),
    ({"fr": 3}, "a teaching note is a text of at most 20000 characters"),
    ({"fr": "x" * 20_001}, "at most 20000 characters"),
    (["en"], "'teaching_notes' must be a text or an object"),
])
def test_a_case_file_with_bad_notes_is_refused_with_the_reason(app, tmp_path, notes,
                                                               message):
    folder = tmp_path / "lib"
    (folder / "cases").mkdir(parents=True)
    spec = json.loads((LIBRARY / "cases" / "phantom-normal-2.json").read_text())
    (folder / "cases" / "bad.json").write_text(json.dumps({**spec, "teaching_notes": notes}))
    [result] = load_library(folder)
    assert result.status != "loaded" and message in str(result.reason)
    assert db.session.scalars(select(Case)).all() == []


def test_the_api_gives_every_language_and_the_english_note(client, make_user,
                                                          cases):  # noqa: F811
    case = cases[0]
    for language, note in NOTES.items():
        case.set_note(language, note)
    db.session.commit()
    token = make_token(client, make_user(Role.TRAINER), scope="read")
    body = client.get(f"/api/v1/cases/{case.id}", headers=bearer(token)).json
    assert body["teaching_notes"] == NOTES["en"]
    assert body["teaching_notes_by_language"] == NOTES


# ---- the migration -------------------------------------------------------------------------


def test_the_migration_moves_notes_to_english_and_back(app, cases):  # noqa: F811
    cases[0].notes = []
    cases[0].set_note("fr", NOTES["fr"])  # only a French note: it is the one kept going down
    cases[1].notes = []
    for language, note in NOTES.items():
        cases[1].set_note(language, note)
    cases[2].notes = []
    db.session.commit()
    ids = [c.id for c in cases]
    db.session.remove()
    downgrade(directory=str(MIGRATIONS_DIR), revision=REVISION_BEFORE)
    assert "case_teaching_note" not in inspect(db.engine).get_table_names()
    with db.engine.begin() as conn:
        kept = dict(conn.execute(text("SELECT id, teaching_notes FROM teaching_case")).all())
        assert kept == {ids[0]: NOTES["fr"], ids[1]: NOTES["en"], ids[2]: ""}
        conn.execute(text("UPDATE teaching_case SET teaching_notes = 'Older note' "
                          "WHERE id = :id"), {"id": ids[2]})
    upgrade(directory=str(MIGRATIONS_DIR))
    rows = db.session.execute(select(CaseTeachingNote.case_id, CaseTeachingNote.language,
                                     CaseTeachingNote.text)).all()
    assert sorted(rows) == sorted([(ids[0], "en", NOTES["fr"]), (ids[1], "en", NOTES["en"]),
                                   (ids[2], "en", "Older note")])
