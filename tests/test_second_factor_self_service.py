"""The account security page: every user finds it in the account menu, sees whether two-step
sign-in is on and how many recovery codes are left, and sets it up, makes new recovery codes,
moves it to a new authenticator app or (where the role allows) turns it off. Every action is
the form the page renders; bad input is a 4xx with the reason and changes nothing."""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
import pytest
from freezegun import freeze_time
from sqlalchemy import func, select

from app.auth.roles import Role
from app.auth.second_factor_models import RecoveryCode, SecondFactor
from app.extensions import db
from tests.conftest import PASSWORD, TOTP_SECRET, csrf_token
from tests.forms import submit_form
from tests.test_second_factor import (
    T0,
    TOTP,
    actions,
    code_step,
    enrol_page_secret,
    password_step,
    recovery_codes,
    sign_out,
)

PAGE = "/account/security"


def page_text(client) -> str:
    response = client.get(PAGE)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def status_sentence(html: str) -> str:
    match = re.search(r'data-testid="second-factor-status">([^<]+)<', html)
    assert match, html
    return " ".join(match.group(1).split())


def codes_left(html: str) -> int:
    match = re.search(r"Recovery codes left: (\d+)", html)
    assert match, html
    return int(match.group(1))


def sign_in_trainer(client, make_user, clock, **kwargs):
    trainer = make_user(Role.TRAINER, **kwargs)
    password_step(client, trainer.username)
    assert code_step(client, TOTP.now()).status_code == 302
    clock.tick(30)  # that code is spent: the next action needs the next one
    return trainer


def hand_built(client, path: str, data: dict[str, str]):
    """A POST no rendered form can make, with the CSRF token the security page gives."""
    return client.post(path, data={"csrf_token": csrf_token(client, PAGE), **data})


# ---- finding the page ---------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.TRAINEE_RADIOLOGIST, Role.TRAINEE_RADIOGRAPHER,
                                  Role.TRAINER, Role.PROGRAMME_LEAD, Role.ADMIN])
def test_every_role_has_the_page_in_its_account_menu(client, login_as, role):
    user = login_as(role)
    home = client.get("/", follow_redirects=True).get_data(as_text=True)
    account_menu = home.split('class="account"', 1)[1].split("</div>", 1)[0]
    assert f'href="{PAGE}"' in account_menu and "Account security" in account_menu
    html = page_text(client)
    assert ("On since" in status_sentence(html)) is (role not in (
        Role.TRAINEE_RADIOLOGIST, Role.TRAINEE_RADIOGRAPHER)), user.roles
    assert 'href="/auth/password"' in html  # the password is changed from here too


def test_the_page_needs_a_signed_in_user(client):
    response = client.get(PAGE)
    assert response.status_code == 302 and "/auth/login" in response.location


# ---- a trainee sets it up -----------------------------------------------------------------


def test_a_trainee_sets_it_up_from_the_page_and_comes_back_to_it(client, login_as):
    trainee = login_as(Role.TRAINEE_RADIOLOGIST)
    html = page_text(client)
    assert status_sentence(html).startswith("Off")
    assert 'href="/auth/second-factor/set-up"' in html
    secret = enrol_page_secret(client.get("/auth/second-factor/set-up").get_data(as_text=True))
    done = submit_form(client, "/auth/second-factor/set-up", button="Turn on",
                       fields={"code": pyotp.TOTP(secret).now()})
    assert done.status_code == 200 and f'href="{PAGE}"' in done.get_data(as_text=True)
    assert len(recovery_codes(done.get_data(as_text=True))) == 10
    html = page_text(client)
    assert status_sentence(html).startswith("On since") and codes_left(html) == 10
    assert "second_factor.enrol" in actions()
    # Set up already: the set-up page sends them back here instead.
    again = client.get("/auth/second-factor/set-up")
    assert again.status_code == 302 and again.location == PAGE
    assert db.session.get(SecondFactor, trainee.id).enrolled_at is not None


# ---- new recovery codes -------------------------------------------------------------------


