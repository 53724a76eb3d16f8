"""Every page each demo role reaches, in the pseudo language (tests/i18n_pseudo.py: the
English accented and ~35 % longer, in ⟦ ⟧), at 1280x800:

- layout: no sideways scroll of the page, no control whose text is cut or runs out of its
  box, nothing past the window's edge (texts in French or Spanish are that much longer);
- English left: every visible text is a pseudo translation or allowed (the seeded world's
  data, proper names, numbers, dates, codes, the official form's English in lang="en"); the
  failure lists each English text with the element that shows it.

One test per page and check, so a failure names the page. The same seeded demo as
test_browser_roles.py (its seeding; the page list of tests/demo_pages.py, reached here by
the pseudo names).
Screenshots: ``<role>-<page>-pseudo-1280.png`` in CXR_ACADEMY_SCREENSHOTS (else a
temporary folder)."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from app import create_app
from tests.conftest import base_config, migrate_database
from tests.demo_pages import (
    ANY_CODE,
    PAGES,
    USERNAMES,
    Menu,
    Name,
    Step,
    Submit,
    Url,
    message_and_params,
)
from tests.i18n_pseudo import (
    PSEUDO_LANGUAGE,
    english_left,
    layout_problems,
    pseudo,
    pseudo_config,
    pseudo_language_offered,
    say,
    stored_texts,
    visible_texts,
    write_pseudo_catalogue,
)
from tests.test_browser_roles import DemoPortal, _seed, _settle

pytestmark = pytest.mark.browser

VIEWPORT = {"viewport": {"width": 1280, "height": 800}}


class PseudoPortal(DemoPortal):
    user_data: set[str]


@pytest.fixture(scope="module")
def pseudo_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PseudoPortal]:
    """The seeded demo served over HTTP with the pseudo language offered by the switcher."""
    translations = write_pseudo_catalogue(tmp_path_factory.mktemp("pseudo-translations"))
    offered = pseudo_language_offered()
    next(offered)
    instance = tmp_path_factory.mktemp("pseudo-instance")
    url = f"sqlite:///{tmp_path_factory.mktemp('pseudo-db') / 'demo.sqlite3'}"
    migrate_database(url, instance)
    app = create_app({**base_config(url, instance), **pseudo_config(translations)})
    passwords, ids = _seed(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        portal = PseudoPortal(f"http://127.0.0.1:{server.server_port}", passwords, ids,
                              totp_keys=ids.pop("totp_keys"))
        portal.user_data = stored_texts(app)
        yield portal
    finally:
        server.shutdown()
        thread.join(timeout=10)
        next(offered, None)


# ---- how each page is reached, by what the pseudo page says (tests/demo_pages.py) -------


def either(message: str, **params: Any) -> re.Pattern[str]:
    """A locator name: the pseudo text, or the English where a page is not translated yet
    (the walk reaches the page; its English is reported by the checks)."""
    english = message % params if params else message
    return re.compile(f"^({re.escape(say(message, **params))}|{re.escape(english)})$")


def named(name: Name) -> re.Pattern[str]:
    message, params = message_and_params(name)
    return either(message, **params)


def reach(step: Step, page: Any, portal: DemoPortal) -> None:
    """Take ``page`` to a page the way ``step`` says, by the names the pseudo page shows."""
    if isinstance(step, Url):
        page.goto(portal.url + step.template.format(**portal.ids))
    elif isinstance(step, Menu):
        page.goto(portal.url + "/")
        page.get_by_role("navigation", name=either("Main")).get_by_role(
            "link", name=named(step.names[0])).click()
        page.wait_for_load_state()
        for name in step.names[1:]:
            page.get_by_role("link", name=named(name)).first.click()
            page.wait_for_load_state()
    elif isinstance(step, Submit):
        page.goto(portal.url + step.path)
        form = page.locator("form", has=page.get_by_role("button", name=either(step.button)))
        form.get_by_label(either(ANY_CODE)).fill(
            portal.second_factor_code(USERNAMES[step.role]))
        form.get_by_role("button", name=either(step.button)).click()
        page.wait_for_load_state()
    else:
        username = USERNAMES[step.role]
        page.goto(portal.url + "/auth/login")
        page.get_by_label(either("User name or e-mail")).fill(username)
        page.get_by_label(either("Password")).fill(portal.passwords[username])
        page.get_by_role("button", name=either("Sign in")).click()
        page.wait_for_load_state()
        assert "/auth/second-factor" in page.url


CASES = [pytest.param(role, name, id=f"{role}-{name}")
         for role, pages in PAGES.items() for name in pages]


def switch_to_pseudo(page: Any) -> None:
    """The switcher's pseudo button, as a reader picks a language."""
    if page.evaluate("document.documentElement.lang") == PSEUDO_LANGUAGE:
        return  # the account's setting since an earlier switch
    page.get_by_test_id("language-switcher").get_by_role(
        "button", name=pseudo("Pseudo"), exact=True).click()
    page.wait_for_load_state()
    assert page.evaluate("document.documentElement.lang") == PSEUDO_LANGUAGE


