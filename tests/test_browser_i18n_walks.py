"""The issue's two walks in a real browser, with a screenshot at each step:

(a) a trainee picks French with the switcher on the sign-in page, signs in, starts the demo
    practice set from the training page, answers cases in the viewer, submits and reads the
    result;
(b) a programme lead picks Spanish the same way and reads the dashboard: the certification
    dashboard, the programme's page with its clinic figure and readers list.

On every page no English UI text is left: no visible text is an English message of the
catalogue whose translation differs (shown verbatim, placeholders filled), and none reads as
English by its words (words of the English messages that the language's translations never
use; tests/i18n_pseudo.py). Proper names, the seeded world's data and the official form's
English (lang="en") are allowed. Each step is its own check, so a failure names the page.

Screenshots: ``walk-<language>-<step>.png`` in CXR_ACADEMY_SCREENSHOTS, else a temporary
folder."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from app import create_app
from app.demo import DEMO_PRACTICE, DEMO_PROGRAMME, seed_demo, seed_demo_library
from app.demo_peers import seed_demo_peers
from app.extensions import db
from app.quizzes.models import Exercise
from tests.conftest import base_config, migrate_database
from tests.i18n_pseudo import (
    english_shown,
    stored_texts,
    translations_of,
    visible_texts,
)
from tests.test_browser_roles import DemoPortal

pytestmark = pytest.mark.browser

VIEWPORT = {"viewport": {"width": 1280, "height": 800}}
LANGUAGE_NAMES = {"fr": "Français", "es": "Español"}
CASES_TO_ANSWER = 3


@pytest.fixture(scope="module")
def walk_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoPortal]:
    """The demo world (accounts, library, peers for the dashboards) served over HTTP."""
    instance = tmp_path_factory.mktemp("walk-instance")
    url = f"sqlite:///{tmp_path_factory.mktemp('walk-db') / 'demo.sqlite3'}"
    migrate_database(url, instance)
    app = create_app(base_config(url, instance))
    with app.app_context():
        accounts = seed_demo()
        seed_demo_library()
        seed_demo_peers()
        practice = db.session.scalar(select(Exercise.id).where(Exercise.title == DEMO_PRACTICE))
        ids: dict[str, Any] = {"practice": practice}
        db.session.remove()
    user_data = stored_texts(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        portal = DemoPortal(f"http://127.0.0.1:{server.server_port}",
                            {a.username: a.password for a in accounts if a.password}, ids,
                            totp_keys={a.username: a.totp_secret for a in accounts
                                       if a.totp_secret})
        portal.ids["user_data"] = user_data
        yield portal
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("CXR_ACADEMY_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Walk:
    """One reader's browser in ``language``: each step is screenshot and read for English."""

    def __init__(self, page: Any, portal: DemoPortal, language: str, folder: Path) -> None:
        self.page, self.portal, self.language, self.folder = page, portal, language, folder
        self.t = translations_of(language)
        self.english: dict[str, list[str]] = {}

    def _(self, message: str, **params: Any) -> str:
        text = self.t.gettext(message)
        return text % params if params else text

    def either(self, message: str) -> re.Pattern[str]:
        """A locator name: the translation, or the English where the page is not translated
        yet (the walk goes on; the step's check reports the English)."""
        return re.compile(f"^\\s*({re.escape(self._(message))}|{re.escape(message)})\\s*$")

    def step(self, name: str) -> None:
        self.page.wait_for_load_state("load")
        assert self.page.locator(".error-page").count() == 0, self.page.url
        assert self.page.evaluate("document.documentElement.lang") == self.language
        self.page.screenshot(path=str(self.folder / f"walk-{self.language}-{name}.png"),
                             full_page=True)
        self.english[name] = english_shown(visible_texts(self.page), self.language,
                                           self.portal.ids["user_data"])

    def sign_in(self, username: str) -> None:
        """Picks the language with the sign-in page's switcher, then signs in."""
        page = self.page
        page.goto(self.portal.url + "/auth/login")
        page.get_by_test_id("language-switcher").get_by_role(
            "button", name=LANGUAGE_NAMES[self.language], exact=True).click()
        page.wait_for_load_state()
        self.step("sign-in")
        page.get_by_label(self.either("User name or e-mail")).fill(username)
        page.get_by_label(self.either("Password")).fill(self.portal.passwords[username])
        page.get_by_role("button", name=self.either("Sign in")).click()
        page.wait_for_load_state()
        if "/auth/second-factor" in page.url:
            self.step("second-factor")
            page.get_by_label(self.either("Code")).fill(
                self.portal.second_factor_code(username))
            page.get_by_role("button", name=self.either("Verify")).click()
            page.wait_for_load_state()
        assert "/auth/" not in page.url, f"{username} could not sign in: {page.url}"

    def menu(self, name: str) -> None:
        self.page.get_by_role("navigation", name=self.either("Main")).get_by_role(
            "link", name=self.either(name)).click()
        self.page.wait_for_load_state()


