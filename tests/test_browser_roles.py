"""Each demo role's pages, as that role reaches them, pass axe-core's WCAG 2.0/2.1 A and AA
rules at a desktop window (1280x800) and on a touch tablet (1024x768).

The demo is seeded once for the module (its own SQLite database and one portal server), with
what the pages need to show something: a submitted and an open practice attempt per trainee,
a certificate, a case waiting for its pixel review. Each role signs in through the sign-in
form once per viewport; pages are reached by the menu links where the menu has them, by URL
where the page is deep.

Set CXR_ACADEMY_SCREENSHOTS to a folder to keep a full-page screenshot of every page visited,
named ``<role>-<page>-<viewport>.png``."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyotp
import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.serving import make_server

from app import create_app
from app.auth.models import User
from app.cases.models import Case
from app.certification.models import Programme
from app.certification.services import grant_exception
from app.demo import (
    DEMO_EXAM,
    DEMO_PRACTICE,
    DEMO_PROGRAMME,
    DEMO_QUALITY_PRACTICE,
    seed_demo,
    seed_demo_library,
)
from app.demo_peers import seed_demo_peers
from app.extensions import db
from app.qc.demo_records import seed_demo_qc
from app.quizzes.answers import save_answer
from app.quizzes.exercises import create_exercise
from app.quizzes.models import Exercise
from app.quizzes.services import start_attempt, submit_attempt
from tests.axe import assert_no_axe_violations
from tests.conftest import base_config, migrate_database
from tests.demo_pages import ANY_CODE, PAGES, USERNAMES, Menu, Step, Submit, Url, english

pytestmark = pytest.mark.browser

VIEWPORTS: dict[str, dict[str, Any]] = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "tablet": {"viewport": {"width": 1024, "height": 768}, "has_touch": True,
               "is_mobile": False},
}



@dataclass
class DemoPortal:
    url: str
    passwords: dict[str, str]
    ids: dict[str, Any] = field(default_factory=dict)
    # Authenticator keys of the accounts with a second factor, and the newest time step
    # each has used (a code is accepted once: two viewports signing in need two steps).
    totp_keys: dict[str, str] = field(default_factory=dict)
    used_steps: dict[str, int] = field(default_factory=dict)

    def second_factor_code(self, username: str) -> str:
        totp = pyotp.TOTP(self.totp_keys[username])
        now_step = int(time.time()) // totp.interval
        # The current step first (it stays accepted for a step after it ends, so a slow
        # browser still arrives in time), then the next one, which the drift rule accepts.
        step = max(now_step, self.used_steps.get(username, now_step - 1) + 1)
        if step > now_step + 1:  # every step in the drift window is spent: wait for one
            time.sleep((step - 1) * totp.interval - time.time() + 0.5)
        self.used_steps[username] = step
        return totp.generate_otp(step)


def _seed(app: Flask) -> tuple[dict[str, str], dict[str, Any]]:
    """The demo accounts and library, and what each role's pages need to show: the demo
    accounts' passwords and the ids of the deep pages."""
    with app.app_context():
        accounts = seed_demo()
        seed_demo_library()
        seed_demo_peers()  # as `cxr-academy demo` does: dashboards and statistics have data
        seed_demo_qc()  # and the QC concordance pages, the funnel and the flagged reader
        users = {role: db.session.scalar(select(User).where(User.username == name))
                 for role, name in USERNAMES.items()}
        practice = db.session.scalar(select(Exercise).where(Exercise.title == DEMO_PRACTICE))
        quality = db.session.scalar(
            select(Exercise).where(Exercise.title == DEMO_QUALITY_PRACTICE))
        assert practice is not None and quality is not None
        open_attempts = {}
        # Each trainee's own practice set (radiologists DS-3030, radiographers image
        # quality): one attempt submitted (result, review) and one left open (case page,
        # submission summary, abandon confirmation).
        for role, exercise in (("radiologist", practice), ("radiographer", quality)):
            trainee = users[role]
            done = start_attempt(exercise, trainee)
            for n, case_id in enumerate(done.case_order):
                answers = ({"overall": "normal"} if n % 2 else
                           {"overall": "abnormal", "findings": ["infiltrate"]})
                if exercise is quality:
                    answers = {}
                save_answer(done, trainee, case_id, answers, [])
            submit_attempt(done, trainee)
            open_attempts[role] = start_attempt(exercise, trainee).id
        exam = db.session.scalar(select(Exercise).where(Exercise.title == DEMO_EXAM))
        assert exam is not None
        exam_attempt = start_attempt(exam, users["radiologist"])  # timed: a countdown shows
        programme = db.session.scalar(select(Programme).where(Programme.title == DEMO_PROGRAMME))
        assert programme is not None
        certificate = grant_exception(users["radiologist"], programme,
                                      reason="Demo: certified by the QC centre's own exam",
                                      actor=users["lead"])
        review_case = db.session.scalar(select(Case.id).where(Case.pixel_review_needed))
        assert review_case is not None, "the demo library has no case awaiting pixel review"
        case_id = db.session.scalar(select(Case.id).where(~Case.pixel_review_needed)
                                    .order_by(Case.id))
        # An exercise nobody has attempted yet: its edit page.
        unattempted = create_exercise(
            title="Chest X-ray reads: week 2", kind="practice", scheme_key="ds3030",
            case_ids=[link.case_id for link in practice.cases][:3], actor=users["trainer"])
        ids = {
            "unattempted": unattempted.id,
            "practice": practice.id,
            "radiologist_attempt": open_attempts["radiologist"],
            "radiographer_attempt": open_attempts["radiographer"],
            "exam_attempt": exam_attempt.id,
            "programme": programme.id,
            "certificate_code": certificate.code,
            "radiologist": users["radiologist"].id,
            "radiographer": users["radiographer"].id,
            "case": case_id,
            "review_case": review_case,
        }
        passwords = {a.username: a.password for a in accounts if a.password}
        ids["totp_keys"] = {a.username: a.totp_secret for a in accounts if a.totp_secret}
        db.session.remove()
        db.engine.dispose()
    return passwords, ids


