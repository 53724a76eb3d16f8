"""Failed sign-ins are counted per account in the database, whichever identifier is typed and
from whichever address; a locked account still lets its owner in with password and second
factor together, or through a reset link; an unknown identifier is treated exactly like an
account, so none of it tells anyone who has one."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from freezegun import freeze_time
from sqlalchemy import select

from app import create_app
from app.audit.models import AuditEvent
from app.auth import sign_in_throttle as throttle
from app.auth.links import LinkPurpose, make_link_token
from app.auth.models import User
from app.auth.roles import Role
from app.auth.second_factor_models import SecondFactor
from app.auth.sign_in_throttle_models import SignInFailures
from app.extensions import db
from tests.conftest import (
    PASSWORD,
    TOTP_SECRET,
    IsolatedClient,
    base_config,
    post_hand_built,
    postgresql_only,
)
from tests.forms import submit_form, submit_html
from tests.test_mail import smtp_inbox  # noqa: F401 (fixture)

WRONG = "Wrong user name or password."
LOCKED = "Too many failed sign-in attempts for this account."
LOCKED_WRONG = "The password or the code is not right."
NEW_PASSWORD = "a-brand-new-password-7"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

_addresses = iter(range(1, 1_000_000))


def fresh_address() -> str:
    """A client address never used before: the per-address limit stays out of the way."""
    n = next(_addresses)
    return f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"


def sign_in(client, identifier: str, password: str, address: str | None = None):
    return submit_form(client, "/auth/login", button="Sign in",
                       fields={"username": identifier, "password": password},
                       environ_base={"REMOTE_ADDR": address or fresh_address()})


def with_code(client, locked_page, password: str, code: str, address: str | None = None):
    """Fill in the locked sign-in page the way its owner would: password and code together."""
    return submit_html(client, locked_page.get_data(as_text=True), "/auth/login",
                       button="Sign in", fields={"password": password, "code": code},
                       environ_base={"REMOTE_ADDR": address or fresh_address()})


def variants(user) -> list[str]:
    """Ways of typing one account: user name and e-mail, in any case, with stray spaces."""
    return [user.username, user.email, user.username.upper(), f"  {user.email.upper()} ",
            f" {user.username}", user.email.title(), f"{user.username}\t",
            user.email.swapcase(), user.username.capitalize(), f"{user.email} "]


def lock(client, identifiers: list[str]):
    """Ten failures from ten addresses; returns the answers."""
    return [sign_in(client, ident, "not-the-password-x") for ident in identifiers]


def text(response) -> str:
    return response.get_data(as_text=True)


def signed_in(client) -> bool:
    return client.get("/training/").status_code == 200


def code_now() -> str:
    """The authenticator code make_user's privileged users have now (each 30-second step is
    accepted once, so the last accepted step is forgotten first)."""
    for factor in db.session.scalars(select(SecondFactor)):
        factor.last_time_step = None
    db.session.commit()
    return pyotp.TOTP(TOTP_SECRET).now()


def locked_events() -> list[AuditEvent]:
    db.session.expire_all()
    return list(db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "login.locked").order_by(AuditEvent.id)))


def failures_counted() -> list[int]:
    db.session.expire_all()
    return sorted(db.session.scalars(select(SignInFailures.failures)))


def comparable(response, *typed: str) -> str:
    """A page with what differs by nature (the CSRF token, the identifier typed back into its
    box) blanked out."""
    html = re.sub(r'(name="csrf[-_]token"[^>]*(content|value)=")[^"]+', r"\1", text(response))
    html = re.sub(r'(value=")[^"]+', r"\1", html)
    for word in typed:
        html = html.replace(word, "")
    return html


# ---- one counter per account ----------------------------------------------------------------


def test_ten_failures_by_user_name_and_email_variants_from_ten_addresses_lock_the_account(
        client, make_user):
    user = make_user(Role.TRAINER)
    answers = lock(client, variants(user))
    assert [a.status_code for a in answers] == [401] * 9 + [429]
    assert all(WRONG in text(a) for a in answers[:9])
    assert LOCKED in text(answers[-1])
    # The owner, from yet another address, with the right password: not enough any more.
    refused = sign_in(client, user.username, PASSWORD)
    assert refused.status_code == 429 and LOCKED in text(refused)
    assert not signed_in(client)
    [event] = locked_events()
    assert event.actor_id == user.id and event.object_id == str(user.id)
    # One row for the account: the counter of user name and e-mail is the same.
    assert failures_counted() == [11]


@pytest.mark.parametrize(("typed", "normal"), [
    ("  Ada.Lovelace ", "ada.lovelace"),
    ("ADA@EXAMPLE.ORG", "ada@example.org"),
    ("ada\u3000@example.org\n", "ada@example.org"),  # an ideographic space
    ("\uff41\uff44\uff41", "ada"),  # full-width letters, as some keyboards type them
    ("x" * 10_000, "x" * 254),
    ("", ""),
])
def test_identifiers_are_normalised_as_the_account_columns_hold_them(typed, normal):
    assert throttle.normalise_identifier(typed) == normal


def test_full_width_and_spaced_variants_count_against_the_same_account(client, make_user):
    user = make_user(username="ada")
    typed = ["\uff41\uff44\uff41", "ADA", " ada@example.org ", "Ada\u3000"] * 3
    answers = [sign_in(client, ident, "not-the-password-x") for ident in typed[:10]]
    assert [a.status_code for a in answers] == [401] * 9 + [429]
    assert sign_in(client, user.username, PASSWORD).status_code == 429


def test_the_counter_holds_no_identifier_in_clear(client, make_user):
    user = make_user()
    typed = ["nobody-here", "typed-my-password-here!", user.username, user.email]
    for ident in typed:
        sign_in(client, ident, "not-the-password-x")
    keys = list(db.session.scalars(select(SignInFailures.key)))
    assert len(keys) == 3  # the account (twice) and two unknown identifiers
    for key in keys:
        assert re.fullmatch(r"[0-9a-f]{64}", key)
        assert not any(word in key for word in typed)


def test_a_successful_sign_in_resets_the_counter(app, make_user):
    user = make_user()
    for _ in range(2):
        device = app.test_client()
        assert [a.status_code for a in lock(device, variants(user)[:9])] == [401] * 9
        assert sign_in(device, user.email, PASSWORD).status_code == 302
        assert failures_counted() == []
    # Nineteen failures with a success between them: never locked.
    assert locked_events() == []


# ---- what still gets the owner in ------------------------------------------------------------


def test_owner_gets_in_while_locked_with_password_and_code_together(client, make_user):
    user = make_user(Role.TRAINER)
    lock(client, variants(user))
    page = sign_in(client, user.username, PASSWORD)
    assert page.status_code == 429
    html = text(page)
    assert "authenticator app" in html and 'name="code"' in html
    response = with_code(client, page, PASSWORD, code_now())
    assert response.status_code == 302 and response.location == "/cases/"
    assert "Case library" in text(client.get("/cases/"))  # the second factor counts as passed
    assert failures_counted() == []  # the sign-in reset the counter
    db.session.expire_all()
    actions = list(db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert actions[-2:] == ["login.password", "login"]


def test_a_trainee_who_opted_in_gets_in_while_locked_with_password_and_recovery_code(
        app, client, make_user):
    from tests.test_second_factor import enrol_page_secret, recovery_codes

    trainee = make_user()
    device = app.test_client()
    assert sign_in(device, trainee.username, PASSWORD).status_code == 302
    page = text(device.get("/auth/second-factor/set-up"))
    done = submit_form(device, "/auth/second-factor/set-up", button="Turn on",
                       fields={"code": pyotp.TOTP(enrol_page_secret(page)).now()})
    [first, *_] = recovery_codes(text(done))
    lock(client, variants(trainee))
    locked = sign_in(client, trainee.email, PASSWORD)
    response = with_code(client, locked, PASSWORD, first.upper())  # as typed from paper
    assert response.status_code == 302
    assert signed_in(client)
    assert failures_counted() == []


def test_wrong_code_or_wrong_password_while_locked_get_one_answer_and_are_counted(
        client, make_user):
    user = make_user(Role.TRAINER)
    lock(client, variants(user))
    page = sign_in(client, user.email, PASSWORD)
    counted = failures_counted()[0]
    answers = [
        with_code(client, page, PASSWORD, "000000"),  # right password, wrong code
        with_code(client, page, "not-the-password-x", code_now()),  # wrong password, right code
        with_code(client, page, "not-the-password-x", "123456"),  # both wrong
    ]
    assert {a.status_code for a in answers} == {429}
    assert {comparable(a) for a in answers} == {comparable(answers[0])}
    assert LOCKED_WRONG in text(answers[0]) and LOCKED in text(answers[0])
    assert failures_counted() == [counted + 3]
    assert not signed_in(client)


def test_the_second_factors_own_limit_applies_while_locked(client, make_user):
    user = make_user(Role.ADMIN)
    lock(client, variants(user))
    page = sign_in(client, user.username, PASSWORD)
    for _ in range(5):  # the second factor's limit: five wrong codes
        assert LOCKED_WRONG in text(with_code(client, page, PASSWORD, "000000"))
    # Now even password and right code are refused, with the same answer.
    refused = with_code(client, page, PASSWORD, code_now())
    assert refused.status_code == 429 and LOCKED_WRONG in text(refused)
    assert not signed_in(client)
    db.session.expire_all()
    assert db.session.get(SecondFactor, user.id).failed_count == 5


def test_trainee_without_second_factor_is_refused_while_locked_and_told_of_the_reset_link(
        client, make_user):
    user = make_user()
    lock(client, variants(user))
    refused = sign_in(client, user.username, PASSWORD)
    assert refused.status_code == 429
    html = text(refused)
    assert LOCKED in html and "reset your password" in html
    assert 'href="/auth/password/forgot"' in html
    # A code box is there (the page cannot say whether the account has a second factor), but
    # without one nothing typed into it helps.
    also = with_code(client, refused, PASSWORD, "123456")
    assert also.status_code == 429 and LOCKED_WRONG in text(also)
    assert not signed_in(client)


def test_a_reset_link_clears_the_lock(client, make_user):
    user = make_user()
    lock(client, variants(user))
    path = "/auth/password/reset/" + make_link_token(user, LinkPurpose.PASSWORD_RESET)
    db.session.commit()
    done = submit_form(client, path, button="Set password",
                       fields={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert done.status_code == 302
    assert failures_counted() == []
    assert sign_in(client, user.username, NEW_PASSWORD).status_code == 302
    assert signed_in(client)


def test_a_password_set_from_the_command_line_clears_the_lock(app, client, make_user):
    user = make_user()
    lock(client, variants(user))
    result = app.test_cli_runner().invoke(
        args=["users", "set-password", user.username],
        input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert failures_counted() == []
    assert sign_in(client, user.email, NEW_PASSWORD).status_code == 302


def test_an_invitation_accepted_again_clears_the_lock(client, make_user):
    # An administrator's way to give a locked user a new password: a new invitation.
    from app.auth.invitations import invitation_token

    user = make_user()
    lock(client, variants(user))
    token = invitation_token(user)
    db.session.commit()
    done = submit_form(client, f"/auth/invitation/{token}", button="Set password",
                       fields={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert done.status_code == 302
    assert failures_counted() == []


# ---- no account enumeration --------------------------------------------------------------


def test_unknown_identifier_gets_the_same_answers_as_an_account(client, make_user):
    user = make_user(Role.TRAINER, username="realone")
    ghost = "ghostone"  # same length, no account
    real = [sign_in(client, "realone", "not-the-password-x") for _ in range(11)]
    fake = [sign_in(client, ghost, "not-the-password-x") for _ in range(11)]
    assert [r.status_code for r in real] == [r.status_code for r in fake] == [401] * 9 + [429] * 2
    for a, b in zip(real, fake, strict=True):
        assert comparable(a, "realone") == comparable(b, ghost)
    # The locked page, with a code, answers both the same.
    assert comparable(with_code(client, real[-1], PASSWORD, "000000"), "realone") == \
        comparable(with_code(client, fake[-1], PASSWORD, "000000"), ghost)
    # Only the real account's lock is in the audit log.
    assert [e.actor_id for e in locked_events()] == [user.id]


# ---- several app servers, the window ----------------------------------------------------


def test_two_app_servers_on_one_database_share_the_counter(app, database_url, tmp_path,
                                                           make_user):
    user = make_user()
    other = create_app(base_config(database_url, tmp_path / "second-server"))
    other.test_client_class = IsolatedClient
    servers = [app.test_client(), other.test_client()]
    try:
        answers = [sign_in(servers[n % 2], ident, "not-the-password-x")
                   for n, ident in enumerate(variants(user))]
        assert [a.status_code for a in answers] == [401] * 9 + [429]
        for server in servers:
            refused = sign_in(server, user.username, PASSWORD)
            assert refused.status_code == 429 and LOCKED in text(refused)
    finally:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def frozen():
    with freeze_time(T0) as clock:
        yield clock


def test_the_lock_ends_a_window_after_the_last_failure(client, make_user, frozen):
    user = make_user()
    for ident in variants(user):
        sign_in(client, ident, "not-the-password-x")
        frozen.tick(timedelta(seconds=30))
    frozen.tick(timedelta(minutes=14))
    assert sign_in(client, user.username, PASSWORD).status_code == 429  # moves the lock on
    frozen.tick(timedelta(minutes=14, seconds=50))
    assert sign_in(client, user.username, PASSWORD).status_code == 429
    frozen.tick(timedelta(minutes=15, seconds=1))
    assert sign_in(client, user.username, PASSWORD).status_code == 302
    assert failures_counted() == []


def test_failures_spread_over_more_than_a_window_do_not_lock(client, make_user, frozen):
    user = make_user()
    for ident in variants(user)[:9]:
        assert sign_in(client, ident, "not-the-password-x").status_code == 401
        frozen.tick(timedelta(minutes=1))
    frozen.tick(timedelta(minutes=7))  # the first failure is now over 15 minutes old
    for ident in variants(user)[:9]:
        assert sign_in(client, ident, "not-the-password-x").status_code == 401
    assert sign_in(client, user.username, PASSWORD).status_code == 302


def test_counters_past_their_window_are_dropped(client, make_user, frozen):
    user = make_user()
    for ident in ["someone-guessed", user.username]:
        sign_in(client, ident, "not-the-password-x")
    assert failures_counted() == [1, 1]
    frozen.tick(timedelta(minutes=16))
    sign_in(client, "another-guess", "not-the-password-x")  # a new counter tidies up
    assert failures_counted() == [1]


# ---- the limits that stay, and bad input ----------------------------------------------------


def test_one_address_is_still_limited_across_accounts(client, make_user):
    for n in range(10):
        assert sign_in(client, f"guess{n}", "not-the-password-x", "10.200.0.1").status_code == 401
    user = make_user()
    refused = sign_in(client, user.username, PASSWORD, "10.200.0.1")
    assert refused.status_code == 429
    assert "Too many failed sign-in attempts from your network" in text(refused)
    assert sign_in(client, user.username, PASSWORD, "10.200.0.2").status_code == 302


@pytest.mark.parametrize(("fields", "reason"), [
    ({"username": "", "password": ""}, "This field is required."),
    ({"username": "someone", "password": ""}, "This field is required."),
    ({"username": "x" * 100_000, "password": PASSWORD}, "longer than 254 characters"),
    ({"username": "someone", "password": "p" * 100_000}, "longer than 256 characters"),
    ({"username": "someone", "password": PASSWORD, "code": "9" * 10_000},
     "longer than 64 characters"),
    ({"username": "\x00\ud7ff\ufeff", "password": PASSWORD}, None),
])
def test_bad_sign_in_input_is_a_4xx_with_the_reason(client, fields, reason):
    response = post_hand_built(client, "/auth/login", fields)
    assert 400 <= response.status_code < 500, response.status_code
    if reason:
        assert reason in text(response)
    assert failures_counted() in ([], [1])


def test_a_code_sent_for_an_account_that_is_not_locked_changes_nothing(client, make_user):
    user = make_user(Role.TRAINER)
    response = post_hand_built(client, "/auth/login", {
        "username": user.username, "password": PASSWORD, "code": "000000"})
    # The usual second step follows; the stray code neither signs in nor counts as wrong.
    assert response.status_code == 302 and response.location.endswith("/auth/second-factor")
    db.session.expire_all()
    assert db.session.get(SecondFactor, user.id).failed_count == 0


def test_reset_requests_share_one_limit_per_account_whatever_is_typed(client, make_user,
                                                                      smtp_inbox):  # noqa: F811
    user = make_user()
    typed = [user.username, user.email, user.username.upper(), f" {user.email} ", user.email]
    for ident in typed:
        asked = submit_form(client, "/auth/password/forgot", button="Send reset link",
                            fields={"identifier": ident},
                            environ_base={"REMOTE_ADDR": fresh_address()})
        assert asked.status_code == 200
    flood = submit_form(client, "/auth/password/forgot", button="Send reset link",
                        fields={"identifier": user.email.upper()},
                        environ_base={"REMOTE_ADDR": fresh_address()})
    assert flood.status_code == 429


@postgresql_only
def test_failures_counted_at_once_by_many_requests_are_all_counted(app, make_user):
    # Twelve sign-ins failing at the same moment on several servers (threads here, each with
    # its own connection, within the pool's 15): the conditional UPDATE loses none, and the
    # lock is recorded once.
    user = make_user()
    user_id = user.id
    db.session.remove()
    start = threading.Barrier(12)
    errors: list[BaseException] = []

    def fail_once() -> None:
        try:
            with app.app_context():
                someone = db.session.get(User, user_id)
                key = throttle.counter_key(someone, "")
                start.wait(30)
                throttle.note_failure(key, someone)
                db.session.remove()
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=fail_once) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert failures_counted() == [12]
    assert len(locked_events()) == 1