LOADED = "() => window.cxrViewer && window.cxrViewer.state().panes.every(p => p.fullLoaded)"
SAVED = ("() => { const s = document.querySelector('.save-state');"
         " return s && s.className.trim() === 'save-state' && s.textContent.trim() !== ''; }")


def _take_practice_set(walk: Walk) -> None:
    page = walk.page
    walk.sign_in("demo-radiologist")
    walk.step("home")
    walk.menu("Training")
    walk.step("training")
    page.locator("tr", has_text=DEMO_PRACTICE).get_by_role(
        "button", name=walk.either("Start")).click()
    for position in range(1, CASES_TO_ANSWER + 1):
        page.wait_for_url(f"**/{position}")
        page.wait_for_function(LOADED, timeout=60_000)
        # Answers by their keys: the labels are the scheme's, in the reader's language.
        page.locator('input[name="overall"][value="normal"]').check()
        page.wait_for_function(SAVED)
        walk.step(f"case-{position}")
        if position < CASES_TO_ANSWER:
            page.get_by_test_id("next").click()
    page.get_by_test_id("submit").click()
    page.wait_for_url("**/summary")
    walk.step("summary")
    page.get_by_role("button", name=walk.either("Submit and finish")).click()
    page.wait_for_url("**/result")
    walk.step("result")


def _read_lead_dashboard(walk: Walk) -> None:
    page = walk.page
    walk.sign_in("demo-lead")
    walk.step("home")
    walk.menu("Certification")
    walk.step("dashboard")
    page.get_by_role("link", name=DEMO_PROGRAMME, exact=True).first.click()
    page.wait_for_load_state()
    figure = page.get_by_test_id("scores-figure")
    figure.scroll_into_view_if_needed()
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0",
                           arg=figure.element_handle())
    assert page.get_by_test_id("readers-table").locator("tbody tr").count() > 0
    walk.step("programme")


WALKS = {"fr": _take_practice_set, "es": _read_lead_dashboard}
STEPS = {"fr": ["sign-in", "home", "training",
                *(f"case-{n}" for n in range(1, CASES_TO_ANSWER + 1)), "summary", "result"],
         "es": ["sign-in", "second-factor", "home", "dashboard", "programme"]}


@pytest.fixture(scope="module")
def walked(browser: Any, walk_portal: DemoPortal,
           screenshots: Path) -> Callable[[str], Walk]:
    """Each walk once (the first test that needs it): its steps' English is checked one
    step per test; a walk that breaks fails its own tests only."""
    done: dict[str, Walk | Exception] = {}

    def get(language: str) -> Walk:
        if language not in done:
            context = browser.new_context(**VIEWPORT)
            page = context.new_page()
            page.set_default_timeout(30_000)
            walk = Walk(page, walk_portal, language, screenshots)
            try:
                WALKS[language](walk)
                done[language] = walk
            except Exception as error:  # kept: the walk's other tests report it too
                done[language] = error
            finally:
                context.close()
        result = done[language]
        if isinstance(result, Exception):
            raise result
        return result

    return get


def test_trainee_takes_a_practice_set_in_french(walked: Callable[[str], Walk]) -> None:
    assert list(walked("fr").english) == STEPS["fr"]


def test_lead_reads_the_dashboard_in_spanish(walked: Callable[[str], Walk]) -> None:
    assert list(walked("es").english) == STEPS["es"]


@pytest.mark.parametrize(("language", "step"),
                         [(lang, step) for lang, steps in STEPS.items() for step in steps])
def test_no_english_left(walked: Callable[[str], Walk], language: str, step: str) -> None:
    left = walked(language).english[step]
    assert not left, f"{language} / {step}: English left:\n" + "\n".join(left)
