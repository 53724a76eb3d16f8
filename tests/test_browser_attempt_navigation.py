"""A trainee moves through an attempt in Chromium: the case navigator's tiles, flag for
review, previous/next and the keyboard shortcuts, the summary before submitting, the
confirmation before abandoning, and the time warnings, at a reading-room desktop's 1280x800
and on a 1024x768 touch tablet."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.auth.roles import Role
from app.cases.library_files import load_library
from app.db_types import utcnow
from app.extensions import db
from app.quizzes.exercises import create_exercise
from app.quizzes.models import Attempt, AttemptState
from app.quizzes.services import start_attempt
from tests.conftest import sign_in
from tests.test_browser_touch import TARGETS
from tests.test_library_files import LIBRARY

pytestmark = pytest.mark.browser
LOADED = "() => window.cxrViewer && window.cxrViewer.state().panes[0].fullLoaded"
SAVED = "() => document.querySelector('.save-state').textContent.startsWith('saved')"
FLAGGED = "() => document.querySelector('[data-testid=flag]').ariaPressed === 'true'"


def _load(tmp_path, names: tuple[str, ...]) -> list[int]:
    folder = tmp_path / "lib"
    (folder / "cases").mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(LIBRARY / "cases" / f"{name}.json", folder / "cases")
    return [r.case_id for r in load_library(folder) if r.case_id is not None]


@pytest.fixture
def exam(app, tmp_path):
    case_ids = _load(tmp_path, ("phantom-cavity-1", "phantom-normal-1", "phantom-normal-2"))
    return create_exercise(title="Reading exam", kind="exam", scheme_key="ds3030",
                           case_ids=case_ids, actor=None, time_limit_minutes=30, shuffle=False)


@pytest.fixture
def practice(app, tmp_path):
    case_ids = _load(tmp_path, ("phantom-effusion-1", "phantom-normal-3"))
    return create_exercise(title="Drill", kind="practice", scheme_key="ds3030",
                           case_ids=case_ids, actor=None, shuffle=False)


@pytest.fixture
def desktop(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def tablet(browser):
    context = browser.new_context(has_touch=True, viewport={"width": 1024, "height": 768})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def _attempt() -> Attempt:
    db.session.expire_all()
    return db.session.scalars(select(Attempt)).one()


def _tile(page, position: int):
    return page.get_by_test_id("case-navigator").locator(f'a[data-position="{position}"]')


def _label(page, position: int) -> str:
    return _tile(page, position).get_attribute("aria-label") or ""


def _in_view(page, testid: str) -> None:
    """The control is on screen without scrolling: its whole box inside the viewport."""
    box = page.get_by_test_id(testid).bounding_box()
    size = page.viewport_size
    assert box is not None, testid
    assert box["x"] >= 0 and box["y"] >= 0, (testid, box)
    assert box["x"] + box["width"] <= size["width"], (testid, box, size)
    assert box["y"] + box["height"] <= size["height"], (testid, box, size)
    assert page.evaluate("() => window.scrollY") == 0


def _shortcuts_hinted(page) -> None:
    hint = page.get_by_test_id("shortcuts").locator("summary")
    assert hint.is_visible()
    text = " ".join(hint.inner_text().split())
    assert text.startswith("Keyboard shortcuts") and "N next case, B previous" in text, text


def test_trainee_walks_an_exam_by_tiles_flags_shortcuts_and_summary(portal_url, desktop,
                                                                     make_user, exam):
    page = desktop
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    sign_in(page, portal_url, trainee.username)
    page.get_by_role("link", name="Training", exact=True).click()  # from the home page
    page.get_by_role("button", name="Start").click()
    page.wait_for_function(LOADED)
    attempt = _attempt()
    base = f"/training/attempts/{attempt.id}"
    # Next and Submit are on screen at once, the shortcuts are told.
    _in_view(page, "next")
    _in_view(page, "submit")
    # The panel scrolls inside; the clock above and the buttons below stay in view.
    body = page.locator(".attempt-body")
    assert body.evaluate("el => el.scrollHeight > el.clientHeight")
    body.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    for testid in ("time-left", "save-state", "next", "submit", "shortcuts"):
        _in_view(page, testid)
    body.evaluate("el => { el.scrollTop = 0; }")
    _shortcuts_hinted(page)
    assert [_label(page, n) for n in (1, 2, 3)] == [
        "Case 1: not answered, current case", "Case 2: not answered", "Case 3: not answered"]
    assert _tile(page, 1).get_attribute("aria-current") == "page"

    # Shift+2 chooses the second option of the classification ("Abnormal"); the tile says
    # "answered" once the save is acknowledged, without a reload.
    page.keyboard.press("Shift+Digit2")
    assert page.get_by_label("Abnormal").is_checked()
    page.wait_for_function(SAVED)
    page.wait_for_function(
        "() => document.querySelector('a[data-position=\"1\"]').getAttribute('aria-label')"
        ".startsWith('Case 1: answered')")
    assert page.get_by_test_id("answered-count").inner_text().startswith("1 of 3 answered")
    # The viewer keeps its own digit: 1 is its 1:1 zoom, not an answer.
    page.keyboard.press("1")
    assert page.get_by_label("Abnormal").is_checked()

    # Flag for review: the button and the tile say so, without a reload.
    page.get_by_role("button", name="Flag for review").click()
    page.wait_for_function(FLAGGED)
    assert _label(page, 1) == "Case 1: answered, flagged for review, current case"
    assert "⚑" in _tile(page, 1).inner_text()

    # N and B: next and previous case (the answer is saved before leaving).
    page.keyboard.press("n")
    page.wait_for_url(f"**{base}/2")
    page.wait_for_function(LOADED)
    assert _label(page, 1) == "Case 1: answered, flagged for review"
    page.keyboard.press("b")
    page.wait_for_url(f"**{base}/1")
    page.wait_for_function(LOADED)
    # While typing in a text box the keys are text.
    other = page.locator("input[type=text][name=other_text]")
    other.click()
    other.press_sequentially("nb!")  # "!" is Shift+1
    assert other.input_value() == "nb!" and page.url.endswith(f"{base}/1")
    assert page.get_by_label("Abnormal").is_checked()
    page.wait_for_function(SAVED)

    # A tile is a link to its case.
    _tile(page, 3).click()
    page.wait_for_url(f"**{base}/3")
    page.wait_for_function(LOADED)
    assert _tile(page, 3).get_attribute("aria-current") == "page"

    # Submit leads to the summary: what is left, with links back.
    page.get_by_role("button", name="Submit all answers").click()
    page.wait_for_url(f"**{base}/summary")
    assert "1 of 3 cases answered" in page.get_by_test_id("summary-answered").inner_text()
    unanswered = page.get_by_test_id("summary-unanswered")
    assert unanswered.get_by_role("link").all_inner_texts() == ["Case 2", "Case 3"]
    assert page.get_by_test_id("summary-flagged").get_by_role("link").all_inner_texts() == [
        "Case 1"]
    assert page.get_by_test_id("blank-rule").is_visible()
    unanswered.get_by_role("link", name="Case 2").click()
    page.wait_for_url(f"**{base}/2")
    page.wait_for_function(LOADED)
    page.get_by_label("Normal", exact=True).check()
    page.wait_for_function(SAVED)
    page.get_by_role("button", name="Submit all answers").click()
    page.wait_for_url(f"**{base}/summary")
    assert "2 of 3 cases answered" in page.get_by_test_id("summary-answered").inner_text()
    assert _attempt().state == AttemptState.IN_PROGRESS.value
    page.get_by_role("button", name="Submit and finish").click()
    page.wait_for_url(f"**{base}/result")
    assert "submitted" in page.get_by_test_id("attempt-state").inner_text()
    assert _attempt().state == AttemptState.SUBMITTED.value


def test_trainee_on_a_touch_tablet_taps_tiles_flags_and_abandons_with_confirmation(
        portal_url, tablet, make_user, practice):
    page = tablet
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    sign_in(page, portal_url, trainee.username)
    page.get_by_role("link", name="Training", exact=True).click()  # from the home page
    page.get_by_role("button", name="Start").click()
    page.wait_for_function(LOADED)
    attempt = _attempt()
    base = f"/training/attempts/{attempt.id}"
    _in_view(page, "next")
    _in_view(page, "submit")
    _shortcuts_hinted(page)

    page.get_by_label("Normal", exact=True).tap()
    page.wait_for_function(SAVED)
    page.wait_for_function(
        "() => document.querySelector('a[data-position=\"1\"]').getAttribute('aria-label')"
        ".startsWith('Case 1: answered')")
    # A finger hits every control, the tiles too.
    assert page.evaluate(TARGETS)["small"] == []
    for position in (1, 2):
        box = _tile(page, position).bounding_box()
        assert box["width"] >= 44 and box["height"] >= 44, box
    _tile(page, 2).tap()
    page.wait_for_url(f"**{base}/2")
    page.wait_for_function(LOADED)
    _in_view(page, "submit")
    page.get_by_role("button", name="Flag for review").tap()
    page.wait_for_function(FLAGGED)
    assert _label(page, 2) == "Case 2: not answered, flagged for review, current case"
    page.get_by_test_id("previous").tap()
    page.wait_for_url(f"**{base}/1")
    page.wait_for_function(LOADED)
    assert _label(page, 2) == "Case 2: not answered, flagged for review"

    # Abandoning asks first; going back keeps the attempt.
    page.get_by_role("link", name="Abandon this practice attempt").tap()
    page.wait_for_url(f"**{base}/abandon?from=1")
    assert _attempt().state == AttemptState.IN_PROGRESS.value
    assert page.evaluate(TARGETS)["small"] == []  # a finger hits every control
    page.get_by_role("link", name="Back to case 1").tap()
    page.wait_for_url(f"**{base}/1")
    page.wait_for_function(LOADED)
    page.get_by_role("link", name="Abandon this practice attempt").tap()
    page.get_by_role("button", name="Abandon this attempt").tap()
    page.wait_for_url("**/training/")
    assert "abandoned" in page.content()
    assert _attempt().state == AttemptState.ABANDONED.value


@pytest.mark.parametrize("seconds_left", [310, 70])
def test_time_warnings_at_5_and_1_minute_shown_and_announced_once(
        portal_url, desktop, make_user, exam, seconds_left):
    """The page's clock is Playwright's: it moves only when the test moves it, and within
    the 15 s before the page's first heartbeat save, so the server's count does not move it
    back."""
    page = desktop
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    now = datetime.now(UTC).replace(microsecond=0)
    attempt = start_attempt(exam, trainee, now=utcnow())
    attempt.deadline_at = now + timedelta(seconds=seconds_left)
    db.session.commit()
    sign_in(page, portal_url, trainee.username)
    page.clock.install(time=now)
    page.clock.pause_at(now)
    page.goto(f"{portal_url}/training/attempts/{attempt.id}/1")
    page.wait_for_function(LOADED)
    warning, announcer = page.get_by_test_id("time-warning"), page.get_by_test_id("time-announcer")
    assert announcer.get_attribute("aria-live") == "assertive"
    announcements = """() => { window.announced = [];
      new MutationObserver(() => window.announced.push(
        document.querySelector('[data-testid=time-announcer]').textContent))
        .observe(document.querySelector('[data-testid=time-announcer]'),
                 { childList: true, characterData: true, subtree: true }); }"""
    if seconds_left > 300:
        assert not warning.is_visible() and announcer.inner_text() == ""
        page.evaluate(announcements)
        page.clock.run_for(11_000)  # 4:59 left
        assert warning.is_visible() and warning.inner_text() == "5 minutes left."
        assert page.evaluate("() => window.announced") == ["5 minutes left."]
    else:
        # Loaded with less than 5 minutes left: that warning at once.
        assert warning.is_visible() and warning.inner_text() == "5 minutes left."
        assert announcer.text_content() == "5 minutes left."
        page.evaluate(announcements)
        page.clock.run_for(11_000)  # 0:59 left
        last = "1 minute left: your answers are submitted when the time is up."
        assert warning.is_visible() and warning.inner_text() == last
        assert page.evaluate("() => window.announced") == [last]
    # Each threshold is announced once, not at every tick.
    page.clock.run_for(3_000)
    assert len(page.evaluate("() => window.announced")) == 1
    # The clock and the warning stay on screen at the top of the panel.
    _in_view(page, "time-left")
    _in_view(page, "time-warning")
