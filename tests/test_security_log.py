"""The security log: JSON lines for a SIEM, written by driving the real pages (and the
command line), read back from the file. Every line must parse as JSON, carry the request's
fields, and hold no password, token, code, secret or session id."""

from __future__ import annotations

import json
import os
import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
from freezegun import freeze_time
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import create_app
from app.audit.security_log import MIRRORED, destination, identifier_hash
from app.audit.services import record
from app.auth.models import User, UserSession
from app.auth.roles import Role
from app.extensions import db
from tests.conftest import (
    PASSWORD,
    TOTP_SECRET,
    IsolatedClient,
    base_config,
    csrf_token,
    current_totp,
    login,
    sign_out,
)
from tests.forms import submit_form
from tests.test_attempts import cases  # noqa: F401 (fixture)
from tests.test_certification import programme  # noqa: F401 (fixture)
from tests.test_invitations import invitation_path
from tests.test_mail import smtp_inbox  # noqa: F401 (fixture)
from tests.test_password_reset import ask_for_link, link_path
from tests.test_second_factor import (
    code_step,
    enrol_page_secret,
    password_step,
    recovery_codes,
)

TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
REQUEST_FIELDS = {"ts", "event", "outcome", "user_id", "roles", "ip", "user_agent",
                  "request_id", "method", "path", "endpoint", "status"}


def lines(app) -> list[dict[str, Any]]:
    """Every line of the log, each parsed as JSON (a line that is not fails the test)."""
    path = Path(destination(app))
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def of(app, event: str) -> list[dict[str, Any]]:
    return [line for line in lines(app) if line["event"] == event]


def only(app, event: str) -> dict[str, Any]:
    found = of(app, event)
    assert len(found) == 1, (event, [line["event"] for line in lines(app)])
    return found[0]


# ---- sign-in ------------------------------------------------------------------------------


def test_a_sign_in_with_its_second_step_is_logged_with_the_request(app, client, make_user):
    trainer = make_user(Role.TRAINER, username="tessa")
    response = login(client, trainer.username)
    assert response.status_code == 302

    first = only(app, "login.password")
    line = only(app, "login")
    assert set(line) >= REQUEST_FIELDS
    assert TS.fullmatch(line["ts"])
    assert line["outcome"] == "success" and line["second_factor"] == "code"
    assert line["user_id"] == trainer.id and line["roles"] == ["trainer"]
    assert (line["method"], line["path"], line["endpoint"], line["status"]) == (
        "POST", "/auth/second-factor", "auth.second_step", 302)
    assert line["ip"] == "127.0.0.1" and line["user_agent"].startswith("Werkzeug")
    assert (first["path"], first["status"], first["user_id"]) == ("/auth/login", 302, trainer.id)
    assert first["request_id"] != line["request_id"]
    assert response.headers["X-Request-ID"] == line["request_id"]
    # Readable by the portal's user alone.
    mode = stat.S_IMODE(os.stat(destination(app)).st_mode)
    assert mode == 0o600


def test_a_failed_sign_in_logs_a_keyed_hash_of_the_name_never_what_was_typed(app, client,
                                                                             make_user):
    make_user(username="mara")
    typed = "Mara-Password-In-The-Wrong-Box-42"
    for name in (typed, typed, "mara"):
        response = submit_form(client, "/auth/login", button="Sign in",
                               fields={"username": name, "password": "not-her-password-9"})
        assert response.status_code == 401
    failed = of(app, "login.failed")
    assert [line["outcome"] for line in failed] == ["failure"] * 3
    assert [line["status"] for line in failed] == [401] * 3
    assert failed[0]["username_hash"] == failed[1]["username_hash"] != failed[2]["username_hash"]
    assert failed[0]["username_hash"] == identifier_hash(typed.lower())
    assert failed[0]["user_id"] is None
    assert of(app, "access.refused") == []  # the failure is the refusal's one line
    text = Path(destination(app)).read_text()
    assert typed not in text and typed.lower() not in text
    assert "not-her-password-9" not in text
    # A password typed into the name box on the reset page is hashed the same way.
    assert "username" not in failed[0]


