"""Each role's home page, navigation, error pages and security headers."""

from __future__ import annotations

import pytest

from app.auth.roles import Role
from tests.conftest import csrf_token, login

HOMES = {
    Role.TRAINEE_RADIOLOGIST: ("/home", "Welcome, {name}"),
    Role.TRAINEE_RADIOGRAPHER: ("/home", "Welcome, {name}"),
    Role.TRAINER: ("/cases/", "Case library"),
    Role.PROGRAMME_LEAD: ("/certification/", "Certification dashboard"),
    Role.ADMIN: ("/admin/", "Administration"),
}


@pytest.mark.parametrize("role", list(Role))
def test_each_role_lands_on_its_home_page(client, make_user, role):
    user = make_user(role)
    path, heading = HOMES[role]
    response = login(client, user.username)
    assert response.headers["Location"] == path
    assert client.get("/").headers["Location"] == path
    page = client.get(path)
    assert page.status_code == 200
    assert f"<h1>{heading.format(name=user.full_name)}</h1>" in page.get_data(as_text=True)


def test_navigation_shows_only_what_the_role_may_open(client, login_as):
    login_as(Role.TRAINEE_RADIOLOGIST)
    page = client.get("/training/").get_data(as_text=True)
    assert 'href="/training/"' in page and 'href="/home">Home</a>' in page
    assert 'href="/admin/"' not in page
    assert 'href="/cases/"' not in page
    assert 'href="/certification/"' not in page


@pytest.mark.parametrize(
    ("role", "forbidden"),
    [
        (Role.TRAINEE_RADIOLOGIST, ["/cases/", "/certification/", "/admin/"]),
        (Role.TRAINEE_RADIOGRAPHER, ["/cases/", "/certification/", "/admin/"]),
        (Role.TRAINER, ["/certification/", "/admin/"]),
        (Role.PROGRAMME_LEAD, ["/training/", "/cases/", "/admin/"]),
    ],
)
def test_pages_of_other_roles_are_forbidden(client, login_as, role, forbidden):
    login_as(role)
    for path in forbidden:
        response = client.get(path)
        assert response.status_code == 403, path
        assert "This page is only for:" in response.get_data(as_text=True)


def test_programme_lead_sees_only_clinics_in_scope(client, login_as, make_clinic):
    make_clinic("Kampala Clinic", "Kampala", "UG")
    make_clinic("Lima Clinic", "Lima", "PE")
    login_as(Role.PROGRAMME_LEAD, countries=("UG",))
    page = client.get("/certification/").get_data(as_text=True)
    assert "Kampala Clinic" in page
    assert "Lima Clinic" not in page


def test_programme_lead_for_all_countries_sees_every_clinic(client, login_as, make_clinic):
    make_clinic("Kampala Clinic", "Kampala", "UG")
    make_clinic("Lima Clinic", "Lima", "PE")
    login_as(Role.PROGRAMME_LEAD, lead_all_countries=True)
    page = client.get("/certification/").get_data(as_text=True)
    assert "Kampala Clinic" in page and "Lima Clinic" in page


def test_unknown_page_is_404_html_and_json(client):
    page = client.get("/no/such/page")
    assert page.status_code == 404
    assert "Not Found" in page.get_data(as_text=True)
    api = client.get("/no/such/page", headers={"Accept": "application/json"})
    assert api.status_code == 404
    assert api.get_json()["status"] == 404


def test_server_error_page_reveals_nothing_internal(app, client):
    @app.get("/boom-for-test")
    def boom():  # pragma: no cover - the body raises
        raise RuntimeError("secret internal detail /etc/passwd")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = client.get("/boom-for-test")
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "Something went wrong on our side" in body
    assert "secret internal detail" not in body
    assert "Traceback" not in body


def test_oversized_request_gets_413(app, client):
    app.config["MAX_CONTENT_LENGTH"] = 1024
    # Deliberately hand-built: 4 KB in a box whose maxlength is 254, as a script would post.
    response = client.post("/auth/login", data={"username": "x" * 4096, "password": "y"})
    assert response.status_code == 413


@pytest.mark.parametrize("path", ["/", "/auth/login", "/no/such/page", "/static/css/app.css"])
def test_security_headers_on_every_response(client, path):
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    # WebAssembly compilation for the viewer's HTJ2K decoder, and nothing else: no
    # 'unsafe-eval', no inline script, workers only from the portal's files.
    assert directives["script-src"] == "'self' 'wasm-unsafe-eval'"
    assert directives["worker-src"] == "'self'"
    assert "unsafe-inline" not in csp and "'unsafe-eval'" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_pages_have_no_inline_scripts(client, login_as):
    login_as(Role.ADMIN)
    for path in ("/", "/auth/login", "/admin/", "/admin/users/new"):
        body = client.get(path, follow_redirects=True).get_data(as_text=True)
        assert "<script>" not in body
        assert " onclick=" not in body and " onload=" not in body


def test_session_cookie_flags_over_http_and_https(app, client, make_user):
    user = make_user()
    plain = login(client, user.username)
    cookie = plain.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie
    # A fresh visitor: a browser-session cookie is only sent again when it changes.
    https = app.test_client().get("/auth/login", base_url="https://localhost")
    assert "Secure" in https.headers["Set-Cookie"]
    assert "max-age" in https.headers["Strict-Transport-Security"]


def test_signed_in_pages_are_not_cached(client, login_as):
    login_as()
    assert client.get("/training/").headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "request_args",
    [
        {"path": "/auth/login", "method": "POST", "data": {"username": "a\x00b", "password": "x"}},
        {"path": "/auth/login?next=%00", "method": "GET"},
        {"path": "/auth/invitation/abc%00def", "method": "GET"},
    ],
)
def test_nul_characters_are_refused_with_a_reason(client, request_args):
    if "data" in request_args:  # deliberately hand-built: nobody types a NUL into a form
        request_args["data"]["csrf_token"] = csrf_token(client)
    response = client.open(**request_args)
    assert response.status_code == 400
    assert "NUL character" in response.get_data(as_text=True)
