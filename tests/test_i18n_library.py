"""The case library, the jobs, the PACS pages and the command line in French and Spanish:
pages rendered and forms submitted in the reader's language, stored (English) reasons shown
in it, the page scripts' texts from the catalogue, and the command line in the language of
its environment (English by default)."""

from __future__ import annotations

import io
import json
import re

import pytest
from bs4 import BeautifulSoup
from flask_babel import force_locale
from sqlalchemy import select

from app.auth.models import User
from app.auth.roles import Role
from app.cases.ingest import EMPTY_FOLDER_REASON, NOT_TRIED_REASON
from app.cases.models import Case
from app.cases.processed import NO_FILE_META_REASON, STORAGE_FULL_REASON
from app.cases.reasons import TEMPLATES, translate_reason
from app.cases.sandbox import MEMORY_REASON
from app.cli_language import environment_language
from app.extensions import db
from app.jobs.lifecycle import encrypt_text, new_job
from app.jobs.models import Job, JobItem, JobKind, JobStatus
from tests.conftest import login
from tests.dicom_factory import cr_dataset, to_bytes
from tests.forms import submit_form
from tests.test_results_page import visible_text


def speaks(user: User, language: str) -> User:
    user.language = language
    db.session.commit()
    return user


@pytest.fixture
def trainer(login_as) -> User:
    return login_as(Role.TRAINER)


def text_of(response) -> str:
    return visible_text(response.get_data(as_text=True))


def results(response) -> dict[str, tuple[str, str]]:
    """File name -> (result, reason) as the job page shows them."""
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    rows = {}
    for row in soup.select('[data-testid="file-result"]'):
        name, outcome, details = row.find_all("td")
        reason = details.select_one(".reason")
        rows[name.get_text(strip=True)] = (outcome.get_text(" ", strip=True),
                                           reason.get_text(" ", strip=True) if reason else "")
    return rows


# ---- the import page and its report ---------------------------------------------------------

@pytest.mark.parametrize(("language", "heading", "button", "refused", "reason", "summary"), [
    ("fr", "Importer des fichiers DICOM", "Importer", "refusé", "pas un fichier DICOM",
     "0 importé(s) · 0 déjà dans la bibliothèque · 1 refusé(s)"),
    ("es", "Importar archivos DICOM", "Importar", "rechazado", "no es un archivo DICOM",
     "0 importado(s) · 0 ya en la biblioteca · 1 rechazado(s)"),
])
def test_upload_page_and_its_report_in_the_readers_language(client, trainer, language, heading,
                                                            button, refused, reason, summary):
    speaks(trainer, language)
    page = client.get("/cases/upload")
    assert f"<h1>{heading}</h1>" in page.get_data(as_text=True)
    assert "Chest radiographs" not in text_of(page)

    # The rendered form, submitted with its own (translated) button and a file that is no DICOM.
    report = submit_form(client, "/cases/upload", button=button, follow_redirects=True,
                         fields={"files": [(io.BytesIO(b"plain text"), "notes.dcm")]})
    assert report.status_code == 200
    assert results(report)["notes.dcm"] == (refused, reason)
    assert summary in text_of(report)
    # Stored as the import wrote it: the API and the logs read English.
    item = db.session.scalars(select(JobItem)).one()
    assert item.reason == "not a DICOM file"
    job_url = re.search(r'data-status-url="([^"]+)"', report.get_data(as_text=True)).group(1)
    assert client.get(job_url).get_json()["items"][0]["reason"] == reason
    assert client.get(f"/api/v1/jobs/{item.job_id}").status_code in (200, 401, 403)


def test_the_job_page_carries_its_scripts_texts_in_the_readers_language(client, trainer):
    speaks(trainer, "fr")
    report = submit_form(client, "/cases/upload", button="Importer", follow_redirects=True,
                         fields={"files": [(io.BytesIO(b"x"), "x.dcm")]})
    soup = BeautifulSoup(report.get_data(as_text=True), "html.parser")
    messages = json.loads(soup.find("script", id="js-messages").string)
    assert messages["Case %(number)s"] == "Cas %(number)s"
    assert messages["imported as %(link)s"] == "importé comme %(link)s"
    assert soup.find(attrs={"data-testid": "job-status"})["data-status"] == "done"
    assert soup.find(attrs={"data-testid": "job-status"}).get_text() == "terminée"


