"""The second factor in a real browser (Debian's Chromium through Playwright): an
administrator sets it up at the first sign-in by typing the key shown beside the QR code,
then signs in with a code and with a recovery code."""

from __future__ import annotations

from urllib.parse import urlsplit

import pyotp
import pytest

from app.auth.roles import Role
from app.auth.second_factor_models import SecondFactor
from app.extensions import db
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def password_step(page, base: str, username: str) -> None:
    page.goto(base + "/auth/login")
    page.get_by_label("User name or e-mail").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def sign_out(page) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()


def test_enrol_then_sign_in_with_a_code_and_with_a_recovery_code(app, portal_url, page,
                                                                 make_user):
    admin = make_user(Role.ADMIN, username="ada", second_factor=False)

    password_step(page, portal_url, "ada")
    assert urlsplit(page.url).path == "/auth/second-factor"
    assert page.get_by_role("heading", level=1).inner_text() == "Set up your second factor"
    qr = page.get_by_role("img", name="QR code for your authenticator app")
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0")  # drawn under the CSP
    secret = page.get_by_test_id("enrol-secret").inner_text().strip()
    totp = pyotp.TOTP(secret)
    page.get_by_label("Code from your authenticator app").fill(totp.now())
    page.get_by_role("button", name="Turn on").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Your recovery codes"
    codes = [c.strip() for c in page.get_by_test_id("recovery-codes").locator("code")
             .all_inner_texts()]
    assert len(codes) == 10
    page.get_by_role("link", name="I have saved them: continue").click()
    page.wait_for_load_state()
    assert urlsplit(page.url).path == "/admin/"
    sign_out(page)

    # With a code. The enrolment used this time step's code: the next one is awaited.
    db.session.expire_all()
    factor = db.session.get(SecondFactor, admin.id)
    step = factor.last_time_step
    db.session.commit()
    password_step(page, portal_url, "ada")
    assert page.get_by_role("heading", level=1).inner_text() == "Second step"
    page.get_by_label("Code").fill(totp.generate_otp(step + 1))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_load_state()
    assert urlsplit(page.url).path == "/admin/"
    sign_out(page)

    # With a recovery code, typed as shown.
    password_step(page, portal_url, "ada")
    page.get_by_label("Code").fill(codes[0])
    page.get_by_role("button", name="Verify").click()
    page.wait_for_load_state()
    assert urlsplit(page.url).path == "/admin/"
    sign_out(page)

    # The same recovery code again: refused with the reason, still not signed in.
    password_step(page, portal_url, "ada")
    page.get_by_label("Code").fill(codes[0])
    page.get_by_role("button", name="Verify").click()
    page.wait_for_load_state()
    assert "That code is not right" in page.get_by_role("alert").inner_text()
    assert urlsplit(page.url).path == "/auth/second-factor"


def test_a_trainee_turns_it_on_from_the_account_menu_and_off_again(app, portal_url, page,
                                                                   make_user):
    """A trainee finds "Account security" in the account menu, sets up an authenticator,
    signs in with a code, makes new recovery codes and turns two-step sign-in off."""
    trainee = make_user(Role.TRAINEE_RADIOLOGIST, username="tom")
    password_step(page, portal_url, "tom")
    page.get_by_role("link", name="Account security").click()
    page.wait_for_load_state()
    assert urlsplit(page.url).path == "/account/security"
    assert page.get_by_test_id("second-factor-status").inner_text().startswith("Off")
    page.get_by_role("link", name="Set up two-step sign-in").click()
    page.wait_for_load_state()
    totp = pyotp.TOTP(page.get_by_test_id("enrol-secret").inner_text().strip())
    page.get_by_label("Code from your authenticator app").fill(totp.now())
    page.get_by_role("button", name="Turn on").click()
    page.wait_for_load_state()
    first_codes = page.get_by_test_id("recovery-codes").locator("code").all_inner_texts()
    assert len(first_codes) == 10
    page.get_by_role("link", name="I have saved them: continue").click()
    page.wait_for_load_state()
    assert page.get_by_test_id("second-factor-status").inner_text().startswith("On since")
    sign_out(page)

    # Signing in now takes a code: the enrolment spent this time step's, the next is taken.
    db.session.expire_all()
    step = db.session.get(SecondFactor, trainee.id).last_time_step
    db.session.commit()
    password_step(page, portal_url, "tom")
    assert page.get_by_role("heading", level=1).inner_text() == "Second step"
    page.get_by_label("Code").fill(totp.generate_otp(step + 1))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_load_state()
    assert "/auth/" not in page.url

    # New recovery codes, confirmed with an old one (the authenticator's next code is not due
    # yet); the old ones stop working.
    page.get_by_role("link", name="Account security").click()
    page.wait_for_load_state()
    regenerate = page.locator("form", has=page.get_by_role(
        "button", name="Make new recovery codes"))
    regenerate.get_by_role("textbox").fill("not a code")
    regenerate.get_by_role("button").click()
    page.wait_for_load_state()
    assert "That code is not right" in page.get_by_role("alert").inner_text()
    regenerate = page.locator("form", has=page.get_by_role(
        "button", name="Make new recovery codes"))
    regenerate.get_by_role("textbox").fill(first_codes[0])
    regenerate.get_by_role("button").click()
    page.wait_for_load_state()
    new_codes = page.get_by_test_id("recovery-codes").locator("code").all_inner_texts()
    assert len(new_codes) == 10 and not set(new_codes) & set(first_codes)
    page.get_by_role("link", name="I have saved them: continue").click()
    page.wait_for_load_state()
    assert "Recovery codes left: 10" in page.get_by_test_id("recovery-codes-left").inner_text()

    # Off: the password and a code (an old recovery code is refused, a new one works).
    turn_off = page.locator("form", has=page.get_by_role(
        "button", name="Turn off two-step sign-in"))
    turn_off.get_by_label("Your password").fill(PASSWORD)
    turn_off.get_by_label("one of your recovery codes").fill(first_codes[1])
    turn_off.get_by_role("button").click()
    page.wait_for_load_state()
    assert "That code is not right" in page.get_by_role("alert").inner_text()
    turn_off = page.locator("form", has=page.get_by_role(
        "button", name="Turn off two-step sign-in"))
    turn_off.get_by_label("Your password").fill(PASSWORD)
    turn_off.get_by_label("one of your recovery codes").fill(new_codes[0])
    turn_off.get_by_role("button").click()
    page.wait_for_load_state()
    assert page.get_by_test_id("second-factor-status").inner_text().startswith("Off")
    sign_out(page)
    password_step(page, portal_url, "tom")  # a password alone again
    assert "/auth/" not in page.url
