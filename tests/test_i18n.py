"""Languages and time zones: which language a page is in (setting, session, browser, clinic),
the switcher every page renders, the settings page, <html lang>, dates in the reader's time
zone, and the certificate verification page in its holder's language beside the English."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from app.auth.models import User
from app.auth.roles import Role
from app.certification.models import Certificate
from app.extensions import db
from app.i18n import COUNTRY_LANGUAGE, country_timezone
from tests.conftest import PASSWORD, login, post_hand_built
from tests.forms import submit_form, submit_html
from tests.test_attempts import cases  # noqa: F401 (fixture)
from tests.test_certification import (  # noqa: F401 (programme: fixture)
    TB,
    _exercise,
    _take,
    programme,
)
from tests.test_results_page import visible_text

FRENCH = {"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"}
SPANISH = {"Accept-Language": "es-419,es;q=0.9"}


def html_lang(html: str) -> str:
    match = re.search(r'<html lang="([^"]+)"', html)
    assert match, html[:200]
    return match.group(1)


def settings_of(user: User, language: str | None = None,
                timezone: str | None = None) -> User:
    user.language, user.timezone = language, timezone
    db.session.commit()
    return user


def page(client, path: str = "/auth/login", **kwargs) -> str:
    response = client.get(path, **kwargs)
    assert response.status_code == 200, (path, response.status_code)
    return response.get_data(as_text=True)


# ---- which language --------------------------------------------------------------------

def test_english_without_any_hint(client):
    html = page(client)
    assert html_lang(html) == "en" and "<h1>Sign in</h1>" in html


@pytest.mark.parametrize(("headers", "lang", "heading"), [
    (FRENCH, "fr", "Se connecter"),
    (SPANISH, "es", "Iniciar sesión"),
    ({"Accept-Language": "de-DE,de;q=0.9,es;q=0.3"}, "es", "Iniciar sesión"),
    ({"Accept-Language": "de-DE,pt;q=0.9"}, "en", "Sign in"),
])
def test_the_browsers_language_when_nothing_else_says(client, headers, lang, heading):
    html = page(client, headers=headers)
    assert html_lang(html) == lang
    assert f"<h1>{heading}</h1>" in html


def test_the_switcher_as_the_page_renders_it(client):
    """Anonymous: the choice holds for the session, over the browser's language, and the
    switcher goes back to the page it was on."""
    response = submit_form(client, "/verify/", button="Español", headers=FRENCH)
    assert response.status_code == 302 and response.headers["Location"] == "/verify/"
    html = page(client, "/verify/", headers=FRENCH)
    assert html_lang(html) == "es" and "Verificar un certificado" in html
    # The current language is shown, not offered.
    assert re.search(r'value="es" lang="es" class="link"\s+aria-current="true" disabled', html)
    response = submit_html(client, html, "/verify/", button="English")
    assert html_lang(page(client, "/verify/", headers=FRENCH)) == "en"


def test_the_switcher_keeps_the_query_of_the_page(client):
    response = submit_form(client, "/auth/login?next=%2Fhome", button="Français")
    assert response.headers["Location"] == "/auth/login?next=%2Fhome"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x",
                                    "/\\evil.example", "javascript:alert(1)", ""])
def test_the_switcher_only_goes_back_to_this_site(client, target):
    response = post_hand_built(client, "/language", {"language": "fr", "next": target},
                               page="/auth/login")
    assert response.status_code == 302 and response.headers["Location"] == "/"


@pytest.mark.parametrize("language", ["de", "", "fr-FR", "x" * 300])
def test_an_unknown_language_is_refused_with_the_offered_ones(client, language):
    response = post_hand_built(client, "/language", {"language": language, "next": "/"},
                               page="/auth/login")
    assert response.status_code == 400
    assert "Choose one of the offered languages (en, fr, es)." in response.get_data(as_text=True)
    assert html_lang(page(client)) == "en"


def test_the_switcher_needs_its_form_token(client):
    response = client.post("/language", data={"language": "fr", "next": "/"})
    assert response.status_code == 400
    assert html_lang(page(client)) == "en"


def test_signed_in_the_switcher_sets_the_account_language(client, login_as):
    user = login_as(Role.TRAINEE_RADIOLOGIST)
    response = submit_form(client, "/training/", button="Français")
    assert response.headers["Location"] == "/training/"
    db.session.expire_all()
    assert db.session.get(User, user.id).language == "fr"
    html = page(client, "/training/", headers=SPANISH)  # the setting wins over the browser
    assert html_lang(html) == "fr" and "Mes exercices de lecture" in html


def test_a_users_setting_comes_before_the_sessions_choice(client, make_user):
    user = settings_of(make_user(Role.TRAINEE_RADIOLOGIST), "es")
    submit_form(client, "/auth/login", button="Français")  # anonymous choice: French
    assert html_lang(page(client)) == "fr"
    response = submit_form(client, "/auth/login", button="Se connecter",
                           fields={"username": user.username, "password": PASSWORD})
    assert response.status_code == 302
    assert html_lang(page(client, "/training/", headers=FRENCH)) == "es"


@pytest.mark.parametrize(("country", "lang"), [("SN", "fr"), ("HT", "fr"), ("PE", "es"),
                                               ("KE", "en")])
def test_the_clinics_country_when_the_browser_asks_for_none_we_have(
        client, make_user, make_clinic, country, lang):
    user = make_user(Role.TRAINEE_RADIOLOGIST, clinic=make_clinic(country=country))
    login(client, user.username)
    assert html_lang(page(client, "/training/", headers={"Accept-Language": "de"})) == lang
    # A browser asking for one of ours comes first.
    assert html_lang(page(client, "/training/", headers=SPANISH)) == "es"


def test_the_country_map_names_real_languages_and_countries():
    import pycountry

    assert set(COUNTRY_LANGUAGE.values()) == {"fr", "es"}
    assert all(pycountry.countries.get(alpha_2=code) for code in COUNTRY_LANGUAGE)


def test_every_page_in_the_layout_has_the_switcher_and_html_lang(client, login_as):
    login_as(Role.TRAINEE_RADIOLOGIST)
    for path in ("/home", "/training/", "/account/settings", "/account/security", "/help/"):
        html = page(client, path, headers=FRENCH)
        assert html_lang(html) == "fr", path
        assert 'data-testid="language-switcher"' in html, path


def test_error_pages_are_in_the_readers_language_and_json_stays_english(client):
    response = client.get("/no-such-page", headers=FRENCH)
    html = response.get_data(as_text=True)
    assert response.status_code == 404 and html_lang(html) == "fr"
    assert "Introuvable" in html
    assert "Retour à votre page d'accueil" in html.replace("&#39;", "'")
    api = client.get("/api/v1/no-such-thing", headers=FRENCH)
    assert api.status_code == 404 and api.get_json()["error"] == "Not Found"


def test_form_errors_and_flashes_are_translated(client, make_user):
    user = make_user(Role.TRAINEE_RADIOLOGIST)
    response = submit_form(client, "/auth/login", button="Sign in",
                           fields={"username": user.username, "password": "wrong-password"},
                           headers=SPANISH)
    assert response.status_code == 401
    assert "Nombre de usuario o contraseña incorrectos." in response.get_data(as_text=True)
    response = submit_form(client, "/auth/login", button="Sign in", fields={}, headers=FRENCH)
    assert response.status_code == 400  # WTForms' own messages, from its French catalogue
    assert "Ce champ est requis." in response.get_data(as_text=True)
    login(client, user.username)
    submit_form(client, "/training/", button="Sign out", headers=FRENCH)
    assert "Vous êtes déconnecté." in page(client, headers=FRENCH)


# ---- the settings page -----------------------------------------------------------------

def test_settings_save_language_and_time_zone(client, login_as, make_clinic):
    user = login_as(Role.TRAINEE_RADIOLOGIST, clinic=make_clinic(country="KE"))
    html = page(client, "/account/settings")
    assert "Your clinic's time zone: Africa/Nairobi." in html.replace("&#39;", "'")
    response = submit_html(client, html, "/account/settings", button="Save settings",
                           fields={"language": "es", "timezone": "America/Port-au-Prince"})
    assert response.status_code == 302
    db.session.expire_all()
    saved = db.session.get(User, user.id)
    assert (saved.language, saved.timezone) == ("es", "America/Port-au-Prince")
    html = page(client, "/account/settings", headers=FRENCH)
    assert html_lang(html) == "es" and "Su configuración se ha guardado." in html
    # Back to automatic: the browser's language again.
    submit_html(client, html, "/account/settings", button="Guardar la configuración",
                fields={"language": "", "timezone": ""})
    db.session.expire_all()
    assert db.session.get(User, user.id).language is None
    assert html_lang(page(client, "/account/settings", headers=FRENCH)) == "fr"


@pytest.mark.parametrize(("zone", "status"), [
    ("Mars/Olympus_Mons", 400), ("../../etc/passwd", 400), ("africa/nairobi", 400),
    ("x" * 65, 400), ("Europe/Paris", 302), ("  Asia/Dhaka  ", 302)])
def test_settings_refuse_what_is_not_a_time_zone_with_a_reason(client, login_as, zone,
                                                               status):
    user = login_as(Role.TRAINEE_RADIOLOGIST)
    response = post_hand_built(client, "/account/settings",
                               {"language": "", "timezone": zone})
    assert response.status_code == status
    db.session.expire_all()
    saved = db.session.get(User, user.id).timezone
    if status == 400:
        text = response.get_data(as_text=True)
        assert "is not a time zone name" in text or "longer than 64" in text
        assert saved is None  # nothing half-written
    else:
        assert saved == zone.strip()


def test_settings_refuse_a_language_not_offered(client, login_as):
    login_as(Role.TRAINEE_RADIOLOGIST)
    response = post_hand_built(client, "/account/settings", {"language": "de", "timezone": ""})
    assert response.status_code == 400 and "Not a valid choice" in response.get_data(
        as_text=True)


def test_settings_need_sign_in(client):
    assert client.get("/account/settings").status_code == 302


# ---- time zones ------------------------------------------------------------------------

def test_clinic_time_zone_comes_from_its_country():
    assert country_timezone("KE") == "Africa/Nairobi"
    assert country_timezone("HT") == "America/Port-au-Prince"
    assert country_timezone(None) == country_timezone("XX") == "UTC"


def home_text(client) -> str:
    # CLDR puts a narrow no-break space before AM/PM.
    return visible_text(page(client, "/home")).replace("\u202f", " ").replace("\xa0", " ")


def _open_exam_with_deadline(trainer, user, deadline: datetime):
    from app.quizzes.exercises import create_exercise
    from app.quizzes.services import start_attempt
    from tests.test_results_page import likelihood_case

    chosen = [likelihood_case(trainer, 900 + n, tb=n == 0) for n in range(2)]
    exam = create_exercise(title="Timed exam", kind="exam", scheme_key="tb_screening",
                           case_ids=[c.id for c in chosen], actor=None, time_limit_minutes=60)
    attempt = start_attempt(exam, user)
    attempt.deadline_at = deadline
    db.session.commit()
    return attempt


def test_times_are_shown_in_the_readers_time_zone_and_language(client, make_user, login_as,
                                                              make_clinic):
    trainer = make_user(Role.TRAINER, username="expert")
    user = login_as(Role.TRAINEE_RADIOLOGIST, clinic=make_clinic(country="KE"))  # UTC+3
    _open_exam_with_deadline(trainer, user, datetime(2031, 3, 4, 22, 30, tzinfo=UTC))
    text = home_text(client)
    assert "time runs out at Mar 5, 2031, 1:30 AM GMT+03:00" in text  # the next day there
    user.timezone, user.language = "America/Lima", "es"
    db.session.commit()
    text = home_text(client)
    assert "el tiempo termina el 4 mar 2031, 17:30 GMT-05:00" in text
    user.timezone, user.language = "Europe/Paris", "fr"
    db.session.commit()
    text = home_text(client)
    assert "le temps se termine le 4 mars 2031, 23:30 UTC+01:00" in text


def test_an_unknown_stored_time_zone_falls_back_to_the_clinics(client, make_user, login_as,
                                                               make_clinic):
    trainer = make_user(Role.TRAINER, username="expert")
    user = login_as(Role.TRAINEE_RADIOLOGIST, clinic=make_clinic(country="KE"))
    _open_exam_with_deadline(trainer, user, datetime(2031, 3, 4, 10, 0, tzinfo=UTC))
    user.timezone = "Atlantis/Capital"  # e.g. a zone the tz database has since dropped
    db.session.commit()
    assert "1:00 PM GMT+03:00" in home_text(client)


# ---- certificate verification: the holder's language beside the English ---------------

def _certificate(programme, make_user, language: str | None) -> Certificate:  # noqa: F811
    """A certificate earned through the portal (the practice set and the exam passed)."""
    holder = settings_of(make_user(Role.TRAINEE_RADIOLOGIST, full_name="Dr Awa Diop"),
                         language)
    _take(_exercise(programme, "practice"), holder, TB)
    _take(_exercise(programme, "exam"), holder, TB)
    return db.session.scalars(select(Certificate)).one()


def test_verification_in_the_holders_language_with_the_english_beside(client, make_user,
                                                                      programme):  # noqa: F811
    code = _certificate(programme, make_user, "fr").code
    html = page(client, f"/verify/{code}", headers={"Accept-Language": "en"})
    assert html_lang(html) == "en"
    assert '<span lang="fr">Valide</span> <span lang="en" class="english">/ Valid</span>' in html
    assert '<span lang="fr">Titulaire</span>' in html and "/ Holder" in html
    # A Spanish-speaking visitor: the page is Spanish, the certificate French and English.
    html = page(client, f"/verify/{code}", headers=SPANISH)
    assert html_lang(html) == "es" and "Verificar otro código" in html
    assert '<span lang="fr">Valide</span>' in html and '<span lang="en" class="english">' in html


def test_verification_of_an_english_holder_is_english_alone(client, make_user, programme):  # noqa: F811
    code = _certificate(programme, make_user, None).code  # no setting, no clinic: English
    html = page(client, f"/verify/{code}", headers=FRENCH)
    assert '<span lang="en">Valid</span>' in html and 'class="english"' not in html


def test_the_verification_json_keeps_english_and_iso_dates(client, make_user, programme):  # noqa: F811
    certificate = _certificate(programme, make_user, "es")
    data = client.get(f"/verify/{certificate.code}.json", headers=SPANISH).get_json()
    assert data["status"] == "valid"
    assert data["issued"] == certificate.issued_at.date().isoformat()


def test_language_column_is_read_back(app, make_user):
    user = settings_of(make_user(Role.TRAINEE_RADIOLOGIST), "fr", "Africa/Dakar")
    found = db.session.scalar(select(User).where(User.id == user.id))
    assert (found.language, found.timezone) == ("fr", "Africa/Dakar")


# ---- the page scripts' texts -----------------------------------------------------------

def _script_messages(html: str) -> dict:
    import json

    match = re.search(r'<script type="application/json" id="js-messages">(.*?)</script>', html,
                      re.S)
    assert match, "the page has no catalogue for its scripts"
    return json.loads(match.group(1))


def test_the_attempt_page_carries_its_scripts_texts_in_the_readers_language(
        client, make_user, login_as, make_clinic):
    from app.i18n import script_message_ids

    trainer = make_user(Role.TRAINER, username="expert")
    user = login_as(Role.TRAINEE_RADIOLOGIST, clinic=make_clinic(country="KE"))
    attempt = _open_exam_with_deadline(trainer, user, datetime(2031, 3, 4, 10, 0, tzinfo=UTC))
    assert _script_messages(page(client, f"/training/attempts/{attempt.id}/1")) == {}
    settings_of(user, "fr")
    html = page(client, f"/training/attempts/{attempt.id}/1")
    messages = _script_messages(html)
    assert set(messages) == set(script_message_ids())
    assert "Flag for review" in messages and "not saved — retrying" in messages
    assert messages["Flag for review"] == "Marquer pour y revenir"
    assert messages["Case %(number)s: %(status)s"] == "Cas %(number)s\u00a0: %(status)s"
    assert 'src="/static/js/attempt.js' in html
    summary = page(client, f"/training/attempts/{attempt.id}/summary")
    assert _script_messages(summary)["5 minutes left."] == "Il reste 5 minutes."


def test_script_texts_are_found_in_the_scripts():
    from app.i18n import script_message_ids

    ids = script_message_ids()
    assert "Your answer to case %(cases)s is not saved: it would not count. Submit anyway?" in ids
    assert "_" not in ids and all(ids)
