"""Certification in the reader's language: the lead's and trainee's pages (and their forms'
reasons and flashes), the dashboards' figure, the certificate PDF in its holder's language
beside the English, the reminders and notices in the recipient's language, and the exports'
headers in the requesting reader's language (cells unchanged)."""

from __future__ import annotations

import csv
import html as html_module
import io
import re
import uuid
from datetime import UTC, datetime, timedelta

import pypdfium2
import pytest
from babel.dates import format_date
from flask_babel import force_locale
from openpyxl import load_workbook
from sqlalchemy import select

from app.auth.models import User
from app.auth.roles import Role
from app.certification import figures
from app.certification.models import Certificate, CertificateReview, CertificationNotice
from app.certification.reminders import send_reminders
from app.certification.reviews import decide
from app.certification.services import grant_exception, revoke
from app.extensions import db
from tests.conftest import login
from tests.forms import submit_form, submit_html
from tests.test_attempts import cases  # noqa: F401 (fixture)
from tests.test_certification import programme  # noqa: F401 (fixture)
from tests.test_results_page import visible_text

NBSP = "\u00a0"  # French typography: before ":" and the like


def _text(response) -> str:
    return html_module.unescape(visible_text(response.get_data(as_text=True)))


def _speaking(user: User, language: str | None) -> User:
    user.language = language
    db.session.commit()
    return user


@pytest.fixture
def scene(make_user, make_clinic, programme):  # noqa: F811
    """A lead for Kenya, a holder there (a certificate by exception) and the programme."""
    clinic = make_clinic("Nairobi site", "Nairobi", "KE")
    lead = make_user(Role.PROGRAMME_LEAD, clinic=clinic, full_name="Lead Person")
    holder = make_user(Role.TRAINEE_RADIOLOGIST, clinic=clinic, full_name="Dr Awa Diop")
    certificate = grant_exception(holder, programme, reason="national exam", actor=lead)
    return lead, holder, certificate, programme


# ---- pages ------------------------------------------------------------------------------

LEAD_PAGES = {  # path (format: programme id, holder id) -> French and Spanish words on it
    "/certification/": ("Tableau de bord de la certification", "Panel de certificación"),
    "/certification/programmes": ("Programmes de certification", "Programas de certificación"),
    "/certification/programmes/{p}": ("Taux de réussite à l'examen",
                                      "Tasa de aprobación del examen"),
    "/certification/certificates": ("Modifier (motif obligatoire)", "Cambiar (motivo obligatorio)"),
    "/certification/readers/{h}": ("Délivrer un certificat par dérogation…",
                                   "Expedir un certificado por excepción…"),
    "/certification/reviews": ("Aucun certificat de vos pays n'attend de réexamen.",
                               "Ningún certificado de sus países está pendiente de revisión."),
    "/certification/exceptions/new": ("Motif de la dérogation", "Motivo de la excepción"),
}
ENGLISH_LEFT = ("Certification dashboard", "Eligible roles", "Exam pass rate", "Filter",
                "Change (reason required)", "Grant a certificate by exception",
                "waits for review", "Reason for the exception", "Cancel", "Progress")


@pytest.mark.parametrize("language", ["fr", "es"])
def test_the_leads_pages_in_french_and_spanish(client, scene, language):
    lead, holder, _, programme = scene  # noqa: F811
    _speaking(lead, language)
    login(client, lead.username)
    for path, words in LEAD_PAGES.items():
        response = client.get(path.format(p=programme.id, h=holder.id))
        assert response.status_code == 200, path
        text = _text(response)
        assert words[0 if language == "fr" else 1] in text, (path, text)
        assert not [e for e in ENGLISH_LEFT if re.search(rf"\b{re.escape(e)}\b", text)], (
            path, text)


def test_the_dashboard_speaks_french_in_its_words_and_numbers(client, scene):
    lead, _, certificate, programme = scene  # noqa: F811
    _speaking(lead, "fr")
    login(client, lead.username)
    text = _text(client.get(f"/certification/programmes/{programme.id}?status=certified"))
    assert "Expirant dans ≤ 90 jours" in text and "1 lecteur certifié" in text
    assert "Sensibilité et spécificité à l'examen par centre" in text
    text = _text(client.get("/certification/certificates"))
    assert "1 certificat" in text and "valide (dérogation)" in text
    # The expiry date as French writes it (month by name), not 2028-02-29.
    assert certificate.expires_at.strftime("%Y-%m-%d") not in text