def test_too_many_failures_are_refused_with_a_429_in_the_log(app, client, make_user):
    app.config["LOGIN_FAILURE_LIMIT_PER_ADDRESS"] = "2 per 15 minutes"
    make_user(username="rafa")
    codes = [submit_form(client, "/auth/login", button="Sign in",
                         fields={"username": "rafa", "password": "wrong-password-1"}).status_code
             for _ in range(3)]
    assert codes == [401, 401, 429]
    refused = only(app, "rate_limit.refused")
    assert refused["status"] == 429 and refused["endpoint"] == "auth.login"
    assert refused["limit"] == "2 per 15 minute"
    assert "rafa" not in Path(destination(app)).read_text()


def test_an_account_locked_by_failures_is_logged_once_with_the_account(app, client, make_user):
    app.config["LOGIN_ACCOUNT_MAX_FAILURES"] = 2
    user = make_user(username="paz")
    codes = [submit_form(client, "/auth/login", button="Sign in",
                         fields={"username": typed, "password": "wrong-password-1"}).status_code
             for typed in ("paz", user.email, "PAZ")]
    assert codes == [401, 429, 429]  # the failure that reaches the limit is already refused
    locked = only(app, "login.locked")
    assert locked["outcome"] == "failure" and locked["object_id"] == str(user.id)
    assert locked["failures"] == 2
    text = Path(destination(app)).read_text()
    assert user.email not in text and '"paz"' not in text.lower()


def test_a_lockout_audit_event_is_mirrored_when_it_commits(app):
    # Sign-in lockouts are audited as "login.locked"; whichever code writes them, the line
    # follows the audit event, with the typed name hashed.
    record("login.locked", username="Someone-Typed-This", failures=10, note="free text")
    db.session.commit()
    line = only(app, "login.locked")
    assert line["outcome"] == "failure" and line["failures"] == 10
    assert line["username_hash"] == identifier_hash("someone-typed-this")
    assert line["source"] == "command line"
    assert "note" not in line and "Someone" not in Path(destination(app)).read_text()


def test_sign_out_and_an_idle_end_are_logged(app, client, make_user):
    reader = make_user(username="ida")
    with freeze_time(datetime(2026, 3, 2, 8, 0, tzinfo=UTC)) as clock:
        login(client, reader.username)
        sign_out(client)
        assert only(app, "logout")["user_id"] == reader.id

        login(client, reader.username)
        clock.tick(timedelta(minutes=31))
        assert client.get("/training/").status_code == 302
    ended = only(app, "session.ended")
    assert (ended["reason"], ended["user_id"], ended["path"]) == ("idle", reader.id, "/training/")
    refused = [line for line in of(app, "access.refused") if line["path"] == "/training/"]
    assert refused and refused[-1]["reason"] == "sign_in_required"
    assert refused[-1]["status"] == 302 and refused[-1]["user_id"] is None


def test_an_expired_session_end_is_logged(app, client, make_user):
    reader = make_user(username="eve")
    login(client, reader.username)
    row = db.session.scalars(select(UserSession)).one()
    row.expires_at = row.created_at  # over its lifetime
    db.session.commit()
    client.get("/training/")
    assert only(app, "session.ended")["reason"] == "expired"


def test_a_session_ended_for_a_missing_second_factor_is_logged(app, client, make_user):
    from app.auth.services import update_user

    reader = make_user(username="pia")
    login(client, reader.username)
    update_user(reader, roles=["trainer"], clinic=None, lead_countries=[],
                lead_all_countries=False)
    assert client.get("/training/").status_code == 302
    ended = only(app, "session.ended")
    assert (ended["reason"], ended["user_id"], ended["roles"]) == (
        "second_factor_required", reader.id, ["trainer"])


# ---- second factor ------------------------------------------------------------------------