# What of the top bar passes the window's edge, and menu entries or buttons whose name breaks
# over two lines (a reader scans a menu by its names; the pages' content is checked at 1280).
TOP_BAR_JS = """() => {
  const width = document.documentElement.clientWidth;
  const label = (el) => `${el.tagName.toLowerCase()} "${el.textContent.trim().slice(0, 50)}"`;
  const out = [];
  for (const el of document.querySelectorAll('header.topbar *')) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && (r.right > width + 1 || r.left < -1))
      out.push(`past the window's edge: ${label(el)}`);
  }
  for (const el of document.querySelectorAll('header.topbar a, header.topbar button')) {
    const range = document.createRange();
    range.selectNodeContents(el);
    const lines = new Set([...range.getClientRects()].filter(q => q.width > 0)
                          .map(q => Math.round(q.top)));
    if (lines.size > 1) out.push(`name broken over ${lines.size} lines: ${label(el)}`);
  }
  return out;
}"""


def open_as(browser: Any, portal: PseudoPortal, role: str, **options: Any) -> Any:
    """A browser context of ``role``, signed in (in English, the demo accounts' language)
    and switched to the pseudo language with the switcher."""
    context = browser.new_context(**options)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(portal.url + "/auth/login")
    if role != "anonymous":
        username = USERNAMES[role]
        page.get_by_label("User name or e-mail").fill(username)
        page.get_by_label("Password").fill(portal.passwords[username])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()
        if "/auth/second-factor" in page.url:
            page.get_by_label("Code").fill(portal.second_factor_code(username))
            page.get_by_role("button", name="Verify").click()
            page.wait_for_load_state()
        assert "/auth/" not in page.url, f"{role} could not sign in"
    switch_to_pseudo(page)
    return context


@pytest.fixture(scope="module")
def pseudo_page(browser: Any, pseudo_portal: PseudoPortal) -> Iterator[Callable[[str], Any]]:
    """A page of ``role``'s browser, signed in (in English, the demo accounts' language)
    then switched to the pseudo language with the switcher; kept for the role's pages."""
    contexts: dict[str, Any] = {}

    def get(role: str) -> Any:
        if role not in contexts:
            contexts[role] = open_as(browser, pseudo_portal, role, **VIEWPORT)
        return contexts[role].pages[0]

    yield get
    for context in contexts.values():
        context.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("CXR_ACADEMY_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# What each page showed, read once for both checks.
_SEEN: dict[tuple[str, str], tuple[list[dict[str, str]], list[str]]] = {}


def _visit(pseudo_page: Callable[[str], Any], portal: PseudoPortal, screenshots: Path,
           role: str, name: str) -> tuple[list[dict[str, str]], list[str]]:
    if (role, name) not in _SEEN:
        page = pseudo_page(role)
        reach(PAGES[role][name], page, portal)
        _settle(page)
        assert "/auth/login" not in page.url or role == "anonymous", f"signed out at {page.url}"
        assert page.locator(".error-page").count() == 0, (
            f"{page.url}: {page.locator('.error-page').inner_text()}")
        assert page.evaluate("document.documentElement.lang") == PSEUDO_LANGUAGE
        page.screenshot(path=str(screenshots / f"{role}-{name}-pseudo-1280.png"),
                        full_page=True)
        _SEEN[(role, name)] = (visible_texts(page), layout_problems(page))
    return _SEEN[(role, name)]


@pytest.mark.parametrize(("role", "name"), CASES)
def test_no_overflow_or_clipped_control(pseudo_page: Callable[[str], Any],
                                        pseudo_portal: PseudoPortal, screenshots: Path,
                                        role: str, name: str) -> None:
    _texts, problems = _visit(pseudo_page, pseudo_portal, screenshots, role, name)
    assert not problems, f"{role} / {name} at 1280x800 in longer texts:\n" + "\n".join(problems)


@pytest.mark.parametrize(("role", "name"), CASES)
def test_no_english_left(pseudo_page: Callable[[str], Any], pseudo_portal: PseudoPortal,
                         screenshots: Path, role: str, name: str) -> None:
    texts, _problems = _visit(pseudo_page, pseudo_portal, screenshots, role, name)
    left = english_left(texts, pseudo_portal.user_data)
    assert not left, f"{role} / {name}: English not from the catalogue:\n" + "\n".join(left)


@pytest.mark.parametrize("width", [1024, 800])
@pytest.mark.parametrize("role", list(PAGES))
def test_top_bar_holds_longer_texts_in_narrower_windows(
        browser: Any, pseudo_portal: PseudoPortal, screenshots: Path, role: str,
        width: int) -> None:
    """The shared top bar (menu, account links, language switcher) of every role on the
    1024x768 tablet test_browser_roles.py also checks, and in a 1280-px window zoomed to
    160 % (800 CSS px): longer texts wrap onto more lines, nothing runs past the edge."""
    context = open_as(browser, pseudo_portal, role, has_touch=width == 1024,
                      viewport={"width": width, "height": 768})
    try:
        page = context.pages[0]
        page.goto(pseudo_portal.url + "/")
        page.screenshot(path=str(screenshots / f"{role}-home-pseudo-{width}.png"))
        problems = [p for p in page.evaluate(TOP_BAR_JS)]
        assert not problems, f"{role}: the top bar at {width} px:\n" + "\n".join(problems)
    finally:
        context.close()