@pytest.fixture(scope="module")
def demo_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoPortal]:
    """The seeded demo served over HTTP on 127.0.0.1 (SQLite: these walks read, and the
    database engine changes nothing on the pages)."""
    instance = tmp_path_factory.mktemp("roles-instance")
    url = f"sqlite:///{tmp_path_factory.mktemp('roles-db') / 'demo.sqlite3'}"
    migrate_database(url, instance)
    app = create_app(base_config(url, instance))
    passwords, ids = _seed(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield DemoPortal(f"http://127.0.0.1:{server.server_port}", passwords, ids,
                         totp_keys=ids.pop("totp_keys"))
    finally:
        server.shutdown()
        thread.join(timeout=10)


# ---- how each page is reached (the pages: tests/demo_pages.py) ---------------------------


def reach(step: Step, page: Any, portal: DemoPortal) -> None:
    """Take ``page`` to a page the way ``step`` says, by the English names."""
    if isinstance(step, Url):
        page.goto(portal.url + step.template.format(**portal.ids))
    elif isinstance(step, Menu):
        page.goto(portal.url + "/")
        page.get_by_role("navigation", name="Main").get_by_role(
            "link", name=english(step.names[0]), exact=True).click()
        page.wait_for_load_state()
        for name in step.names[1:]:
            page.get_by_role("link", name=english(name), exact=True).first.click()
            page.wait_for_load_state()
    elif isinstance(step, Submit):
        page.goto(portal.url + step.path)
        form = page.locator("form", has=page.get_by_role("button", name=step.button,
                                                         exact=True))
        form.get_by_label(ANY_CODE).fill(portal.second_factor_code(USERNAMES[step.role]))
        form.get_by_role("button", name=step.button, exact=True).click()
        page.wait_for_load_state()
    else:
        username = USERNAMES[step.role]
        page.goto(portal.url + "/auth/login")
        page.get_by_label("User name or e-mail").fill(username)
        page.get_by_label("Password").fill(portal.passwords[username])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()
        assert "/auth/second-factor" in page.url


CASES = [pytest.param(role, name, viewport, id=f"{role}-{name}-{viewport}")
         for role, pages in PAGES.items() for name in pages for viewport in VIEWPORTS]


# ---- one signed-in browser context per role and viewport --------------------------------


@pytest.fixture(scope="module")
def signed_in(browser: Any, demo_portal: DemoPortal) -> Iterator[Callable[[str, str], Any]]:
    """A page for ``role`` at ``viewport``: the role signs in through the sign-in form the
    first time, and the session is kept for that role's other pages at that viewport."""
    contexts: dict[tuple[str, str], Any] = {}

    def get(role: str, viewport: str) -> Any:
        key = (role, viewport)
        if key not in contexts:
            context = browser.new_context(**VIEWPORTS[viewport])
            page = context.new_page()
            page.set_default_timeout(30_000)
            if role != "anonymous":
                username = USERNAMES[role]
                page.goto(demo_portal.url + "/auth/login")
                page.get_by_label("User name or e-mail").fill(username)
                page.get_by_label("Password").fill(demo_portal.passwords[username])
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_load_state()
                if "/auth/second-factor" in page.url:
                    page.get_by_label("Code").fill(demo_portal.second_factor_code(username))
                    page.get_by_role("button", name="Verify").click()
                    page.wait_for_load_state()
                assert "/auth/" not in page.url, f"{role} could not sign in"
            contexts[key] = context
        return contexts[key].pages[0]

    yield get
    for context in contexts.values():
        context.close()


def _settle(page: Any) -> None:
    """Wait until the viewer (where the page has one) shows its images in full."""
    page.wait_for_load_state("load")
    if page.evaluate("() => !!document.querySelector('#viewer.viewer-app')"):
        page.wait_for_function(
            "() => window.cxrViewer && window.cxrViewer.state().panes.length > 0"
            " && window.cxrViewer.state().panes.every(p => p.fullLoaded)",
            timeout=60_000)


@pytest.mark.parametrize(("role", "name", "viewport"), CASES)
def test_page_has_no_axe_violations(signed_in: Callable[[str, str], Any],
                                    demo_portal: DemoPortal,
                                    role: str, name: str, viewport: str) -> None:
    page = signed_in(role, viewport)
    reach(PAGES[role][name], page, demo_portal)
    _settle(page)
    assert page.url.startswith(demo_portal.url)
    assert "/auth/login" not in page.url or role == "anonymous", f"signed out at {page.url}"
    assert page.locator(".error-page").count() == 0, (
        f"{page.url}: {page.locator('.error-page').inner_text()}")
    folder = os.environ.get("CXR_ACADEMY_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{role}-{name}-{viewport}.png"),
                        full_page=True)
    assert_no_axe_violations(page, f"{role} / {name} / {viewport}")