def test_second_factor_enrolment_recovery_wrong_codes_lockout_and_reset(app, client, make_user):
    admin = make_user(Role.ADMIN, username="root2", second_factor=False)
    password_step(client, admin.username)
    secret = enrol_page_secret(client.get("/auth/second-factor").get_data(as_text=True))
    done = submit_form(client, "/auth/second-factor", button="Turn on",
                       fields={"code": pyotp.TOTP(secret).now()})
    codes = recovery_codes(done.get_data(as_text=True))
    assert only(app, "second_factor.enrol")["user_id"] == admin.id
    assert only(app, "login")["second_factor"] == "enrolment"
    sign_out(client, "/help/")

    password_step(client, admin.username)
    assert code_step(client, codes[0]).status_code == 302
    used = only(app, "second_factor.recovery_code")
    assert used["remaining"] == 9 and used["user_id"] == admin.id
    sign_out(client, "/help/")

    trainer = make_user(Role.TRAINER, username="tom")
    password_step(client, trainer.username)
    statuses = [code_step(client, "000000").status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 401, 429]
    assert [line["status"] for line in of(app, "second_factor.failed")] == [401] * 4 + [429]
    locked = only(app, "second_factor.locked")
    assert locked["failures"] == 5 and locked["user_id"] == trainer.id
    password_step(client, trainer.username)
    assert code_step(client, pyotp.TOTP(TOTP_SECRET).now()).status_code == 429
    assert only(app, "second_factor.refused_locked")["status"] == 429
    assert of(app, "access.refused") == [] and of(app, "rate_limit.refused") == []

    password_step(client, admin.username)
    assert code_step(client, codes[1]).status_code == 302
    reset = submit_form(client, f"/admin/users/{trainer.id}", button="Reset second factor")
    assert reset.status_code == 302
    line = only(app, "second_factor.reset")
    assert line["user_id"] == admin.id and line["object_id"] == str(trainer.id)
    text = Path(destination(app)).read_text()
    assert secret not in text and TOTP_SECRET not in text
    assert not any(code in text or code.replace("-", "") in text for code in codes)


# ---- refusals -----------------------------------------------------------------------------


def test_a_trainee_on_a_trainer_page_is_logged_as_refused_with_the_endpoint(app, client,
                                                                            login_as):
    trainee = login_as(Role.TRAINEE_RADIOLOGIST)
    assert client.get("/cases/").status_code == 403
    line = only(app, "access.refused")
    assert line["status"] == 403 and line["reason"] == "forbidden"
    assert line["endpoint"] == "cases.index" and line["path"] == "/cases/"
    assert line["user_id"] == trainee.id and line["roles"] == ["trainee_radiologist"]


def test_a_refusal_rendered_by_a_page_is_logged_too(app, client, programme, login_as,  # noqa: F811
                                                   make_clinic):
    lead = login_as(Role.PROGRAMME_LEAD, countries=("KE",), username="lena",
                    clinic=make_clinic("Kisumu site", "Kisumu", "KE"))
    response = submit_form(client, "/certification/exceptions/new", button="Issue certificate",
                           fields={"reader": "lena", "programme": str(programme.id),
                                   "reason": "self-service"})
    assert response.status_code == 403
    line = only(app, "access.refused")
    assert (line["endpoint"], line["user_id"], line["reason"]) == (
        "certification.new_exception", lead.id, "forbidden")


def test_a_json_request_without_sign_in_is_a_logged_401(app, client):
    response = client.get("/training/", headers={"Accept": "application/json"})
    assert response.status_code == 401
    line = only(app, "access.refused")
    assert (line["status"], line["reason"], line["user_id"]) == (401, "sign_in_required", None)


def test_a_csrf_failure_is_logged_without_the_form(app, client, login_as):
    login_as(Role.TRAINEE_RADIOLOGIST)
    # No page makes this request: it is what a forged cross-site form sends.
    response = client.post("/auth/logout", data={"csrf_token": "forged-token-value"})
    assert response.status_code == 400
    line = only(app, "csrf.refused")
    assert line["status"] == 400 and line["endpoint"] == "auth.logout"
    assert "CSRF" in line["reason"]
    assert "forged-token-value" not in Path(destination(app)).read_text()