def test_new_recovery_codes_need_a_code_and_the_old_ones_stop_working(client, make_user):
    with freeze_time(T0) as clock:
        trainer = sign_in_trainer(client, make_user, clock)
        missing = submit_form(client, PAGE, button="Make new recovery codes",
                              fields={"recovery_code": ""})
        assert missing.status_code == 400 and "Enter a code." in missing.get_data(as_text=True)
        wrong = submit_form(client, PAGE, button="Make new recovery codes",
                            fields={"recovery_code": "000000"})
        assert wrong.status_code == 401
        assert "That code is not right" in wrong.get_data(as_text=True)
        overlong = hand_built(client, f"{PAGE}/recovery-codes", {"recovery_code": "1" * 65})
        assert overlong.status_code == 400 and 'role="alert"' in overlong.get_data(as_text=True)
        assert db.session.scalar(select(func.count(RecoveryCode.id))) == 0

        first = submit_form(client, PAGE, button="Make new recovery codes",
                            fields={"recovery_code": TOTP.now()})
        assert first.status_code == 200
        old = recovery_codes(first.get_data(as_text=True))
        assert len(old) == 10 and "the old ones no longer work" in first.get_data(as_text=True)
        assert f'href="{PAGE}"' in first.get_data(as_text=True)
        # A recovery code confirms too (the phone may be gone): it is spent, then replaced.
        second = submit_form(client, PAGE, button="Make new recovery codes",
                             fields={"recovery_code": old[0]})
        assert second.status_code == 200
        new = recovery_codes(second.get_data(as_text=True))
        assert not set(new) & set(old)
        assert codes_left(page_text(client)) == 10
        sign_out(client)

        password_step(client, trainer.username)
        assert code_step(client, old[1]).status_code == 401  # the old ones no longer work
        assert code_step(client, new[0]).status_code == 302
    assert actions().count("second_factor.recovery_codes_regenerated") == 2


def test_the_page_counts_wrong_codes_like_the_sign_in(client, make_user):
    with freeze_time(T0) as clock:
        sign_in_trainer(client, make_user, clock)
        for _ in range(4):
            assert submit_form(client, PAGE, button="Make new recovery codes",
                               fields={"recovery_code": "000000"}).status_code == 401
        fifth = submit_form(client, PAGE, button="Make new recovery codes",
                            fields={"recovery_code": "000000"})
        assert fifth.status_code == 429
        assert "Too many wrong codes. Try again in 15 minutes" in fifth.get_data(as_text=True)
        # For a while even a right code is refused.
        assert submit_form(client, PAGE, button="Make new recovery codes",
                           fields={"recovery_code": TOTP.now()}).status_code == 429
        assert db.session.scalar(select(func.count(RecoveryCode.id))) == 0
        assert client.get(PAGE).status_code == 200  # still signed in
        clock.tick(15 * 60)
        assert submit_form(client, PAGE, button="Make new recovery codes",
                           fields={"recovery_code": TOTP.now()}).status_code == 200


def test_nothing_to_regenerate_without_a_second_factor(client, login_as):
    login_as(Role.TRAINEE_RADIOGRAPHER)
    assert "Make new recovery codes" not in page_text(client)
    refused = hand_built(client, f"{PAGE}/recovery-codes", {"recovery_code": "123456"})
    assert refused.status_code == 409
    assert "Two-step sign-in is not on" in refused.get_data(as_text=True)


# ---- turning it off -----------------------------------------------------------------------


def enrolled_trainee(client, make_user):
    """A trainee with a second factor (TOTP_SECRET), signed in through both steps."""
    trainee = make_user(Role.TRAINEE_RADIOLOGIST, second_factor=True)
    password_step(client, trainee.username)
    assert code_step(client, TOTP.now()).status_code == 302
    return trainee


