"""The API's pages in a real browser (Debian's Chromium through Playwright): a trainee
creates a token on the account page and sees it once (a reload neither shows it again nor
creates another); the API documentation runs the
vendored Swagger UI from the portal itself, under the portal's CSP, without console
errors."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from app.api.models import ApiToken
from app.auth.roles import Role
from app.extensions import db
from tests.conftest import sign_in

pytestmark = pytest.mark.browser


def _watch(page) -> tuple[list[str], list[str]]:
    """Console errors (CSP refusals included) and every URL the page asked for."""
    errors: list[str] = []
    requested: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda r: requested.append(r.url))
    return errors, requested


def test_a_token_is_created_in_the_browser_and_shown_once(app, portal_url, page, make_user):
    make_user(Role.TRAINEE_RADIOLOGIST, username="amina")
    errors, _ = _watch(page)
    sign_in(page, portal_url, "amina")
    page.goto(portal_url + "/account/api-tokens")
    page.get_by_label("Name").fill("LMS sync")
    page.get_by_label("Read and write").check()
    page.get_by_role("button", name="Create token").click()
    secret = page.locator("#new-token").inner_text()
    assert secret.startswith("cxr_")
    assert page.url == portal_url + "/account/api-tokens"  # the page after the redirect
    row = db.session.scalars(select(ApiToken)).one()
    assert row.scope == "write" and row.name == "LMS sync"
    # Reloading shows the token no more and creates none (no form sent again).
    page.reload()
    page.get_by_role("heading", name="Your API tokens").wait_for()
    assert page.locator("#new-token").count() == 0 and secret not in page.content()
    assert len(db.session.scalars(select(ApiToken)).all()) == 1
    page.go_back()  # nor does going back to the form's answer
    assert secret not in page.content()
    assert len(db.session.scalars(select(ApiToken)).all()) == 1
    page.goto(portal_url + "/account/api-tokens")
    assert page.locator("#new-token").count() == 0
    assert secret not in page.content()
    assert "LMS sync" in page.locator("table").inner_text()
    assert errors == []


def test_the_api_documentation_loads_its_vendored_assets(app, portal_url, page):
    errors, requested = _watch(page)
    page.goto(portal_url + "/api/v1/docs")
    # Swagger UI has read the document and lists the operations.
    page.get_by_text("/api/v1/attempts/{attempt_id}/answers/{position}").first.wait_for()
    assert page.locator(".swagger-ui .info .title").inner_text().startswith("CXR Academy API")
    origin = urlsplit(portal_url).netloc
    assert {urlsplit(u).netloc for u in requested if not u.startswith("data:")} == {origin}
    assert any(urlsplit(u).path.endswith("/static/vendor/swagger-ui/swagger-ui-bundle.js")
               for u in requested)
    assert any(u.endswith("/api/v1/openapi.json") for u in requested)
    assert errors == [], errors