def test_a_forged_or_used_link_is_logged_without_the_link(app, client, make_user):
    from app.auth.invitations import invitation_token

    invitee = make_user(username="ivo", password=None)
    token = invitation_token(invitee)
    db.session.commit()
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert client.get(f"/auth/invitation/{forged}").status_code == 400
    assert submit_form(client, f"/auth/invitation/{token}", button="Set password", fields={
        "password": "ivo-sets-a-password-1", "confirm": "ivo-sets-a-password-1"},
    ).status_code == 302
    assert client.get(f"/auth/invitation/{token}").status_code == 400
    refused = of(app, "link.refused")
    assert [(line["purpose"], line["problem"], line["status"]) for line in refused] == [
        ("invitation", "invalid", 400), ("invitation", "used", 400)]
    assert {line["path"] for line in refused} == {"/auth/invitation/<token>"}
    text = Path(destination(app)).read_text()
    assert token not in text and forged not in text
    assert token.split(".")[0] not in text


def test_the_path_is_logged_without_its_query_string(app, client, login_as):
    login_as(Role.TRAINEE_RADIOLOGIST)
    client.get("/cases/?token=query-secret-123")
    line = only(app, "access.refused")
    assert line["path"] == "/cases/"
    assert "query-secret-123" not in Path(destination(app)).read_text()


def test_an_odd_user_agent_stays_one_truncated_json_line(app, client):
    agent = 'Evil "agent" \\ \u00e9\u4e2d ' + "x" * 500
    client.get("/training/", headers={"User-Agent": agent, "Accept": "application/json"})
    # A forged line after a line break (log injection): a proxy could pass the raw bytes.
    injected = 'x\n{"event": "login", "outcome": "success", "user_id": 1}\r\n'
    client.get("/training/", headers={"Accept": "application/json"},
               environ_overrides={"HTTP_USER_AGENT": injected})
    first, second = lines(app)
    assert first["user_agent"] == agent[:200]
    assert second["user_agent"] == injected and second["event"] == "access.refused"
    assert len(Path(destination(app)).read_text().splitlines()) == 2


# ---- accounts, passwords, invitations: the whole walk holds no secret ----------------------


def test_the_account_walk_is_logged_and_no_secret_reaches_the_log(app, client, login_as,
                                                                   make_clinic, smtp_inbox):  # noqa: F811
    secrets: list[str] = [PASSWORD, TOTP_SECRET, str(app.config["SECRET_KEY"])]
    path = invitation_path(client, login_as, make_clinic)  # an admin invites a new reader
    secrets.append(path.rsplit("/", 1)[-1])
    first_password, second_password, third_password = (
        "invited-reader-pass-1", "changed-reader-pass-2", "reset-reader-pass-3")
    secrets += [first_password, second_password, third_password]
    assert submit_form(client, path, button="Set password", fields={
        "password": first_password, "confirm": first_password}).status_code == 302
    signed_in = login(client, "new.reader", first_password)
    assert signed_in.status_code == 302
    secrets += [c.split("=", 1)[1].split(";", 1)[0]
                for c in signed_in.headers.getlist("Set-Cookie") if c.startswith("cxr_session=")]
    assert submit_form(client, "/auth/password", button="Change password", fields={
        "current": first_password, "password": second_password,
        "confirm": second_password}).status_code == 302
    # The reader turns on a second factor, then signs in with a code and a recovery code.
    enrol_page = client.get("/auth/second-factor/set-up").get_data(as_text=True)
    secret = enrol_page_secret(enrol_page)
    code = pyotp.TOTP(secret).now()
    done = submit_form(client, "/auth/second-factor/set-up", button="Turn on",
                       fields={"code": code})
    codes = recovery_codes(done.get_data(as_text=True))
    assert len(codes) == 10
    secrets += [secret, *codes, *(c.replace("-", "") for c in codes)]
    typed_codes = [code]
    sign_out(client)
    password_step(client, "new.reader", second_password)
    code = current_totp("new.reader")  # (forgets the step used at enrolment: no replay)
    typed_codes.append(code)
    with_code = code_step(client, code)
    assert with_code.status_code == 302
    secrets += [c.split("=", 1)[1].split(";", 1)[0]
                for c in with_code.headers.getlist("Set-Cookie") if c.startswith("cxr_session=")]
    secrets.append(csrf_token(client, "/help/"))
    sign_out(client, "/help/")
    password_step(client, "new.reader", second_password)
    assert code_step(client, codes[0]).status_code == 302
    sign_out(client, "/help/")

    ask_for_link(client, "new.reader")
    ask_for_link(client, "nobody-by-this-name")
    reset_path = link_path(smtp_inbox.messages[-1])
    secrets.append(reset_path.rsplit("/", 1)[-1])
    assert submit_form(client, reset_path, button="Set password", fields={
        "password": third_password, "confirm": third_password}).status_code == 302

    by_link = of(app, "user.password")
    assert [line["path"] for line in by_link] == [
        "/auth/invitation/<token>", "/auth/password", "/auth/password/reset/<token>"]
    invite = only(app, "user.invite")
    assert invite["outcome"] == "success" and invite["path"].startswith("/admin/users")
    created = of(app, "user.create")[-1]  # [0]: the administrator, made by the test
    assert created["detail_roles"] == ["trainee_radiologist"]
    assert created["roles"] == ["admin"]
    assert [line["via"] for line in of(app, "user.password")] == [
        "invitation", "change", "password_reset"]
    requests = of(app, "password_reset.request")
    assert [line["matched"] for line in requests] == [True, False]
    assert requests[1]["identifier_hash"] == identifier_hash("nobody-by-this-name")
    text = Path(destination(app)).read_text()
    assert "nobody-by-this-name" not in text
    for secret in secrets:
        assert secret not in text, secret
    # Six-digit codes are checked against every value but the random ids and hashes, where
    # six digits in a row may turn up by chance.
    values = json.dumps([{key: value for key, value in line.items()
                          if key != "request_id" and not key.endswith("_hash")}
                         for line in lines(app)])
    for typed in typed_codes:
        assert typed not in values
    assert [line["second_factor"] for line in of(app, "login") if "second_factor" in line][
        -2:] == ["code", "recovery code"]
    assert only(app, "second_factor.enrol")["path"] == "/auth/second-factor/set-up"


