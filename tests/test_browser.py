"""In a real browser: Debian's Chromium, driven by Playwright, against a live server."""

from __future__ import annotations

import pytest

from app.auth.roles import Role
from app.demo import seed_demo

pytestmark = pytest.mark.browser

def test_demo_trainee_signs_in_through_the_real_form(app, portal_url, page):
    accounts = {a.role: a for a in seed_demo()}
    trainee = accounts[Role.TRAINEE_RADIOLOGIST]
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    page.goto(portal_url + "/")
    page.get_by_role("link", name="Sign in").first.click()
    page.get_by_label("User name or e-mail").fill(trainee.username)
    page.get_by_label("Password").fill(trainee.password)
    page.get_by_role("button", name="Sign in").click()

    page.wait_for_url(portal_url + "/home")
    assert page.get_by_role("heading", level=1).inner_text() == "Welcome, Dr Amina Otieno"
    page.get_by_role("link", name="Training", exact=True).click()
    page.wait_for_url(portal_url + "/training/")
    assert page.get_by_role("heading", level=1).inner_text() == "My reading exercises"
    assert page.get_by_test_id("current-user").inner_text() == "Dr Amina Otieno"
    assert "Nairobi Panel Clinic" in page.content()
    # The stylesheet loaded under the CSP (no violations reported by the browser).
    assert page.evaluate("getComputedStyle(document.querySelector('.topbar')).display") == "flex"

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(portal_url + "/auth/login")
    page.goto(portal_url + "/training/")
    assert "/auth/login" in page.url
    assert problems == []


def test_wrong_password_in_the_browser_shows_the_generic_message(app, portal_url, page):
    seed_demo()
    page.goto(portal_url + "/auth/login")
    page.get_by_label("User name or e-mail").fill("demo-radiologist")
    page.get_by_label("Password").fill("definitely-wrong")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").first.inner_text() == "Wrong user name or password."