# ---- the QC concordance as the programme lead reads it -----------------------------------


def _image_drawn(page: Any, testid: str) -> bool:
    image = page.get_by_test_id(testid)
    image.scroll_into_view_if_needed()
    page.wait_for_function("el => el.complete", arg=image.element_handle())
    return bool(image.evaluate("el => el.naturalWidth > 0"))


def test_the_lead_sees_exam_scores_beside_qc_concordance_the_funnel_and_a_flagged_reader(
        signed_in: Callable[[str, str], Any], demo_portal: DemoPortal,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """The demo programme's lead: each reader's latest exam beside their QC concordance,
    the funnel plot, the reader the ongoing criterion flagged with a suggested practice set
    built from their misses, and that reader's CUSUM chart. Screenshots at each step."""
    shots = tmp_path_factory.mktemp("qc-walk")
    page = signed_in("lead", "desktop")
    page.goto(demo_portal.url + "/")
    page.get_by_role("link", name="Certification", exact=True).first.click()
    page.get_by_role("link", name=DEMO_PROGRAMME).first.click()
    readers = page.get_by_test_id("readers-table")
    rows = readers.locator("tbody tr")
    assert rows.count() >= 5
    with_both = [rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count())]
    # Reader, clinic, status, until, latest exam, sensitivity, specificity, QC reads, rate, kappa
    both = [cells for cells in with_both if cells[5] != "—" and int(cells[7]) > 0]
    assert both, "no reader shows exam scores and QC concordance side by side"
    page.screenshot(path=str(shots / "1-dashboard.png"), full_page=True)

    page.get_by_test_id("qc-link").click()
    assert "/qc/programmes/" in page.url
    assert _image_drawn(page, "qc-funnel"), "the funnel plot did not load"
    page.screenshot(path=str(shots / "2-qc-concordance.png"), full_page=True)

    page.goto(demo_portal.url + "/certification/")
    page.get_by_test_id("qc-flags-waiting").get_by_role("link").click()
    flag = page.get_by_test_id("qc-flag")
    assert flag.count() == 1
    assert "Villanueva" in flag.locator("h2").inner_text()
    assert "Infiltrate" in flag.get_by_test_id("error-profile").inner_text()
    assert flag.get_by_test_id("suggested-cases").locator("li").count() >= 1
    page.screenshot(path=str(shots / "3-flagged-reader.png"), full_page=True)

    flag.locator("h2 a").click()
    assert _image_drawn(page, "qc-cusum"), "the CUSUM chart did not load"
    assert page.get_by_test_id("reader-flagged").is_visible()
    page.screenshot(path=str(shots / "4-reader-cusum.png"), full_page=True)