# ---- administration, certificates, exports -----------------------------------------------


def test_role_changes_and_deactivation_are_logged(app, client, login_as, make_user):
    reader = make_user(username="rolf")
    admin = login_as(Role.ADMIN)
    assert submit_form(client, f"/admin/users/{reader.id}", button="Save", fields={
        "roles": ["trainee_radiologist", "programme_lead"], "lead_countries": ["KE"]},
    ).status_code == 302
    roles = only(app, "user.roles")
    assert (roles["before"], roles["after"]) == (
        ["trainee_radiologist"], ["programme_lead", "trainee_radiologist"])
    assert roles["user_id"] == admin.id and roles["object_id"] == str(reader.id)
    scope = only(app, "user.scope")
    assert (scope["before"], scope["after"]) == (
        {"all": False, "countries": []}, {"all": False, "countries": ["KE"]})
    assert submit_form(client, f"/admin/users/{reader.id}",
                       button="Deactivate").status_code == 302
    assert only(app, "user.deactivate")["object_id"] == str(reader.id)
    assert submit_form(client, f"/admin/users/{reader.id}",
                       button="Reactivate").status_code == 302
    assert only(app, "user.activate")["object_id"] == str(reader.id)


def test_account_commands_are_logged_from_the_command_line(app, make_user):
    reader = make_user(username="cleo")
    runner = app.test_cli_runner()
    new = "cleo-gets-a-new-password-5"
    result = runner.invoke(args=["users", "set-password", "cleo"], input=f"{new}\n{new}\n")
    assert result.exit_code == 0, result.output
    line = only(app, "user.password")
    assert (line["via"], line["source"], line["object_id"]) == (
        "cli", "command line", str(reader.id))
    assert new not in Path(destination(app)).read_text()


