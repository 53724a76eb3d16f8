"""In a real browser: Debian's Chromium, driven by Playwright, against a live server."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server

from app.auth.roles import Role
from app.demo import seed_demo
from tests.realservers import CHROMIUM, missing

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture
def portal_url(app) -> Iterator[str]:
    """The app served over real HTTP on 127.0.0.1, in a background thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    import os

    if not os.path.exists(CHROMIUM):
        missing(f"Chromium not found at {CHROMIUM} (install Debian's 'chromium')")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("Playwright for Python is not installed")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


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
