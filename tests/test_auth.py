"""Sign-in, sign-out, sessions, passwords, rate limits and CSRF."""

from __future__ import annotations

from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.models import UserSession
from app.auth.roles import Role
from app.extensions import db
from tests.conftest import PASSWORD, csrf_token, login, sign_out
from tests.forms import submit_form


def actions() -> list[str]:
    return list(db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def test_login_lands_on_role_home_and_is_audited(client, make_user):
    user = make_user(Role.TRAINER)
    response = login(client, user.username)
    assert response.status_code == 302
    assert response.headers["Location"] == "/cases/"
    assert "Case library" in client.get("/cases/").get_data(as_text=True)
    # A trainer passes the password step, then the second factor.
    assert actions()[-2:] == ["login.password", "login"]


def test_login_by_email_is_case_insensitive(client, make_user):
    user = make_user(Role.TRAINER)
    assert login(client, user.email.upper()).status_code == 302


def test_wrong_password_and_unknown_user_get_the_same_generic_message(client, make_user):
    user = make_user()
    wrong = login(client, user.username, "not-the-password")
    unknown = login(client, "nobody-here", "not-the-password")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "Wrong user name or password." in response.get_data(as_text=True)
    assert client.get("/training/").status_code == 302  # still signed out
    failed = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "login.failed").order_by(AuditEvent.id)
    ).all()
    assert failed[0].detail == {"username": user.username}
    # A name that matches no account may be a password in the wrong box: a keyed hash only.
    from app.audit.security_log import identifier_hash
    assert failed[1].detail == {"username_hash": identifier_hash("nobody-here")}
    assert "nobody-here" not in str(failed[1].detail)
    assert all("password" not in str(e.detail) for e in failed)


def test_deactivated_and_invited_users_cannot_sign_in(client, make_user):
    from app.auth.services import set_active

    inactive = make_user()
    set_active(inactive, False)
    invited = make_user(password=None)
    assert login(client, inactive.username).status_code == 401
    assert login(client, invited.username, "").status_code == 400  # empty password field
    assert login(client, invited.username, "anything-at-all").status_code == 401


def test_empty_login_form_is_a_clear_400(client):
    response = submit_form(client, "/auth/login", button="Sign in")
    assert response.status_code == 400
    assert "This field is required." in response.get_data(as_text=True)


def test_next_parameter_only_redirects_within_the_site(client, make_user):
    user = make_user(Role.ADMIN)
    response = login(client, user.username, next="/admin/audit")
    assert response.headers["Location"] == "/admin/audit"
    sign_out(client, "/admin/")
    for hostile in ("https://evil.example/", "//evil.example/x", "/\\evil.example",
                    "javascript:alert(1)"):
        response = login(client, user.username, next=hostile)
        assert response.headers["Location"] == "/admin/", hostile
        sign_out(client, "/admin/")


