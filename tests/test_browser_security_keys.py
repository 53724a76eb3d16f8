"""Security keys in a real browser: Debian's Chromium with its virtual authenticator (the
DevTools protocol's WebAuthn domain) stands in for a USB key. A trainer adds the key on the
account page, signs out, and signs in with it.

WebAuthn needs a secure context and a relying-party id that is a domain name: the portal
is served on 127.0.0.1 but addressed, publicly and by the browser, as http://localhost."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.roles import Role
from app.auth.security_key_models import SecurityKey
from app.extensions import db
from tests.axe import axe_violations, describe
from tests.conftest import PASSWORD, serve_portal, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def localhost_portal_url(app) -> Iterator[str]:
    """As conftest's ``portal_url``, but public as http://localhost:PORT (a bare IP address is
    no valid WebAuthn relying party)."""
    yield from serve_portal(app, "localhost")


@pytest.fixture
def virtual_key(page):
    """A USB security key plugged into the page's browser, touched whenever asked."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2",
        "transport": "usb",
        "hasResidentKey": False,
        "hasUserVerification": True,
        "isUserVerified": True,
        "automaticPresenceSimulation": True,
    }})

    def credentials() -> list[dict]:
        return cdp.send("WebAuthn.getCredentials",
                        {"authenticatorId": added["authenticatorId"]})["credentials"]

    return credentials


def test_add_a_key_sign_out_and_sign_in_with_it(app, localhost_portal_url, page, make_user,
                                                virtual_key):
    base = localhost_portal_url
    trainer = make_user(Role.TRAINER, username="tess")
    sign_in(page, base, "tess")  # password and authenticator code
    assert urlsplit(page.url).path != "/auth/second-factor"

    page.goto(base + "/account/security-keys")
    assert page.get_by_test_id("no-security-keys").is_visible()
    page.get_by_label("Name of the new key").fill("Blue key")
    page.get_by_role("button", name="Add security key").click()
    page.get_by_role("status").filter(has_text="Blue key").wait_for()
    assert page.get_by_test_id("security-key").inner_text().startswith("Blue key")
    violations = axe_violations(page)
    assert not violations, describe(violations)
    [credential] = virtual_key()
    db.session.expire_all()
    stored = db.session.scalars(select(SecurityKey)).one()
    assert stored.user_id == trainer.id
    # The browser's base64 credential id and the portal's base64url one name the same bytes.
    assert stored.credential_id == credential["credentialId"].replace("+", "-").replace(
        "/", "_").rstrip("=")
    assert stored.transports == "usb"
    db.session.commit()

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()
    page.goto(base + "/auth/login?next=/cases/")
    page.get_by_label("User name or e-mail").fill("tess")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", level=1).inner_text() == "Second step"
    violations = axe_violations(page)
    assert not violations, describe(violations)
    page.get_by_role("button", name="Use your security key").click()
    page.wait_for_url(base + "/cases/")
    assert page.get_by_test_id("current-user").inner_text() == trainer.full_name

    db.session.expire_all()
    stored = db.session.scalars(select(SecurityKey)).one()
    assert stored.last_used_at is not None
    assert stored.sign_count == virtual_key()[0]["signCount"] > 0
    login = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "login")
                               .order_by(AuditEvent.id.desc())).first()
    assert login.detail == {"second_factor": "security key"}
    db.session.commit()


def test_the_same_key_twice_is_refused_on_the_page_with_a_reason(
        app, localhost_portal_url, page, make_user, virtual_key):
    """The options exclude the keys already registered: the browser refuses to make a second
    credential on the same key, and the page says why without posting anything."""
    base = localhost_portal_url
    make_user(Role.TRAINER, username="tess")
    sign_in(page, base, "tess")
    page.goto(base + "/account/security-keys")
    page.get_by_label("Name of the new key").fill("Blue key")
    page.get_by_role("button", name="Add security key").click()
    page.get_by_role("status").filter(has_text="Blue key").wait_for()

    page.get_by_label("Name of the new key").fill("Blue key again")
    page.get_by_role("button", name="Add security key").click()
    alert = page.locator("[data-security-key-status]")
    alert.wait_for(state="visible")
    assert "already registered" in alert.inner_text()
    violations = axe_violations(page)
    assert not violations, describe(violations)
    assert page.get_by_role("button", name="Add security key").is_enabled()  # may try again
    assert len(virtual_key()) == 1
    db.session.expire_all()
    assert db.session.scalars(select(SecurityKey.name)).all() == ["Blue key"]
    db.session.commit()


def test_without_a_name_the_key_is_not_asked(app, localhost_portal_url, page, make_user,
                                             virtual_key):
    base = localhost_portal_url
    make_user(Role.TRAINER, username="tess")
    sign_in(page, base, "tess")
    page.goto(base + "/account/security-keys")
    page.get_by_role("button", name="Add security key").click()
    assert page.get_by_label("Name of the new key").evaluate("input => !input.validity.valid")
    assert virtual_key() == []
    assert urlsplit(page.url).path == "/account/security-keys"
