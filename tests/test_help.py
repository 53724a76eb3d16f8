"""Help pages: a guide per role and the glossary, open to everyone; every glossary link
the ``term`` macro makes points at a definition that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from flask import Flask, render_template_string
from flask.testing import FlaskClient

from app.auth.roles import Role
from app.help.glossary import TERMS, UnknownGlossaryTerm
from app.help.routes import GUIDES
from app.quizzes.wording import METRIC_TERMS
from tests.test_attempts import _take, cases, practice  # noqa: F401 (fixtures)

TEMPLATES = Path(__file__).parent.parent / "app" / "templates"
TERM_CALL = re.compile(r"""\bterm\(\s*['"]([^'"]+)['"]""")
HELP_PAGES = ["/help/", "/help/glossary", *(f"/help/{key}" for key in GUIDES)]


def _soup(client: FlaskClient, path: str) -> BeautifulSoup:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return BeautifulSoup(response.get_data(as_text=True), "html.parser")


def _glossary_anchors(client: FlaskClient) -> set[str]:
    soup = _soup(client, "/help/glossary")
    return {str(tag["id"]) for tag in soup.select(".glossary dt[id]")}


@pytest.mark.parametrize("path", HELP_PAGES)
def test_help_pages_render_for_anonymous_visitors(client: FlaskClient, path: str) -> None:
    soup = _soup(client, path)
    assert soup.h1 is not None and soup.h1.get_text(strip=True)
    assert soup.find("nav", attrs={"aria-label": "Main"}).find("a", string="Help")


@pytest.mark.parametrize("role", list(Role))
def test_help_pages_render_for_each_role_with_help_in_the_menu(
        client: FlaskClient, login_as, role: Role) -> None:
    login_as(role)
    menu = _soup(client, "/help/").find("nav", attrs={"aria-label": "Main"})
    assert menu.find("a", string="Help")["href"] == "/help/"
    for path in HELP_PAGES:
        _soup(client, path)


def test_an_unknown_guide_is_not_found(client: FlaskClient) -> None:
    assert client.get("/help/nobody").status_code == 404


def test_every_glossary_term_has_its_anchor_and_every_anchor_a_term(
        client: FlaskClient) -> None:
    assert _glossary_anchors(client) == set(TERMS)


def test_every_term_the_templates_link_is_in_the_glossary() -> None:
    used = {key for path in TEMPLATES.rglob("*.html")
            for key in TERM_CALL.findall(path.read_text(encoding="utf-8"))}
    used.discard("key")  # the macro's own parameter, in its comment
    assert used, "no template links a glossary term"
    assert used <= set(TERMS), f"unknown glossary terms: {sorted(used - set(TERMS))}"


def test_every_glossary_link_on_the_help_pages_lands_on_a_definition(
        client: FlaskClient) -> None:
    anchors = _glossary_anchors(client)
    for path in HELP_PAGES:
        for link in _soup(client, path).find_all("a", href=True):
            href = str(link["href"])
            on_glossary = href.startswith("#") and path == "/help/glossary"
            if on_glossary or href.startswith("/help/glossary#"):
                assert href.split("#", 1)[1] in anchors, (path, href)


def test_the_term_macro_links_to_the_definition_and_refuses_unknown_keys(app: Flask) -> None:
    source = '{% from "help/_term.html" import term %}{{ term(key, "the text") }}'
    with app.test_request_context():
        html = render_template_string(source, key="kappa")
        assert html == '<a class="term" href="/help/glossary#kappa">the text</a>'
        with pytest.raises(UnknownGlossaryTerm):
            render_template_string(source, key="no-such-term")


def test_every_result_metric_links_to_a_glossary_term() -> None:
    assert set(METRIC_TERMS.values()) <= set(TERMS)


def test_result_and_review_pages_link_their_measures_to_the_glossary(
        client, practice, login_as) -> None:  # noqa: F811
    login_as(Role.TRAINEE_RADIOLOGIST)
    page = _take(client, practice, {"overall": "abnormal", "findings": ["cavitary_lesion"]})
    assert 'href="/help/glossary#sensitivity"' in page
    assert 'href="/help/glossary#kappa"' in page
    review_url = re.search(r'href="([^"]+/review/1)"', page).group(1)
    review = client.get(review_url).get_data(as_text=True)
    assert 'href="/help/glossary#discrepancy-grade"' in review