def test_a_trainees_certification_page_in_spanish(client, scene):
    _, holder, certificate, _ = scene
    _speaking(holder, "es")
    login(client, holder.username)
    text = _text(client.get("/certification/mine"))
    assert "Mi certificación" in text and "Aprobar «Exam»: todavía no" in text, text
    until = format_date(certificate.expires_at.date(), "medium", locale="es")
    assert certificate.code in text and f"válido, hasta el {until}." in text
    assert "Certificate " not in text and "until" not in text


def test_the_exception_form_gives_its_reasons_in_french(client, scene):
    lead, holder, _, programme = scene  # noqa: F811
    _speaking(lead, "fr")
    login(client, lead.username)
    page = "/certification/exceptions/new"
    # The form as the page renders it, its button in French; nothing filled in.
    response = submit_form(client, page, button="Délivrer le certificat", fields={})
    assert response.status_code == 400
    text = _text(response)
    assert "indiquez le lecteur" in text and "choisissez un programme" in text
    # A reader nobody in Kenya is: the service's reason, in French.
    response = submit_form(client, page, button="Délivrer le certificat", fields={
        "reader": "nobody-here", "programme": str(programme.id), "reason": "équivalence"})
    assert response.status_code == 404
    assert "Il n'existe pas de lecteur 'nobody-here' dans vos pays." in _text(response)
    # The holder already holds one: the date in the sentence is French too.
    response = submit_form(client, page, button="Délivrer le certificat", fields={
        "reader": holder.username, "programme": str(programme.id), "reason": "équivalence"})
    assert response.status_code == 409
    assert "Dr Awa Diop détient déjà un certificat valide pour" in _text(response)


def test_the_programme_form_in_french_refuses_a_programme_without_an_exam(
        client, make_user, programme):  # noqa: F811
    editor = _speaking(make_user(Role.PROGRAMME_LEAD, lead_all_countries=True), "fr")
    login(client, editor.username)
    page = client.get("/certification/programmes/new")
    text = _text(page)
    assert "Nouveau programme" in text and f"Examen{NBSP}: réussi" in text
    assert f"Rôles admissibles (aucun coché{NBSP}: tous les rôles)" in text
    response = submit_form(client, "/certification/programmes/new", button="Créer le programme",
                           fields={"title": "Lecture TB"})
    assert response.status_code == 400
    assert "Un programme doit comporter au moins un examen à réussir." in _text(response)


def test_revoking_from_the_list_flashes_in_french(client, scene):
    lead, _, certificate, _ = scene
    _speaking(lead, "fr")
    login(client, lead.username)
    response = submit_form(client, "/certification/certificates", button="Révoquer",
                           fields={"reason": "erreur de saisie"}, follow_redirects=True)
    assert response.status_code == 200
    text = _text(response)
    assert f"Certificat {certificate.code}{NBSP}: révoqué." in text
    assert "Rétablir" in text


def test_a_bad_export_format_is_refused_in_french(client, scene):
    lead, _, _, programme = scene  # noqa: F811
    _speaking(lead, "fr")
    login(client, lead.username)
    response = client.get(f"/certification/programmes/{programme.id}?format=pdf")
    assert response.status_code == 400
    assert "Le format d'export est csv ou xlsx." in _text(response)


def test_the_review_page_words_the_shortfall_in_the_leads_language(client, scene, app):
    lead, _, certificate, _ = scene
    review = _open_review(certificate)
    _speaking(lead, "es")
    login(client, lead.username)
    html = client.get("/certification/reviews").get_data(as_text=True)
    text = html_module.unescape(visible_text(html))
    assert "ya no está aprobado tras el recálculo de las puntuaciones" in text
    assert "no longer passes" not in text
    # The record keeps the English words; the page words the figures again.
    assert review.reason == _english_reason(review) and "no longer passes" in review.reason
    # The lead decides with the form the page renders, its buttons in Spanish.
    response = submit_html(client, html, "/certification/reviews", button="Mantener el certificado",
                           fields={"reason": "muestra pequeña"}, follow_redirects=True)
    assert "mantenido; se informa al titular." in _text(response)


# ---- notices and e-mails ----------------------------------------------------------------

def _open_review(certificate: Certificate) -> CertificateReview:
    figures_ = [{"kind": "exam", "exercise": "Exam", "attempt_number": 2,
                 "ended_at": "2026-03-01T08:00:00+00:00",
                 "criteria": [{"metric": "sensitivity", "minimum": 0.9}],
                 "before": {"sensitivity": 1.0}, "after": {"sensitivity": 0.5},
                 "other_attempt": None}]
    from app.certification.reviews import shortfall_reason

    with force_locale("en"):
        reason = shortfall_reason(figures_)
    review = CertificateReview(certificate=certificate, state="open", reason=reason,
                               figures=figures_, opened_at=datetime.now(UTC))
    db.session.add(review)
    db.session.commit()
    return review


