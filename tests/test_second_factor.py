"""Second factor at sign-in: enrolment by QR code, TOTP codes never accepted twice, one-time
recovery codes, throttled wrong codes, privileged pages refused without it, and the reset by
an administrator (page and command line)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pyotp
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.auth.models import User, UserSession
from app.auth.roles import Role
from app.auth.second_factor import secret_of
from app.auth.second_factor_models import RecoveryCode, SecondFactor
from app.auth.services import update_user
from app.extensions import db
from app.security import CONTENT_SECURITY_POLICY
from tests.conftest import PASSWORD, TOTP_SECRET, login, post_hand_built
from tests.forms import submit_form

T0 = datetime(2026, 6, 1, 9, 0, 10, tzinfo=UTC)  # 10 s into a 30 s time step
TOTP = pyotp.TOTP(TOTP_SECRET)


def actions() -> list[str]:
    return list(db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def password_step(client: FlaskClient, username: str, password: str = PASSWORD,
                  next: str | None = None):
    page = "/auth/login" + (f"?next={next}" if next else "")
    return submit_form(client, page, button="Sign in",
                       fields={"username": username, "password": password})


def code_step(client: FlaskClient, code: str):
    return submit_form(client, "/auth/second-factor", button="Verify", fields={"code": code})


def sign_out(client: FlaskClient):
    return submit_form(client, "/help/", button="Sign out")


def enrol_page_secret(html: str) -> str:
    match = re.search(r'data-testid="enrol-secret"[^>]*>([A-Z2-7]+)<', html)
    assert match, html
    return match.group(1)


def recovery_codes(html: str) -> list[str]:
    return re.findall(r"<li><code>([a-z0-9-]+)</code></li>", html)


# ---- enrolment ------------------------------------------------------------------------------


def test_a_privileged_user_without_a_second_factor_enrols_at_sign_in(client, make_user):
    admin = make_user(Role.ADMIN, second_factor=False)
    response = password_step(client, admin.username, next="/admin/users")
    assert response.status_code == 302 and response.location.endswith("/auth/second-factor")
    assert client.get("/admin/").status_code == 302  # the password alone reaches nothing

    page = client.get("/auth/second-factor").get_data(as_text=True)
    qr = re.search(r'<img src="(data:image/svg\+xml;base64,[^"]+)"', page)
    assert qr, "the QR code is an inline image"
    assert "data:" in CONTENT_SECURITY_POLICY["img-src"]  # which the CSP allows
    secret = enrol_page_secret(page)
    assert client.get("/auth/second-factor").get_data(as_text=True).count(secret) == 1  # stable

    done = submit_form(client, "/auth/second-factor", button="Turn on",
                       fields={"code": pyotp.TOTP(secret).now()})
    assert done.status_code == 200
    codes = recovery_codes(done.get_data(as_text=True))
    assert len(codes) == 10 and len(set(codes)) == 10
    assert 'href="/admin/users"' in done.get_data(as_text=True)  # on to where they were going
    assert client.get("/admin/users").status_code == 200
    assert actions()[-3:] == ["login.password", "second_factor.enrol", "login"]

    # Kept only as salted hashes: no code is in the database.
    stored = db.session.scalars(select(RecoveryCode)).all()
    assert len(stored) == 10
    assert not {c.replace("-", "") for c in codes} & {r.code_hash for r in stored}
    assert all(len(r.code_hash) == 64 and r.salt for r in stored)


def test_a_wrong_or_malformed_enrolment_code_is_refused_with_a_reason(client, make_user):
    lead = make_user(Role.PROGRAMME_LEAD, second_factor=False)
    password_step(client, lead.username)
    secret = enrol_page_secret(client.get("/auth/second-factor").get_data(as_text=True))
    wrong = str((int(pyotp.TOTP(secret).now()) + 1) % 1_000_000).zfill(6)
    for code in (wrong, "abc", ""):
        response = submit_form(client, "/auth/second-factor", button="Turn on",
                               fields={"code": code})
        assert response.status_code == 400, code
        assert 'role="alert"' in response.get_data(as_text=True)
    # Longer than the field allows: only a hand-built request can send it.
    overlong = post_hand_built(client, "/auth/second-factor", {"code": "9" * 65})
    assert overlong.status_code == 400 and 'role="alert"' in overlong.get_data(as_text=True)
    assert db.session.get(SecondFactor, lead.id).enrolled_at is None
    assert db.session.scalar(select(func.count(UserSession.id))) == 0  # not signed in


def test_a_trainee_signs_in_with_a_password_alone_and_may_enrol(client, make_user):
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    response = login(client, trainee.username)
    assert response.status_code == 302 and "second-factor" not in response.location
    page = client.get("/auth/second-factor/set-up").get_data(as_text=True)
    secret = enrol_page_secret(page)
    done = submit_form(client, "/auth/second-factor/set-up", button="Turn on",
                       fields={"code": pyotp.TOTP(secret).now()})
    assert len(recovery_codes(done.get_data(as_text=True))) == 10
    sign_out(client)
    # From now on the trainee's sign-in has the second step too.
    assert password_step(client, trainee.username).location.endswith("/auth/second-factor")
    assert client.get("/training/").status_code == 302


# ---- the second step ------------------------------------------------------------------------


def test_a_code_signs_in_and_goes_on_to_the_page_asked_for(client, make_user):
    trainer = make_user(Role.TRAINER)
    with freeze_time(T0):
        password_step(client, trainer.username, next="/cases/")
        response = code_step(client, TOTP.now())
        assert response.status_code == 302 and response.location == "/cases/"
        assert client.get("/cases/").status_code == 200
    assert actions()[-1] == "login"


def test_a_code_is_never_accepted_twice(client, make_user):
    trainer = make_user(Role.TRAINER)
    with freeze_time(T0):
        code = TOTP.now()
        password_step(client, trainer.username)
        assert code_step(client, code).status_code == 302
        sign_out(client)
        password_step(client, trainer.username)
        replay = code_step(client, code)
        assert replay.status_code == 401
        assert "That code is not right" in replay.get_data(as_text=True)
    with freeze_time(T0 + timedelta(seconds=30)):
        # The code of the step before, still inside the drift window, was used: refused too.
        assert code_step(client, TOTP.at(T0)).status_code == 401
        assert code_step(client, TOTP.now()).status_code == 302


def test_a_code_one_step_either_side_is_accepted_for_clock_drift(client, make_user):
    trainer = make_user(Role.TRAINER)
    with freeze_time(T0):
        password_step(client, trainer.username)
        assert code_step(client, TOTP.at(T0 - timedelta(seconds=30))).status_code == 302
        sign_out(client)
        password_step(client, trainer.username)
        assert code_step(client, TOTP.at(T0 - timedelta(seconds=90))).status_code == 401
        assert code_step(client, TOTP.at(T0 + timedelta(seconds=30))).status_code == 302


def test_a_recovery_code_signs_in_once(client, make_user):
    admin = make_user(Role.ADMIN, second_factor=False)
    password_step(client, admin.username)
    secret = enrol_page_secret(client.get("/auth/second-factor").get_data(as_text=True))
    done = submit_form(client, "/auth/second-factor", button="Turn on",
                       fields={"code": pyotp.TOTP(secret).now()})
    first, second = recovery_codes(done.get_data(as_text=True))[:2]
    sign_out(client)

    password_step(client, admin.username)
    assert code_step(client, first.upper().replace("-", " ")).status_code == 302  # as typed
    assert client.get("/admin/").status_code == 200
    sign_out(client)
    password_step(client, admin.username)
    assert code_step(client, first).status_code == 401  # used up
    assert code_step(client, second).status_code == 302
    assert db.session.scalar(
        select(func.count(RecoveryCode.id)).where(RecoveryCode.used_at.is_(None))) == 8
    assert "second_factor.recovery_code" in actions()


def test_wrong_codes_are_throttled_per_account_and_the_sign_in_starts_over(client, make_user):
    trainer = make_user(Role.TRAINER)
    with freeze_time(T0) as clock:
        password_step(client, trainer.username)
        for _ in range(4):
            assert code_step(client, "000000").status_code == 401
        fifth = code_step(client, "000000")
        assert fifth.status_code == 429
        assert "Too many wrong codes" in fifth.get_data(as_text=True)
        # The held sign-in is gone: the second step needs the password again.
        assert "Sign in with your password" in client.get(
            "/auth/second-factor").get_data(as_text=True)
        # Even after the password again, and with a right code, the account waits.
        clock.tick(60)
        password_step(client, trainer.username)
        assert code_step(client, TOTP.now()).status_code == 429
        clock.tick(15 * 60)
        password_step(client, trainer.username)
        assert code_step(client, TOTP.now()).status_code == 302
    assert actions().count("second_factor.failed") == 5


def test_the_second_step_expires_and_needs_the_password_first(client, make_user):
    trainer = make_user(Role.TRAINER)
    # No password step at all: nothing to verify.
    assert "Sign in with your password" in client.get("/auth/second-factor").get_data(
        as_text=True)
    refused = post_hand_built(client, "/auth/second-factor", {"code": "123456"},
                              page="/auth/login")
    assert refused.status_code == 400
    with freeze_time(T0) as clock:
        password_step(client, trainer.username)
        clock.tick(6 * 60)
        response = post_hand_built(client, "/auth/second-factor", {"code": TOTP.now()},
                                   page="/auth/login")
        assert response.status_code == 400
        assert "Sign in with your password" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(UserSession.id))) == 0


def test_the_code_field_refuses_empty_and_overlong_input_with_a_reason(client, make_user):
    trainer = make_user(Role.TRAINER)
    password_step(client, trainer.username)
    response = code_step(client, "")
    assert response.status_code == 400 and "Enter a code." in response.get_data(as_text=True)
    overlong = post_hand_built(client, "/auth/second-factor", {"code": "1" * 65})
    assert overlong.status_code == 400 and 'role="alert"' in overlong.get_data(as_text=True)
    assert code_step(client, "not a code").status_code == 401
    assert code_step(client, TOTP.now()).status_code == 302


def test_a_session_that_skipped_the_second_factor_is_refused_on_every_page(client, make_user):
    """A trainee signed in with a password alone who is then made a trainer: the session did
    not pass the second factor, so it ends and the user signs in again."""
    user = make_user(Role.TRAINEE_RADIOLOGIST)
    assert "second-factor" not in login(client, user.username).location
    update_user(user, full_name=user.full_name, roles=[Role.TRAINER], clinic=user.clinic,
                lead_countries=[], lead_all_countries=False)
    response = client.get("/cases/")
    assert response.status_code == 302 and "/auth/login" in response.location
    assert client.get("/help/").status_code == 200  # signed out, not stuck
    assert db.session.scalar(
        select(func.count(UserSession.id)).where(UserSession.ended_at.is_(None))) == 0


def test_a_deactivated_account_cannot_finish_the_second_step(client, make_user):
    from app.auth.services import set_active

    trainer = make_user(Role.TRAINER)
    make_user(Role.ADMIN)
    password_step(client, trainer.username)
    set_active(trainer, False)
    assert "Sign in with your password" in client.get("/auth/second-factor").get_data(
        as_text=True)


# ---- reset by an administrator --------------------------------------------------------------


def test_an_administrator_resets_a_second_factor_from_the_user_page(client, make_user):
    trainer = make_user(Role.TRAINER)
    admin = make_user(Role.ADMIN, username="ada")
    trainer_client = client.application.test_client()
    login(trainer_client, trainer.username)
    assert trainer_client.get("/cases/").status_code == 200

    login(client, admin.username)
    page = f"/admin/users/{trainer.id}"
    assert "second factor on" in client.get(page).get_data(as_text=True)
    response = submit_form(client, page, button="Reset second factor")
    assert response.status_code == 302
    after = client.get(page).get_data(as_text=True)
    assert "second factor not set up" in after and "Reset second factor" not in after
    event = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert (event.action, event.actor_id, event.object_id) == (
        "second_factor.reset", admin.id, str(trainer.id))
    assert trainer_client.get("/cases/").status_code == 302  # signed out everywhere

    # Nothing to reset: a clear refusal, nothing written.
    before = len(actions())
    refused = post_hand_built(client, f"{page}/reset-second-factor", page=page)
    assert refused.status_code == 409
    assert "no second factor to reset" in refused.get_data(as_text=True)
    assert len(actions()) == before

    # The next sign-in sets up a new second factor.
    fresh = client.application.test_client()
    password_step(fresh, trainer.username)
    assert "Turn on" in fresh.get("/auth/second-factor").get_data(as_text=True)


def test_only_administrators_may_reset_a_second_factor(client, make_user):
    trainer = make_user(Role.TRAINER)
    lead = make_user(Role.PROGRAMME_LEAD)
    login(client, lead.username)
    response = post_hand_built(client, f"/admin/users/{trainer.id}/reset-second-factor",
                               page="/help/")
    assert response.status_code == 403
    assert db.session.get(SecondFactor, trainer.id) is not None


def run(app, *args: str):
    return app.test_cli_runner().invoke(args=list(args))


def test_users_reset_2fa_on_the_command_line(app, make_user):
    trainer = make_user(Role.TRAINER, username="trainer1")
    result = run(app, "users", "reset-2fa", "Trainer1")
    assert result.exit_code == 0, result.output
    assert "Reset the second factor of trainer1" in result.output
    assert db.session.get(SecondFactor, trainer.id) is None
    event = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert (event.action, event.actor_id, event.object_id) == (
        "second_factor.reset", None, str(trainer.id))

    again = run(app, "users", "reset-2fa", "trainer1")
    assert again.exit_code != 0 and "trainer1 has no second factor to reset" in again.output
    unknown = run(app, "users", "reset-2fa", "nobody")
    assert unknown.exit_code != 0 and "no user 'nobody'" in unknown.output
    missing = run(app, "users", "reset-2fa")
    assert missing.exit_code != 0 and "Missing argument 'USERNAME'" in missing.output
    assert actions().count("second_factor.reset") == 1


# ---- the demo -------------------------------------------------------------------------------


def test_demo_privileged_accounts_are_enrolled_with_their_key_beside_the_password(app):
    from pathlib import Path

    from app.demo import PASSWORD_FILE, seed_demo

    accounts = {a.username: a for a in seed_demo()}
    lines = {line.split()[0]: line.split()[1:] for line in
             (Path(app.instance_path) / PASSWORD_FILE).read_text().splitlines()
             if not line.startswith("#")}
    for name in ("demo-trainer", "demo-lead", "demo-admin"):
        _password, key = lines[name]
        assert key == accounts[name].totp_secret
        user = db.session.scalar(select(User).where(User.username == name))
        factor = db.session.get(SecondFactor, user.id)
        assert factor is not None and secret_of(factor) == key and factor.enrolled_at is not None
    assert len(lines["demo-radiologist"]) == 1  # trainees: a password only
    again = {a.username: a for a in seed_demo()}
    assert again["demo-admin"].totp_secret == accounts["demo-admin"].totp_secret