def test_a_trainee_turns_it_off_with_the_password_and_a_code(client, make_user):
    with freeze_time(T0) as clock:
        trainee = enrolled_trainee(client, make_user)
        clock.tick(30)
        cases = {
            "missing password": ({"off_password": "", "off_code": TOTP.now()}, 400,
                                 "Enter your password."),
            "missing code": ({"off_password": PASSWORD, "off_code": ""}, 400, "Enter a code."),
            "wrong password": ({"off_password": "not-my-password", "off_code": TOTP.now()}, 401,
                               "That password is not right"),
            "wrong code": ({"off_password": PASSWORD, "off_code": "000000"}, 401,
                           "That code is not right"),
        }
        for name, (fields, status, reason) in cases.items():
            response = submit_form(client, PAGE, button="Turn off two-step sign-in",
                                   fields=fields)
            assert response.status_code == status, name
            assert reason in response.get_data(as_text=True), name
            assert db.session.get(SecondFactor, trainee.id) is not None, name
        # The wrong password did not spend the code typed with it.
        done = submit_form(client, PAGE, button="Turn off two-step sign-in",
                           fields={"off_password": PASSWORD, "off_code": TOTP.now()})
        assert done.status_code == 302 and done.location == PAGE
        assert status_sentence(page_text(client)).startswith("Off")
        assert db.session.get(SecondFactor, trainee.id) is None
        assert db.session.scalar(select(func.count(RecoveryCode.id))) == 0
        sign_out(client)
        signed_in = password_step(client, trainee.username)  # a password alone again
        assert signed_in.status_code == 302 and "second-factor" not in signed_in.location
    assert "second_factor.disabled" in actions()
    assert "second_factor.disable_refused" in actions()


def test_a_role_that_requires_it_cannot_turn_it_off(client, make_user):
    with freeze_time(T0) as clock:
        trainer = sign_in_trainer(client, make_user, clock)
        html = page_text(client)
        assert "Turn off two-step sign-in" not in html
        assert "cannot be turned off" in html
        refused = hand_built(client, f"{PAGE}/turn-off",
                             {"off_password": PASSWORD, "off_code": TOTP.now()})
        assert refused.status_code == 409
        assert "must sign in with a second factor" in refused.get_data(as_text=True)
        assert db.session.get(SecondFactor, trainer.id) is not None
        assert "second_factor.disabled" not in actions()


def test_without_the_requirement_a_trainer_may_turn_it_off(app, client, make_user):
    app.config["REQUIRE_2FA"] = False
    with freeze_time(T0) as clock:
        trainer = sign_in_trainer(client, make_user, clock)
        done = submit_form(client, PAGE, button="Turn off two-step sign-in",
                           fields={"off_password": PASSWORD, "off_code": TOTP.now()})
        assert done.status_code == 302
        assert db.session.get(SecondFactor, trainer.id) is None


# ---- replacing the authenticator ----------------------------------------------------------


def test_the_authenticator_moves_to_a_new_app(client, make_user):
    with freeze_time(T0) as clock:
        trainer = sign_in_trainer(client, make_user, clock)
        wrong = submit_form(client, PAGE, button="Replace authenticator",
                            fields={"replace_code": "000000"})
        assert wrong.status_code == 401 and "That code is not right" in wrong.get_data(
            as_text=True)
        start = submit_form(client, PAGE, button="Replace authenticator",
                            fields={"replace_code": TOTP.now()})
        assert start.status_code == 302 and start.location == f"{PAGE}/replace"
        page = client.get(f"{PAGE}/replace").get_data(as_text=True)
        new_secret = enrol_page_secret(page)
        assert new_secret != TOTP_SECRET
        new = pyotp.TOTP(new_secret)

        # Another signed-in browser of the same account is not shown the new key.
        other = client.application.test_client()
        clock.tick(30)
        password_step(other, trainer.username)
        assert code_step(other, TOTP.now()).status_code == 302  # the old app still works
        assert other.get(f"{PAGE}/replace").status_code == 302

        refused = submit_form(client, f"{PAGE}/replace", button="Use the new app",
                              fields={"new_code": TOTP.now()})  # the old app's code
        assert refused.status_code == 401
        assert "That code is not right" in refused.get_data(as_text=True)
        empty = submit_form(client, f"{PAGE}/replace", button="Use the new app",
                            fields={"new_code": ""})
        assert empty.status_code == 400
        done = submit_form(client, f"{PAGE}/replace", button="Use the new app",
                           fields={"new_code": new.now()})
        assert done.status_code == 302 and done.location == PAGE
        assert client.get(PAGE).status_code == 200  # this browser stays signed in
        assert other.get(PAGE).status_code == 302  # every other one is signed out
        sign_out(client)

        clock.tick(30)
        password_step(client, trainer.username)
        assert code_step(client, TOTP.now()).status_code == 401  # the old app: refused
        assert code_step(client, new.now()).status_code == 302
    assert "second_factor.replaced" in actions()
    factor = db.session.get(SecondFactor, trainer.id)
    assert factor.replacement_secret is None


