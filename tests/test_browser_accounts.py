"""Account paths in a real browser (Debian's Chromium through Playwright): resetting a
forgotten password by e-mail, and an administrator reading the audit log."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from app.auth.roles import Role
from tests.conftest import PASSWORD, sign_in
from tests.test_mail import smtp_inbox  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser

NEW_PASSWORD = "chosen-in-the-browser-9"


@pytest.fixture
def inbox(request):
    """The real SMTP server of tests.test_mail, collecting what the portal sends."""
    return request.getfixturevalue("smtp_inbox")


def test_forgotten_password_is_reset_from_the_emailed_link(app, portal_url, page, browser,
                                                           make_user, inbox):
    user = make_user(Role.TRAINEE_RADIOLOGIST, username="amina", full_name="Dr Amina Forgets")
    # A session on another device, which the reset must end.
    laptop = browser.new_context()
    other = laptop.new_page()
    sign_in(other, portal_url, "amina")
    assert urlsplit(other.url).path == "/home"

    page.goto(portal_url + "/auth/login")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("User name or e-mail").fill("amina@example.org")
    page.get_by_role("button", name="Send reset link").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Check your e-mail"

    [message] = inbox.messages
    assert message["To"] == user.email
    body = message.get_payload(decode=True).decode()
    link = next(line for line in body.splitlines() if "/auth/password/reset/" in line).strip()
    assert link.startswith(portal_url)
    page.goto(link)
    assert page.get_by_test_id("reset-username").inner_text() == "amina"
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set password").click()
    page.wait_for_url(portal_url + "/auth/login")
    assert "signed out everywhere" in page.get_by_role("status").first.inner_text()

    # The old password no longer works, the new one does.
    sign_in(page, portal_url, "amina", PASSWORD)
    assert page.get_by_role("alert").first.inner_text() == "Wrong user name or password."
    sign_in(page, portal_url, "amina", NEW_PASSWORD)
    assert urlsplit(page.url).path == "/home"

    # The link is used up, and the other device was signed out.
    page.goto(link)
    assert "already been used" in page.get_by_test_id("reset-invalid").inner_text()
    other.goto(portal_url + "/training/")
    assert urlsplit(other.url).path == "/auth/login"
    laptop.close()


def _audit_rows(page) -> list[dict[str, str]]:
    headings = page.locator("table.audit thead th").all_inner_texts()
    found = []
    for row in page.locator("table.audit tbody tr").all():
        cells = row.locator("td").all_inner_texts()
        if len(cells) == len(headings):
            found.append(dict(zip(headings, cells, strict=True)))
    return found


def test_administrator_changes_roles_and_finds_it_in_the_audit_log(app, portal_url, page,
                                                                  make_user):
    make_user(Role.ADMIN, username="ada", full_name="Ada Admin")
    make_user(Role.TRAINEE_RADIOLOGIST, username="kofi", full_name="Dr Kofi Mensah")
    sign_in(page, portal_url, "ada")

    page.get_by_role("link", name="Administration").click()
    page.get_by_role("link", name="active users").click()
    page.get_by_role("link", name="Dr Kofi Mensah").click()
    page.get_by_label("Trainee radiologist").uncheck()
    page.get_by_label("Trainer", exact=True).check()
    page.get_by_role("button", name="Save").click()
    page.wait_for_load_state()

    page.get_by_role("link", name="Administration").click()
    page.get_by_role("link", name="Audit log").click()
    page.get_by_label("Who (user name or e-mail)").fill("ada")
    page.get_by_label("What").select_option(label="Roles changed")
    today = page.evaluate("new Date().toISOString().slice(0, 10)")
    page.get_by_label("From (UTC)").fill(today)
    page.get_by_label("To (UTC)").fill(today)
    page.get_by_role("button", name="Filter").click()
    page.wait_for_load_state()
    assert _audit_rows(page) and all(r["What"] == "Roles changed" for r in _audit_rows(page))
    [row] = _audit_rows(page)
    assert row["Who"] == "Ada Admin (ada)"
    assert row["Object"] == "User Dr Kofi Mensah (kofi)"
    assert row["Details"] == "Changed roles: trainee radiologist → trainer."

    # A range that ends before it starts is explained, and nothing is listed.
    page.get_by_label("From (UTC)").fill("2026-03-10")
    page.get_by_label("To (UTC)").fill("2026-03-01")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_load_state()
    assert "is after the end date" in page.get_by_role("alert").first.inner_text()
    assert _audit_rows(page) == []
    page.get_by_role("link", name="Clear filters").click()
    assert len(_audit_rows(page)) > 1