def test_a_rolled_back_change_leaves_no_line(app, make_user):
    reader = make_user(username="rollo")
    record("user.deactivate", object_type="user", object_id=reader.id)
    db.session.rollback()
    assert of(app, "user.deactivate") == []
    record("user.deactivate", object_type="user", object_id=reader.id)
    db.session.flush()
    db.session.rollback()  # flushed, still rolled back
    assert of(app, "user.deactivate") == []
    # The database refuses the transaction at its commit (a duplicate user name).
    record("user.deactivate", object_type="user", object_id=reader.id)
    db.session.add(User(username="rollo", email="other@example.org", full_name="Other"))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    assert of(app, "user.deactivate") == []
    record("user.deactivate", object_type="user", object_id=reader.id)
    db.session.commit()
    assert len(of(app, "user.deactivate")) == 1


def test_an_unwritable_log_does_not_break_sign_in(app, database_url, tmp_path, make_user,
                                                   caplog):
    make_user(username="una")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the log's folder should be")
    broken = create_app({**base_config(database_url, tmp_path / "other-instance"),
                         "SECURITY_LOG_PATH": str(blocker / "security.log")})
    broken.test_client_class = IsolatedClient
    browser = broken.test_client()
    assert login(browser, "una").status_code == 302
    assert browser.get("/training/").status_code == 200
    assert "security log not written" in caplog.text
    assert "Password" not in caplog.text and PASSWORD not in caplog.text


def test_a_dash_sends_the_log_to_standard_error(app, database_url, tmp_path, make_user, capfd):
    make_user(username="stella")
    to_stderr = create_app({**base_config(database_url, tmp_path / "other-instance"),
                            "SECURITY_LOG_PATH": "-"})
    to_stderr.test_client_class = IsolatedClient
    assert login(to_stderr.test_client(), "stella").status_code == 302
    err = capfd.readouterr().err
    [line] = [json.loads(text) for text in err.splitlines() if text.startswith('{"ts"')]
    assert line["event"] == "login"
    assert not (tmp_path / "other-instance" / "security.log").exists()


def test_a_server_logging_set_up_does_not_silence_it(app, database_url, tmp_path, make_user):
    import logging

    make_user(username="gus")
    # What logging.config.dictConfig (disable_existing_loggers) in a WSGI server's logging
    # set-up does to loggers it does not name, before the app loads.
    logging.getLogger("cxr_academy.security").disabled = True
    served = create_app(base_config(database_url, tmp_path / "served-instance"))
    served.test_client_class = IsolatedClient
    assert login(served.test_client(), "gus").status_code == 302
    assert only(served, "login")["user_id"] is not None


def test_log_rotation_by_moving_the_file_starts_a_new_one(app, client, make_user):
    make_user(username="rory")
    submit_form(client, "/auth/login", button="Sign in",
                fields={"username": "rory", "password": "wrong-password-1"})
    log = Path(destination(app))
    log.rename(log.with_suffix(".log.1"))  # what logrotate does
    submit_form(client, "/auth/login", button="Sign in",
                fields={"username": "rory", "password": "wrong-password-2"})
    assert len(of(app, "login.failed")) == 1
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600


def test_revocations_and_exceptions_are_logged_without_their_reasons(
        app, client, programme, make_user, login_as, make_clinic):  # noqa: F811
    from app.certification.models import Certificate

    reader = make_user(Role.TRAINEE_RADIOLOGIST, username="wanjiru",
                       clinic=make_clinic("Kisumu site", "Kisumu", "KE"))
    lead = login_as(Role.PROGRAMME_LEAD, countries=("KE",))
    assert submit_form(client, "/certification/exceptions/new", button="Issue certificate",
                       fields={"reader": "wanjiru", "programme": str(programme.id),
                               "reason": "equivalent national exam"}).status_code == 302
    certificate = db.session.scalars(select(Certificate)).one()
    assert certificate.user_id == reader.id
    exception = only(app, "certificate.exception")
    assert exception["user_id"] == lead.id and exception["object_id"] == str(certificate.id)
    assert submit_form(client, "/certification/certificates",
                       action=f"/certificates/{certificate.id}/revoke",
                       fields={"reason": "identity doubt"}).status_code == 302
    revoked = only(app, "certificate.revoke")
    assert revoked["object_type"] == "certificate" and revoked["status"] == 302
    assert submit_form(client, "/certification/certificates",
                       action=f"/certificates/{certificate.id}/reinstate",
                       fields={"reason": "identity confirmed"}).status_code == 302
    assert only(app, "certificate.reinstate")["object_id"] == str(certificate.id)
    text = Path(destination(app)).read_text()
    assert "identity doubt" not in text and "equivalent national exam" not in text
    assert "identity confirmed" not in text