def _english_reason(review: CertificateReview) -> str:
    from app.certification.reviews import shortfall_reason

    with force_locale("en"):
        return shortfall_reason(review.figures)


@pytest.mark.parametrize(("language", "subject", "words"), [
    ("fr", "Votre certificat CXR Academy a été révoqué", "Motif du réexamen"),
    ("es", "Su certificado de CXR Academy ha sido revocado", "Motivo de la revisión"),
    (None, "Your CXR Academy certificate has been revoked", "Why it was reviewed"),
])
def test_a_leads_decision_is_told_in_the_holders_language(app, scene, language, subject,
                                                         words):
    lead, holder, certificate, _ = scene
    _speaking(holder, language)
    review = _open_review(certificate)
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        decide(review, revoke=True, reason="figures confirmed", actor=lead)
    notice = db.session.scalars(select(CertificationNotice).where(
        CertificationNotice.user_id == holder.id)).one()
    assert notice.subject == subject and words in notice.body
    assert "figures confirmed" in notice.body  # the lead's own words, as written


@pytest.fixture
def outbox(monkeypatch) -> list[tuple[str, str, str]]:
    sent: list[tuple[str, str, str]] = []
    monkeypatch.setattr("app.certification.reminders.send_mail",
                        lambda to, subject, body: sent.append((to, subject, body)))
    return sent


@pytest.mark.parametrize(("language", "subject", "body"), [
    ("fr", "Votre certificat CXR Academy expire dans moins de 30 jours", "Bonjour Dr Awa Diop,"),
    ("es", "Su certificado de CXR Academy vence en menos de 30 días", "Estimado/a Dr Awa Diop:"),
    (None, "Your CXR Academy certificate expires in under 30 days", "Dear Dr Awa Diop,"),
])
def test_reminders_in_the_holders_language(app, scene, outbox, language, subject, body):
    _, holder, certificate, _ = scene
    _speaking(holder, language)
    with app.app_context():
        assert send_reminders(certificate.expires_at - timedelta(days=20)) == (1, 0)
    [(to, sent_subject, text)] = outbox
    assert to == holder.email and sent_subject == subject
    assert text.startswith(body) and certificate.code in text
    # The day as the holder's language writes it, month by name.
    assert format_date(certificate.expires_at.date(), "long", locale=language or "en") in text


# ---- the certificate PDF ----------------------------------------------------------------

def _pdf_text(client, certificate: Certificate) -> str:
    response = client.get(f"/certification/certificates/{certificate.id}.pdf")
    assert response.status_code == 200
    document = pypdfium2.PdfDocument(response.data)
    try:
        return document[0].get_textpage().get_text_range()
    finally:
        document.close()


def test_the_pdf_in_the_holders_language_with_the_english_beside(client, scene):
    lead, holder, certificate, _ = scene
    _speaking(holder, "fr")
    _speaking(lead, "es")  # who downloads it does not matter: the holder's language does
    login(client, lead.username)
    text = _pdf_text(client, certificate)
    for french, english in (("Certificat de compétence", "Certificate of competence"),
                            ("a rempli les exigences du programme", "has met the requirements of"),
                            ("Délivré le", "Issued"),
                            ("Crédits FMC/DPC", "CME/CPD credits"),
                            ("Code de vérification / Verification code", "Verify at")):
        assert french in text and english in text, (french, english, text)
    expires = certificate.expires_at
    assert format_date(expires.date(), "long", locale="fr") in text
    assert f"{expires:%d %B %Y}" in text and "Certificado" not in text


def test_an_english_holders_pdf_is_english_alone(client, scene):
    _, holder, certificate, _ = scene
    _speaking(holder, "en")
    login(client, holder.username)
    text = _pdf_text(client, certificate)
    assert "Certificate of competence" in text and f"Verification code: {certificate.code}" in text
    assert "Certificat de" not in text and " / " not in text


def test_a_revoked_french_certificate_is_stamped_in_both_languages(client, scene):
    lead, holder, certificate, _ = scene
    _speaking(holder, "fr")
    revoke(certificate, reason="erreur", actor=lead)
    login(client, holder.username)
    text = _pdf_text(client, certificate)
    assert "NON VALIDE" in text and f"RÉVOQUÉ le {certificate.revoked_at.day} " in text
    assert f"NOT VALID: REVOKED on {certificate.revoked_at:%d %B %Y}" in text