# ---- the case list and a case -----------------------------------------------------------

def test_case_list_and_case_page_in_spanish(client, trainer):
    speaks(trainer, "es")
    submit_form(client, "/cases/upload", button="Importar", follow_redirects=True,
                fields={"files": [(io.BytesIO(to_bytes(cr_dataset(seed=1, rows=80,
                                                                  columns=60))), "a.dcm")]})
    case = db.session.scalars(select(Case)).one()
    listing = text_of(client.get("/cases/"))
    assert "Biblioteca de casos" in listing and "Dificultad" in listing
    assert "1 caso" in listing and "página 1 de 1" in listing
    assert "No cases match" not in listing and "Filter" not in listing
    detail = client.get(f"/cases/{case.id}")
    text = text_of(detail)
    assert "Lectura de referencia" in text and "Todavía no hay lectura de referencia." in text
    assert "Enviar a revisión" in text and "Abrir en el visor" in text
    assert "Desidentificación:" in text
    assert "Reference read" not in text and "Open in the viewer" not in text

    # A refused change of status: the reason in Spanish on the error page.
    published = submit_form(client, f"/cases/{case.id}", button="Enviar a revisión",
                            follow_redirects=True)
    assert published.status_code == 200
    assert "ahora: en revisión" in text_of(published)
    missing = client.get("/cases/999999")
    assert missing.status_code == 404
    assert "No existe el caso 999999." in text_of(missing)


# ---- jobs: the list and a job whose reasons were stored in English ---------------------------

def test_jobs_show_stored_reasons_in_french(app, client, trainer):
    speaks(trainer, "fr")
    job = new_job(JobKind.CASE_IMPORT, trainer, {})
    job.status = JobStatus.FAILED.value
    job.error = "Cancelled by admin."
    job.progress_total = job.progress_done = 2
    db.session.add_all([
        JobItem(job_id=job.id, position=0, status="rejected",
                name_encrypted=encrypt_text("a.dcm"),
                reason="the same image is already in case 12; not stored again"),
        JobItem(job_id=job.id, position=1, status="rejected",
                name_encrypted=encrypt_text("b.dcm"), reason=NO_FILE_META_REASON),
    ])
    db.session.commit()

    listing = text_of(client.get("/jobs/"))
    assert "Mes tâches" in listing and "Import de cas" in listing and "en échec" in listing
    page = client.get(f"/jobs/{job.id}")
    shown = results(page)
    assert shown["a.dcm"] == ("refusé",
                              "la même image est déjà dans le cas 12\u00a0; non enregistrée à "
                              "nouveau")
    assert shown["b.dcm"][1].startswith("DICOM sans en-tête Part 10")
    text = text_of(page)
    assert "Annulée par admin." in text
    assert "1 fichier est en DICOM sans en-tête Part 10." in text
    # The page's script reads the same words; the API keeps the stored English.
    status = client.get(f"/jobs/{job.id}/status").get_json()
    assert status["error"] == "Annulée par admin."
    assert status["items"][0]["reason"].startswith("la même image est déjà dans le cas 12")
    assert db.session.get(Job, job.id).error == "Cancelled by admin."


def test_stored_reasons_are_translated_when_shown(app):
    # Each constant the import writes is one of the templates (kept in step by this test).
    for constant in (NO_FILE_META_REASON, STORAGE_FULL_REASON, NOT_TRIED_REASON,
                     EMPTY_FOLDER_REASON, MEMORY_REASON):
        assert constant in TEMPLATES, constant
    with app.test_request_context(), force_locale("fr"):
        assert translate_reason("could not be read (Permission denied)") == (
            "n'a pas pu être lu (Permission denied)")
        # A nested reason is translated too; one built from DICOM names stays as stored.
        assert translate_reason("Nothing was exported: the folder holds no files: nothing "
                                "was imported.") == (
            "Rien n'a été exporté\u00a0: le dossier ne contient aucun fichier\u00a0: rien n'a "
            "été importé.")
        assert translate_reason("Modality: MR is not CR or DX") == "Modality: MR is not CR or DX"
        assert translate_reason(None) == ""
    with app.test_request_context(), force_locale("en"):
        assert translate_reason("could not be read (EIO)") == "could not be read (EIO)"


