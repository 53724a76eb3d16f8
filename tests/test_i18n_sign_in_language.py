"""The language picked with the switcher on the sign-in page outlives signing in (the session
is renewed then, against fixation) and signing out: a French reader who chose French before
signing in reads the portal in French after, and the sign-in page after signing out too."""

from __future__ import annotations

import re

from app.auth.roles import Role
from tests.conftest import PASSWORD
from tests.forms import submit_form


def html_lang(client, path: str) -> str:
    response = client.get(path, headers={"Accept-Language": "en-US,en;q=0.9"})
    assert response.status_code == 200, path
    match = re.search(r'<html lang="([^"]+)"', response.get_data(as_text=True))
    assert match, path
    return match.group(1)


def test_the_sign_in_pages_choice_holds_once_signed_in_and_out(client, make_user):
    user = make_user(Role.TRAINEE_RADIOLOGIST)  # no language setting of their own
    assert submit_form(client, "/auth/login", button="Français").status_code == 302
    response = submit_form(client, "/auth/login", button="Se connecter",
                           fields={"username": user.username, "password": PASSWORD})
    assert response.status_code == 302 and "/auth/" not in response.headers["Location"]
    assert html_lang(client, "/training/") == "fr"
    response = submit_form(client, "/training/", button="Se déconnecter")
    assert response.status_code == 302
    assert html_lang(client, "/auth/login") == "fr"
    # Still signed out: the session was renewed, only the language came along.
    assert "/auth/login" in client.get("/training/").headers["Location"]


def test_the_choice_holds_through_the_second_step(client, make_user):
    """A trainer (second factor): the password step renews the session too."""
    from tests.conftest import current_totp

    user = make_user(Role.TRAINER)
    submit_form(client, "/auth/login", button="Español")
    response = submit_form(client, "/auth/login", button="Iniciar sesión",
                           fields={"username": user.username, "password": PASSWORD})
    assert response.headers["Location"].endswith("/auth/second-factor")
    assert html_lang(client, "/auth/second-factor") == "es"
    html = client.get("/auth/second-factor").get_data(as_text=True)
    button = "Verificar" if ">Verificar<" in html else "Verify"  # the page is being translated
    response = submit_form(client, "/auth/second-factor", button=button,
                           fields={"code": current_totp(user.username)})
    assert response.status_code == 302 and "/auth/" not in response.headers["Location"]
    assert html_lang(client, "/training/") == "es"