# ---- exports ----------------------------------------------------------------------------

def test_export_headers_in_the_readers_language_cells_unchanged(client, scene, make_user,
                                                               make_clinic):
    lead, holder, certificate, programme = scene  # noqa: F811
    make_user(Role.TRAINEE_RADIOLOGIST, clinic=holder.clinic, full_name="=HYPERLINK(1)")
    url = f"/certification/programmes/{programme.id}"
    login(client, lead.username)
    english = list(csv.reader(io.StringIO(
        client.get(f"{url}?format=csv&table=readers").get_data(as_text=True))))
    _speaking(lead, "fr")
    french = list(csv.reader(io.StringIO(
        client.get(f"{url}?format=csv&table=readers").get_data(as_text=True))))
    assert english[0][:5] == ["country", "clinic", "reader", "state", "certificate_expires"]
    assert french[0][:5] == ["pays", "centre", "lecteur", "état", "expiration du certificat"]
    assert french[1:] == english[1:]  # the cells: keys, ISO dates, English states
    assert ["KE", "Nairobi site", "Dr Awa Diop", "certified",
            certificate.expires_at.date().isoformat()] in [row[:5] for row in french]
    assert "'=HYPERLINK(1)" in [row[2] for row in french]  # still not a formula
    clinics = client.get(f"{url}?format=csv").get_data(as_text=True).splitlines()
    assert clinics[0].startswith("pays,centre,inscrits,certifiés,")
    _speaking(lead, "es")
    sheet = load_workbook(io.BytesIO(client.get(f"{url}?format=xlsx&table=readers").data)).active
    assert sheet.title == "Lectores"
    assert [c.value for c in sheet[2]][:4] == ["país", "centro", "lector", "estado"]
    assert sheet.cell(3, 4).value in ("certified", "not started")


# ---- the dashboard's figure -------------------------------------------------------------

CLINICS = [("KE · Nairobi site", [0.5, 0.75, 1.0], [0.8, 0.9])]


def test_the_figure_is_drawn_per_language_and_kept_per_language(app, monkeypatch):
    drawn: list[str] = []
    draw = figures.clinic_distribution

    def counting(clinics, title):
        fig = draw(clinics, title)
        drawn.append(fig.axes[0].get_xlabel())
        return fig

    monkeypatch.setattr(figures, "clinic_distribution", counting)
    # The figure cache lives as long as the process: a title of its own for each run (the
    # test runs once per database in one process).
    title = f"Language cache test {uuid.uuid4()}"
    with app.test_request_context("/"):
        with force_locale("fr"):
            french = figures.clinic_distribution_figure(CLINICS, title)
        with force_locale("en"):
            english = figures.clinic_distribution_figure(CLINICS, title)
        assert french != english
        assert drawn == ["sensibilité (dernier examen de chaque lecteur)",
                         "sensitivity (latest exam per reader)"]
        with force_locale("fr"):
            assert figures.clinic_distribution_figure(CLINICS, title) == french
        with force_locale("en"):
            assert figures.clinic_distribution_figure(CLINICS, title) == english
    assert len(drawn) == 2  # each language drawn once, then kept


def test_the_figure_url_gives_the_leads_language(client, scene):
    lead, _, _, programme = scene  # noqa: F811
    _speaking(lead, "es")
    login(client, lead.username)
    spanish = client.get(f"/certification/programmes/{programme.id}/scores.png").data
    _speaking(lead, "en")
    english = client.get(f"/certification/programmes/{programme.id}/scores.png").data
    assert spanish[:8] == english[:8] == b"\x89PNG\r\n\x1a\n" and spanish != english


def test_a_reminder_gives_the_day_in_the_holders_time_zone(app, scene, outbox):
    """The job that sends reminders runs in UTC; the holder reads the expiry day of their
    own zone (late evening UTC is already the next day in Manila)."""
    _, holder, certificate, _ = scene
    _speaking(holder, "en")
    holder.timezone = "Asia/Manila"
    certificate.expires_at = certificate.expires_at.replace(hour=20, minute=0)
    db.session.commit()
    with app.app_context():
        assert send_reminders(certificate.expires_at - timedelta(days=20)) == (1, 0)
    [(_, _, text)] = outbox
    next_day = certificate.expires_at.date() + timedelta(days=1)
    assert format_date(next_day, "long", locale="en") in text