def test_a_replacement_can_be_cancelled_and_expires(client, make_user):
    with freeze_time(T0) as clock:
        trainer = sign_in_trainer(client, make_user, clock)
        assert submit_form(client, PAGE, button="Replace authenticator",
                           fields={"replace_code": TOTP.now()}).status_code == 302
        cancelled = submit_form(client, f"{PAGE}/replace", button="Cancel")
        assert cancelled.status_code == 302
        assert db.session.get(SecondFactor, trainer.id).replacement_secret is None
        assert client.get(f"{PAGE}/replace").status_code == 302  # nothing waiting

        clock.tick(30)
        assert submit_form(client, PAGE, button="Replace authenticator",
                           fields={"replace_code": TOTP.now()}).status_code == 302
        new = pyotp.TOTP(enrol_page_secret(client.get(f"{PAGE}/replace").get_data(
            as_text=True)))
        clock.tick(timedelta(minutes=11).total_seconds())
        late = hand_built(client, f"{PAGE}/replace", {"new_code": new.now()})
        assert late.status_code == 409
        assert "Start the replacement again" in late.get_data(as_text=True)
        assert db.session.get(SecondFactor, trainer.id).encrypted_secret is not None
    assert "second_factor.replaced" not in actions()


def test_actions_on_a_second_factor_are_refused_without_one(client, login_as):
    """Without a second factor the page offers only the set-up; the rest is refused."""
    login_as(Role.TRAINEE_RADIOLOGIST)
    for path, data in ((f"{PAGE}/replace/start", {"replace_code": "123456"}),
                       (f"{PAGE}/turn-off", {"off_password": PASSWORD, "off_code": "123456"})):
        refused = hand_built(client, path, data)
        assert refused.status_code == 409, path
        assert "Two-step sign-in is not on" in refused.get_data(as_text=True)


def test_guessing_the_password_to_turn_it_off_is_rate_limited(client, make_user):
    enrolled_trainee(client, make_user)
    for n in range(10):
        response = submit_form(client, PAGE, button="Turn off two-step sign-in",
                               fields={"off_password": f"guess-{n}", "off_code": "123456"})
        assert response.status_code == 401, n
    limited = submit_form(client, PAGE, button="Turn off two-step sign-in",
                          fields={"off_password": PASSWORD, "off_code": "123456"})
    assert limited.status_code == 429
    assert "Too many wrong passwords" in limited.get_data(as_text=True)
    assert db.session.scalar(select(func.count(SecondFactor.user_id))) == 1


def test_the_audit_log_says_what_each_action_did(client, make_user):
    with freeze_time(T0) as clock:
        sign_in_trainer(client, make_user, clock, username="tess")
        codes = recovery_codes(submit_form(
            client, PAGE, button="Make new recovery codes",
            fields={"recovery_code": TOTP.now()}).get_data(as_text=True))
        assert submit_form(client, PAGE, button="Replace authenticator",
                           fields={"replace_code": codes[0]}).status_code == 302
        new = pyotp.TOTP(enrol_page_secret(client.get(f"{PAGE}/replace").get_data(
            as_text=True)))
        submit_form(client, f"{PAGE}/replace", button="Use the new app",
                    fields={"new_code": new.now()})
        make_user(Role.ADMIN, username="ada")
        admin = client.application.test_client()
        clock.tick(30)
        password_step(admin, "ada")
        assert code_step(admin, TOTP.now()).status_code == 302
        log = admin.get("/admin/audit").get_data(as_text=True)
    for sentence in ("Made new recovery codes; the old ones no longer work.",
                     "Used a recovery code to replace the authenticator (9 left).",
                     "Confirmed a code to move the second factor to a new authenticator app.",
                     "Moved the second factor to a new authenticator app"):
        assert sentence in log, sentence
