"""A locked account in a real browser (Debian's Chromium through Playwright): its owner reads
what to do and signs in with password and authenticator code typed together."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from app.auth.roles import Role
from tests.axe import axe_violations
from tests.conftest import PASSWORD, current_totp
from tests.test_sign_in_throttle import lock, variants

pytestmark = pytest.mark.browser


def test_the_owner_of_a_locked_account_signs_in_with_password_and_code(app, portal_url, page,
                                                                       make_user):
    user = make_user(Role.TRAINER, username="tessa")
    lock(app.test_client(), variants(user))  # ten guesses from ten addresses

    page.goto(portal_url + "/auth/login")
    page.get_by_label("User name or e-mail").fill("tessa")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    notice = page.get_by_test_id("sign-in-locked")
    assert "a password alone does not sign in" in notice.inner_text()
    assert urlsplit(page.url).path == "/auth/login"
    assert axe_violations(page) == []

    # The page keeps the user name; the owner types the password again and a code.
    assert page.get_by_label("User name or e-mail").input_value() == "tessa"
    page.get_by_label("Password").fill(PASSWORD)
    code = page.get_by_label("Code from your authenticator app, or a recovery code")
    assert code.get_attribute("autocomplete") == "one-time-code"
    code.fill("000000")  # a wrong code first: refused, with the reason beside the box
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert "The password or the code is not right." in page.get_by_role("alert").all_inner_texts()
    assert axe_violations(page) == []
    page.get_by_label("Password").fill(PASSWORD)
    code.fill(current_totp("tessa"))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert urlsplit(page.url).path == "/cases/"
    assert page.get_by_role("button", name="Sign out").is_visible()
