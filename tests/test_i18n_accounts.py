"""Accounts, administration, the API token page and the help pages in French and Spanish:
each page as its reader reaches it, refusals after submitting the rendered forms, the
security-key script's texts, and the account e-mails in the recipient's language (not the
sender's) with the link's expiry in the recipient's time zone."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta
from email.header import decode_header, make_header
from email.message import Message

import pytest
from bs4 import BeautifulSoup
from flask import Flask
from flask.testing import FlaskClient
from freezegun import freeze_time

from app.auth.invitations import invitation_token
from app.auth.models import User
from app.auth.roles import Role
from app.extensions import db
from tests.conftest import PASSWORD
from tests.forms import submit_form, submit_html
from tests.test_mail import smtp_inbox  # noqa: F401 (fixture)
from tests.test_results_page import visible_text

FRENCH = {"Accept-Language": "fr-FR,fr;q=0.9"}
SPANISH = {"Accept-Language": "es-419,es;q=0.9"}
NBSP = "\u00a0"


def speaks(user: User, language: str) -> User:
    """The user's language setting (what the account's pages and e-mails follow)."""
    user.language = language
    db.session.commit()
    return user


def text_of(client: FlaskClient, path: str, status: int = 200, **kwargs: object) -> str:
    response = client.get(path, **kwargs)
    assert response.status_code == status, (path, response.status_code)
    return visible_text(response.get_data(as_text=True))


def submit_in(client: FlaskClient, path: str, headers: dict[str, str], **kwargs: object):
    """Submit a form of ``path`` as a browser asking for that language renders and sends it."""
    html = client.get(path, headers=headers).get_data(as_text=True)
    return submit_html(client, html, path, headers=headers, **kwargs)


def subject_of(message: Message) -> str:
    return str(make_header(decode_header(message["Subject"])))


def body_of(message: Message) -> str:
    return message.get_payload(decode=True).decode()


# ---- the account's own pages ----------------------------------------------------------------

SECURITY_PAGES = {
    "fr": [("/account/security", ["Sécurité du compte", "Connexion en deux étapes",
                                  "Configurer la connexion en deux étapes", "Jetons d'API",
                                  "Changer votre mot de passe", "Clés de sécurité"]),
           ("/auth/second-factor/set-up", ["Configurez votre second facteur",
                                           "Saisissez le code que l'application affiche",
                                           "Activer"]),
           ("/account/api-tokens", ["Vos jetons d'API", "Nouveau jeton", "Lecture seule",
                                    "Créer le jeton", "Vous n'avez aucun jeton d'API."]),
           ("/account/security-keys", ["Vos clés de sécurité",
                                       "Aucune clé de sécurité n'est enregistrée"])],
    "es": [("/account/security", ["Seguridad de la cuenta", "Inicio de sesión en dos pasos",
                                  "Configurar el inicio de sesión en dos pasos",
                                  "Tokens de API", "Cambiar su contraseña",
                                  "Llaves de seguridad"]),
           ("/auth/second-factor/set-up", ["Configure su segundo factor", "Activar"]),
           ("/account/api-tokens", ["Sus tokens de API", "Solo lectura", "Crear el token"]),
           ("/account/security-keys", ["Sus llaves de seguridad",
                                       "No hay ninguna llave de seguridad registrada"])],
}


@pytest.mark.parametrize("language", ["fr", "es"])
def test_account_security_pages_follow_the_language_setting(
        client: FlaskClient, login_as: Callable[..., User], language: str) -> None:
    speaks(login_as(Role.TRAINEE_RADIOLOGIST), language)
    for path, expected in SECURITY_PAGES[language]:
        text = text_of(client, path)
        for phrase in expected:
            assert phrase in text, (language, path, phrase)
        assert "Two-step sign-in" not in text and "Security keys" not in text


def test_an_enrolled_account_reads_its_status_and_refusals_in_french(
        client: FlaskClient, login_as: Callable[..., User]) -> None:
    speaks(login_as(Role.TRAINEE_RADIOLOGIST, second_factor=True), "fr")
    text = text_of(client, "/account/security")
    assert "Activée depuis le" in text and "Codes de secours restants" in text
    assert re.search(r"Activée depuis le \d{1,2} \w+\.? \d{4}", text), text  # a French date
    # Turning it off with a wrong password: the reason beside the field, in French.
    response = submit_form(client, "/account/security",
                           button="Désactiver la connexion en deux étapes",
                           fields={"off_password": "not-my-password", "off_code": "123456"})
    assert response.status_code == 401
    refused = visible_text(response.get_data(as_text=True))
    assert "Ce mot de passe n'est pas correct." in refused
    assert "That password is not right" not in refused


def test_a_wrong_code_at_the_second_step_is_refused_in_the_browsers_language(
        client: FlaskClient, make_user: Callable[..., User]) -> None:
    trainer = make_user(Role.TRAINER)
    signed = submit_in(client, "/auth/login", FRENCH, button="Se connecter",
                       fields={"username": trainer.username, "password": PASSWORD})
    assert signed.status_code == 302 and signed.location.endswith("/auth/second-factor")
    step = client.get("/auth/second-factor", headers=FRENCH).get_data(as_text=True)
    assert "Seconde étape" in visible_text(step)
    wrong = submit_html(client, step, "/auth/second-factor", button="Vérifier",
                        fields={"code": "000000"}, headers=FRENCH)
    assert wrong.status_code == 401
    text = visible_text(wrong.get_data(as_text=True))
    assert "Ce code n'est pas correct." in text and "That code is not right" not in text


def test_the_security_key_script_gets_its_texts_in_the_readers_language(
        app: Flask, client: FlaskClient, login_as: Callable[..., User]) -> None:
    app.config["PUBLIC_BASE_URL"] = "https://cxr.example.org"  # keys need a domain name
    speaks(login_as(Role.TRAINEE_RADIOLOGIST), "es")
    html = client.get("/account/security-keys").get_data(as_text=True)
    soup = BeautifulSoup(html, "html.parser")
    assert soup.select_one("script[src*='js/security_keys']") is not None
    messages = json.loads(soup.select_one("script#js-messages").get_text())
    assert messages["This browser cannot use security keys. Use your authenticator app "
                    "instead."] == ("Este navegador no puede usar llaves de seguridad. Use en "
                                    "su lugar su aplicación de autenticación.")
    assert "Añadir la llave de seguridad" in visible_text(html)


def test_a_weak_password_on_the_invitation_page_is_refused_in_french(
        client: FlaskClient, make_user: Callable[..., User]) -> None:
    invitee = make_user(password=None)
    path = f"/auth/invitation/{invitation_token(invitee)}"
    db.session.commit()
    response = submit_in(client, path, FRENCH, button="Définir le mot de passe",
                         fields={"password": "court", "confirm": "court"})
    assert response.status_code == 400
    text = visible_text(response.get_data(as_text=True))
    assert "Le mot de passe doit compter au moins 12 caractères" in text
    # A link that cannot be used says why, in Spanish for a Spanish browser.
    refused = text_of(client, "/auth/invitation/not-a-token", 400, headers=SPANISH)
    assert "Este enlace de invitación no es válido." in refused


# ---- administration -------------------------------------------------------------------------

def test_administration_pages_in_spanish(
        client: FlaskClient, login_as: Callable[..., User], make_user: Callable[..., User],
        make_clinic: Callable[..., object]) -> None:
    make_clinic("Lima Panel Clinic", "Lima", "PE")
    reader = make_user(Role.TRAINEE_RADIOLOGIST, full_name="Dra Reader")
    speaks(login_as(Role.ADMIN), "es")
    home = text_of(client, "/admin/")
    assert "Administración" in home and "Actividad reciente" in home
    assert "usuarios activos" in home and "Registro de auditoría" in home
    assert "Creó la cuenta" in home  # the audit sentences, in the reader's language
    users = text_of(client, "/admin/users")
    assert "Radiólogo en formación" in users and "Nombre de usuario" in users
    clinics = text_of(client, "/admin/clinics")
    assert "Perú" in clinics and "Añadir un centro" in clinics  # the country in Spanish
    person = text_of(client, f"/admin/users/{reader.id}")
    assert "segundo factor no configurado" in person and "Guardar" in person
    assert "Ámbito del responsable de programa" in person
    assert "Técnico radiólogo en formación" in person  # a role's box, not only the list
    new = text_of(client, "/admin/users/new")
    assert "Crear el usuario y el enlace de invitación" in new and "Create user" not in new
    audit = text_of(client, "/admin/audit")
    assert "Cuándo (UTC)" in audit and "Cuenta creada" in audit and "Filtrar" in audit


def test_an_audit_filter_refusal_and_an_admin_flash_in_french(
        client: FlaskClient, login_as: Callable[..., User],
        make_user: Callable[..., User]) -> None:
    target = make_user(Role.TRAINEE_RADIOLOGIST, full_name="Dr Target")
    speaks(login_as(Role.ADMIN), "fr")
    refused = submit_form(client, "/admin/audit", button="Filtrer",
                          fields={"since": "2026-03-10", "until": "2026-03-01"})
    assert refused.status_code == 400
    assert ("La date de début 2026-03-10 est postérieure à la date de fin 2026-03-01."
            in visible_text(refused.get_data(as_text=True)))
    done = submit_form(client, f"/admin/users/{target.id}", button="Désactiver",
                       follow_redirects=True)
    assert "Dr Target est désactivé et déconnecté partout." in visible_text(
        done.get_data(as_text=True))


# ---- help and the API page ------------------------------------------------------------------

HELP_PAGES = {
    "fr": {"/help/": ["Aide", "Guide pour les radiologues en formation", "Glossaire"],
           "/help/radiologist": ["Séries d'entraînement et examens", "Lire un cas",
                                 "Les cas sans réponse comptent comme faux"],
           "/help/radiographer": ["Exercices de qualité d'image", "grade de discordance"],
           "/help/trainer": ["Statistiques de l'exercice", "indice de facilité"],
           "/help/lead": ["Le tableau de bord de certification", "vérifier un certificat"],
           "/help/admin": ["Utilisateurs et centres", "Le journal d'audit"],
           "/help/glossary": ["Sensibilité", "Kappa de Cohen",
                              f"intervalle de Wilson à 95{NBSP}%",
                              f"Près de 100{NBSP}% le cas est facile"]},
    "es": {"/help/": ["Ayuda", "Guía para radiólogos en formación", "Glosario"],
           "/help/radiologist": ["Series de práctica y exámenes", "Leer un caso"],
           "/help/glossary": ["Sensibilidad", "Kappa ponderado",
                              f"intervalo de Wilson del 95{NBSP}%",
                              f"Cerca del 100{NBSP}% el caso es fácil"]},
}


@pytest.mark.parametrize("language", ["fr", "es"])
def test_help_pages_are_translated_prose_with_their_links(
        client: FlaskClient, language: str) -> None:
    headers = FRENCH if language == "fr" else SPANISH
    for path, phrases in HELP_PAGES[language].items():
        html = client.get(path, headers=headers).get_data(as_text=True)
        text = visible_text(html)
        for phrase in phrases:
            assert phrase in text, (language, path, phrase)
        assert "Glossary" not in text and "Unanswered cases" not in text
        links = BeautifulSoup(html, "html.parser").select("a.term")
        assert path in ("/help/", "/help/glossary", "/help/admin") or links, path


def test_the_api_page_chrome_in_french(client: FlaskClient,
                                       login_as: Callable[..., User]) -> None:
    speaks(login_as(Role.TRAINEE_RADIOLOGIST), "fr")
    text = text_of(client, "/api/v1/docs")
    assert "Les programmes informatiques appellent l'API du portail" in text
    assert "votre page de jetons d'API" in text


# ---- e-mails: the recipient's language and time zone ----------------------------------------

def test_an_invitation_is_in_the_invitees_language_not_the_administrators(
        client: FlaskClient, login_as: Callable[..., User], make_user: Callable[..., User],
        make_clinic: Callable[..., object], smtp_inbox) -> None:  # noqa: F811
    speaks(login_as(Role.ADMIN), "fr")
    lima = make_clinic("Lima Panel Clinic", "Lima", "PE")  # Spanish, America/Lima
    nairobi = make_clinic("Nairobi Panel Clinic", "Nairobi", "KE")  # English
    peruvian = make_user(password=None, clinic=lima, full_name="Dra Quispe")
    kenyan = make_user(password=None, clinic=nairobi, full_name="Dr Otieno")
    for invitee in (peruvian, kenyan):
        sent = submit_form(client, f"/admin/users/{invitee.id}",
                           button="Créer un lien d'invitation")
        assert sent.status_code == 200
        assert "Le lien d'invitation a été envoyé par e-mail" in visible_text(
            sent.get_data(as_text=True))
    spanish, english = smtp_inbox.messages
    assert subject_of(spanish) == "Su cuenta de CXR Academy"
    body = body_of(spanish)
    assert "Estimado/a Dra Quispe:" in body and f"Su nombre de usuario: {peruvian.username}" in body
    # The expiry in Lima's time zone and in Spanish ("… de marzo de 2026, 4:30 GMT-05:00").
    assert re.search(r"caduca en 7 días, el \d{1,2} de \w+ de \d{4}, .+ GMT-05:00\)", body)
    assert any("/auth/invitation/" in line for line in body.splitlines())
    assert english["Subject"] == "Your CXR Academy account"
    assert "Dear Dr Otieno," in body_of(english) and "GMT+03:00)" in body_of(english)


def test_a_reset_link_is_in_the_account_holders_language_whoever_asks(
        client: FlaskClient, make_user: Callable[..., User],
        make_clinic: Callable[..., object], smtp_inbox) -> None:  # noqa: F811
    dakar = make_clinic("Dakar Panel Clinic", "Dakar", "SN")  # French by its country
    holder = make_user(clinic=dakar, username="awa", full_name="Dr Awa Diop")
    holder.timezone = "Africa/Abidjan"
    db.session.commit()
    answer = submit_form(client, "/auth/password/forgot", button="Send reset link",
                         fields={"identifier": "awa"})  # an English browser asks
    assert answer.status_code == 200
    [message] = smtp_inbox.messages
    assert subject_of(message) == "Réinitialisez votre mot de passe CXR Academy"
    body = body_of(message)
    assert "Bonjour Dr Awa Diop," in body and "Votre nom d'utilisateur\u00a0: awa" in body
    assert re.search(r"expire dans 60 minutes, le \d{1,2} \w+ \d{4}", body), body
    assert "Choisir un nouveau mot de passe vous déconnecte" in body


def test_the_idle_sign_out_says_why_in_the_readers_language(
        client: FlaskClient, make_user: Callable[..., User]) -> None:
    user = make_user()
    with freeze_time("2026-03-02 08:00") as clock:
        signed = submit_in(client, "/auth/login", FRENCH, button="Se connecter",
                           fields={"username": user.username, "password": PASSWORD})
        assert signed.status_code == 302
        clock.tick(timedelta(minutes=31))
        away = client.get("/training/", headers=FRENCH)
        assert away.status_code == 302
        text = text_of(client, away.headers["Location"], headers=FRENCH)
    assert "Vous avez été déconnecté après 30 minutes d'inactivité. Reconnectez-vous." in text