def test_downloads_and_exports_are_logged(app, client, programme, login_as,  # noqa: F811
                                          tmp_path):
    login_as(Role.PROGRAMME_LEAD, countries=("KE",))
    page = client.get(f"/certification/programmes/{programme.id}").get_data(as_text=True)
    links = re.findall(r'href="([^"]*format=(?:csv|xlsx)[^"]*)"', page)
    assert len(links) == 4
    for link in links:
        assert client.get(link.replace("&amp;", "&")).status_code == 200
    exports = of(app, "export")
    assert sorted((line["format"], line["export"]) for line in exports) == sorted([
        ("csv", f"programme-{programme.id}-clinics"), ("xlsx", f"programme-{programme.id}-clinics"),
        ("csv", f"programme-{programme.id}-readers"), ("xlsx", f"programme-{programme.id}-readers"),
    ])
    assert {line["status"] for line in exports} == {200}

    runner = app.test_cli_runner()
    result = runner.invoke(args=["cases", "export-library", str(tmp_path / "library"),
                                 "--status", "all"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["backup", str(tmp_path / "backups")])
    assert result.exit_code == 0, result.output
    cli = [line for line in of(app, "export") if line.get("source") == "command line"]
    assert [(line["format"], line["outcome"]) for line in cli] == [
        ("case library", "success"), ("backup", "success")]
    assert "ip" not in cli[0]
    refused = runner.invoke(args=["backup", str(tmp_path / "backups" / "x.tar" / "deeper")])
    assert refused.exit_code != 0
    failed = of(app, "export")[-1]
    assert failed["outcome"] == "failure" and failed["reason"]
    missing = runner.invoke(args=["restore", str(tmp_path / "no-such-backup.tar")])
    assert missing.exit_code != 0
    restore = only(app, "backup.restore")
    assert restore["outcome"] == "failure" and restore["file"].endswith("no-such-backup.tar")


def test_a_certificate_pdf_download_is_logged(app, client, programme,  # noqa: F811
                                              login_as, make_user):
    from app.certification.services import grant_exception

    lead = make_user(Role.PROGRAMME_LEAD, lead_all_countries=True)
    reader = login_as(Role.TRAINEE_RADIOLOGIST)
    certificate = grant_exception(reader, programme, reason="test", actor=lead)
    assert client.get(f"/certification/certificates/{certificate.id}.pdf").status_code == 200
    line = only(app, "export")
    assert (line["format"], line["export"], line["object_id"]) == (
        "pdf", "certificate", str(certificate.id))
    assert line["user_id"] == reader.id and line["status"] == 200


# ---- the documentation ---------------------------------------------------------------------


def test_every_event_is_documented_and_every_documented_event_exists():
    root = Path(__file__).resolve().parent.parent
    doc = (root / "docs" / "security-log.md").read_text()
    documented = set()
    for row in re.findall(r"^\| (`[^|]+`) \|", doc, re.M):
        documented |= set(re.findall(r"`([a-z_]+(?:\.[a-z_]+)*)`", row))
    documented -= {"field", "event"}
    source = "\n".join(p.read_text() for p in (root / "app").rglob("*.py"))
    emitted = set(re.findall(r'security_log\.emit\(\s*"([a-z_.]+)"', source))
    emitted |= set(re.findall(r'\bemit\(\s*"([a-z_.]+)"', source))
    mirrored = {name for name, _, _ in MIRRORED.values()}
    assert emitted and mirrored
    assert (emitted | mirrored) - documented == set()
    # Rows of the event tables name events only (field tables use plain words).
    event_rows = {name for name in documented if "." in name or name in {"export", "logout",
                                                                          "login"}}
    assert event_rows - (emitted | mirrored) == set()
    for name in emitted | mirrored:
        assert f'"event": "{name}"' in doc, f"no example line for {name}"