# ---- PACS pages ---------------------------------------------------------------------------

def test_pacs_pages_in_french(app, client, make_user):
    admin = speaks(make_user(Role.ADMIN), "fr")
    login(client, admin.username)
    search = text_of(client.get("/pacs/"))
    assert "Importer depuis un PACS" in search and "Aucun PACS n'est encore configuré" in search
    listing = client.get("/pacs/endpoints")
    assert "Ajouter un point d'accès PACS" in text_of(listing)
    refused = submit_form(client, "/pacs/endpoints", button="Ajouter le point d'accès",
                          fields={"name": "X", "kind": "dicomweb", "url": "ftp://pacs"})
    assert refused.status_code == 400
    assert "l'URL DICOMweb doit commencer par http:// ou https://" in text_of(refused)
    added = submit_form(client, "/pacs/endpoints", button="Ajouter le point d'accès",
                        fields={"name": "Main", "kind": "dicomweb",
                                "url": "http://127.0.0.1:9/dicom-web"}, follow_redirects=True)
    text = text_of(added)
    assert "Point d'accès PACS Main ajouté." in text and "Tester la connexion" in text
    assert "Identifiants\u00a0: <strong>non définis</strong>." in added.get_data(as_text=True)


# ---- the command line ---------------------------------------------------------------------

LOCALE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def run(app, *args: str, **env: str):
    environment = {name: None for name in LOCALE_VARIABLES}
    environment.update(env)
    return app.test_cli_runner().invoke(args=list(args), env=environment)


def test_command_line_speaks_the_environments_language(app):
    english = run(app, "cases", "set-status", "999", "in_review")
    assert english.exit_code == 1 and english.output == "Error: there is no case 999\n"
    french = run(app, "cases", "set-status", "999", "in_review", LANG="fr_FR.UTF-8")
    assert french.exit_code == 1 and french.output == "Error: il n'y a pas de cas 999\n"
    spanish = run(app, "cases", "set-status", "999", "in_review", LANGUAGE="es:fr",
                  LANG="fr_FR.UTF-8")
    assert spanish.output == "Error: no existe el caso 999\n"
    clinic = run(app, "clinics", "create", "--name", "Dakar", "--city", "Dakar",
                 "--country", "SN", LC_ALL="fr_SN.UTF-8")
    assert clinic.exit_code == 0, clinic.output
    assert clinic.output.startswith("clinique Dakar créée (id ")


@pytest.mark.parametrize(("environ", "language"), [
    ({}, "en"),
    ({"LANG": "fr_FR.UTF-8"}, "fr"),
    ({"LANG": "es_MX"}, "es"),
    ({"LANG": "de_DE.UTF-8"}, "en"),
    ({"LC_MESSAGES": "es_ES.UTF-8", "LANG": "fr_FR.UTF-8"}, "es"),
    ({"LC_ALL": "fr_CA.UTF-8", "LC_MESSAGES": "es_ES.UTF-8"}, "fr"),
    ({"LANGUAGE": "de:es", "LANG": "fr_FR.UTF-8"}, "es"),
    ({"LANGUAGE": "fr", "LC_ALL": "C"}, "en"),  # gettext ignores LANGUAGE under "C"
    ({"LANGUAGE": "fr", "LANG": "C.UTF-8"}, "en"),
])
def test_environment_language_follows_gettexts_order(environ, language):
    assert environment_language(environ) == language


# ---- the page of an unreachable service ----------------------------------------------------

def test_the_unavailable_page_is_in_the_browsers_language(app):
    from tests.test_shared_services import _app_on, _closed_redis_url

    client = _app_on(app, RATELIMIT_STORAGE_URI=_closed_redis_url()).test_client()
    page = client.get("/verify/", headers={"Accept-Language": "es-419,es;q=0.9"})
    assert page.status_code == 503
    html = page.get_data(as_text=True)
    assert '<html lang="es">' in html and "Servicio no disponible" in html
    assert "El portal no puede acceder en este momento" in html and "Intentar de nuevo" in html
    as_json = client.get("/verify/ABCD-EFGH.json", headers={
        "Accept": "application/json", "Accept-Language": "es"}).get_json()
    assert as_json["message"].startswith("The portal cannot reach a service")