def test_anonymous_user_is_sent_to_sign_in_and_json_gets_401(client, app):
    response = client.get("/training/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login?next=/training/")
    response = client.get("/training/", headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert response.get_json()["message"] == "Sign in first."


def test_logout_ends_the_session(client, login_as):
    login_as(Role.TRAINEE_RADIOLOGIST)
    assert client.get("/training/").status_code == 200
    response = sign_out(client)
    assert response.status_code == 302
    assert client.get("/training/").status_code == 302
    assert db.session.scalars(select(UserSession.ended_at)).one() is not None
    assert actions()[-2:] == ["login", "logout"]


def test_cookie_captured_before_logout_is_refused_afterwards(app, client, login_as):
    login_as(Role.TRAINEE_RADIOLOGIST)
    cookie_name = app.config["SESSION_COOKIE_NAME"]
    captured = client.get_cookie(cookie_name).value
    sign_out(client)

    replay = app.test_client()
    replay.set_cookie(cookie_name, captured)
    response = replay.get("/training/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login")


def test_logout_without_csrf_token_is_refused(client, login_as):
    login_as()
    # Deliberately hand-built: a forged request without the token the page's form carries.
    response = client.post("/auth/logout")
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    assert client.get("/training/").status_code == 200  # still signed in


def test_login_post_without_csrf_token_is_refused_with_reason(client, make_user):
    user = make_user()
    # Deliberately hand-built: a cross-site post without the token the sign-in form carries.
    response = client.post("/auth/login", data={"username": user.username, "password": PASSWORD})
    assert response.status_code == 400
    assert "security token is missing or has expired" in response.get_data(as_text=True)


def test_json_post_needs_the_csrf_header(client, login_as):
    login_as()
    token = csrf_token(client, "/training/")
    # JSON, as a script would send it; "bare" deliberately lacks the CSRF header.
    bare = client.post("/auth/logout", json={})
    assert bare.status_code == 400
    assert "CSRF" in bare.get_json()["message"]
    ok = client.post("/auth/logout", json={}, headers={"X-CSRFToken": token})
    assert ok.status_code == 302


def test_csrf_token_does_not_expire_within_a_long_exam(app):
    # A 3-hour exam must never lose a save to an aged-out token.
    assert app.config["WTF_CSRF_TIME_LIMIT"] is None
    assert app.config["SESSION_LIFETIME"].total_seconds() >= 3 * 3600


def test_tenth_failure_for_an_account_locks_it(client, make_user):
    # More in test_sign_in_throttle: one counter per account, what still gets the owner in.
    user = make_user()
    for _ in range(9):
        assert login(client, user.username, "wrong-password-x").status_code == 401
    locked = login(client, user.email, "wrong-password-x")
    assert locked.status_code == 429
    assert "Too many failed sign-in attempts for this account" in locked.get_data(as_text=True)
    response = login(client, user.username, PASSWORD)  # even the right password now waits
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.get_data(as_text=True)


def test_failures_from_one_address_are_rate_limited_across_usernames(client, make_user):
    for n in range(10):
        assert login(client, f"guess{n}", "wrong-password-x").status_code == 401
    other = make_user()
    response = login(client, other.username, PASSWORD)
    assert response.status_code == 429


def test_successful_logins_do_not_count_towards_the_limit(client, make_user):
    user = make_user()
    for _ in range(12):
        assert login(client, user.username).status_code == 302
        sign_out(client)


def test_change_password_checks_current_and_policy(client, login_as):
    user = login_as()
    page = "/auth/password"

    def change(current: str, password: str, confirm: str):
        return submit_form(client, page, button="Change password", fields={
            "current": current, "password": password, "confirm": confirm})

    wrong = change("nope-nope-nope", "a-new-password-1", "a-new-password-1")
    assert wrong.status_code == 400
    assert "The current password is wrong." in wrong.get_data(as_text=True)
    short = change(PASSWORD, "short", "short")
    assert short.status_code == 400
    assert "at least 12 characters" in short.get_data(as_text=True)
    differ = change(PASSWORD, "a-new-password-1", "a-new-password-2")
    assert differ.status_code == 400
    assert "the passwords differ" in differ.get_data(as_text=True)
    ok = change(PASSWORD, "a-new-password-1", "a-new-password-1")
    assert ok.status_code == 302
    sign_out(client)
    assert login(client, user.username, PASSWORD).status_code == 401
    assert login(client, user.username, "a-new-password-1").status_code == 302


def test_changing_password_signs_out_other_devices(app, client, make_user):
    user = make_user()
    other_device = app.test_client()
    assert login(other_device, user.username).status_code == 302
    assert login(client, user.username).status_code == 302
    changed = submit_form(client, "/auth/password", button="Change password", fields={
        "current": PASSWORD, "password": "a-new-password-1", "confirm": "a-new-password-1"})
    assert changed.status_code == 302
    assert client.get("/training/").status_code == 200
    assert other_device.get("/training/").status_code == 302


def test_passwords_are_stored_as_argon2id(make_user):
    user = make_user()
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


def test_session_expires_on_the_server(app, client, login_as):
    from datetime import timedelta

    from app.db_types import utcnow

    login_as()
    row = db.session.scalars(select(UserSession)).one()
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert client.get("/training/").status_code == 302
