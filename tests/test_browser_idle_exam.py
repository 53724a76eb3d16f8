"""In Chromium: a trainee's open exam page outlives the 30-minute idle limit (its next answer
saves and the submission goes through), while outside an exam the same idle time ends the
session: the next page is the sign-in page with the reason, and a practice page says why it
cannot save and keeps the answer until the trainee has signed in again.

The server's clock is moved forward, not waited for: every "now" of the portal comes from
app.db_types.utcnow, and the live server runs in a thread of this process, so shifting what
that function reads moves the server's time while the browser's own timers run as usual.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta, tzinfo

import pytest
from sqlalchemy import select

import app.db_types
from app.audit.models import AuditEvent
from app.auth.models import UserSession
from app.auth.roles import Role
from app.cases.library_files import load_library
from app.extensions import db
from app.quizzes.exercises import create_exercise
from app.quizzes.models import Attempt, AttemptAnswer, AttemptState
from tests.conftest import sign_in
from tests.test_library_files import LIBRARY

pytestmark = pytest.mark.browser
LOADED = "() => window.cxrViewer && window.cxrViewer.state().panes[0].fullLoaded"
SAVED = "() => document.querySelector('.save-state').textContent.startsWith('saved')"
IDLE_SENTENCE = "signed out after 30 minutes without activity"
PAST_IDLE = timedelta(minutes=31)


class ServerClock:
    """The server's time, ahead of the real time by ``offset``."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def advance(self, by: timedelta) -> None:
        self.offset += by


@pytest.fixture
def server_clock(monkeypatch) -> Iterator[ServerClock]:
    clock = ServerClock()

    class ShiftedDatetime(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
            return datetime.now(tz) + clock.offset

    monkeypatch.setattr(app.db_types, "datetime", ShiftedDatetime)
    yield clock


@pytest.fixture
def long_exam(app, tmp_path):
    folder = tmp_path / "lib"
    (folder / "cases").mkdir(parents=True)
    for name in ("phantom-effusion-1", "phantom-normal-2"):
        shutil.copy(LIBRARY / "cases" / f"{name}.json", folder / "cases")
    results = load_library(folder)
    return create_exercise(title="Long exam", kind="exam", scheme_key="ds3030",
                           case_ids=[r.case_id for r in results], actor=None,
                           time_limit_minutes=180, shuffle=False)


def _fresh(model):
    db.session.expire_all()
    return db.session.scalars(select(model)).all()


def _session_ends() -> list[AuditEvent]:
    db.session.expire_all()
    return list(db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "session.ended")))


def _on_sign_in_with_the_idle_reason(tab) -> None:
    assert tab.url.split("?")[0].endswith("/auth/login")
    assert IDLE_SENTENCE in " ".join(tab.locator("main").inner_text().split())
    assert tab.get_by_role("button", name="Sign in").is_visible()


def test_an_open_exam_page_outlives_the_idle_limit_and_other_tabs_idle_out_after_it(
        portal_url, page, make_user, long_exam, server_clock):
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    sign_in(page, portal_url, trainee.username)
    other_tab = page.context.new_page()  # same browser, same session cookie
    other_tab.goto(f"{portal_url}/training/")
    page.get_by_role("link", name="Training", exact=True).click()
    page.get_by_role("button", name="Start").click()
    page.wait_for_function(LOADED)
    page.get_by_label("Normal").first.check()
    page.wait_for_function(SAVED)

    # 31 minutes pass on the server between two of the page's 15-second saves (a laptop lid
    # closed, a lost connection): the next answer is the first request after the gap.
    server_clock.advance(PAST_IDLE)
    with page.expect_response(lambda r: r.url.endswith("/1/answer")) as first_after:
        page.get_by_label("Abnormal").first.check()
        page.get_by_label("Pleural effusion").check()
    assert first_after.value.status == 200
    page.wait_for_function(
        "() => document.querySelector('.save-state').textContent.startsWith('saved')"
        " && !document.querySelector('.save-state').textContent.includes('not')")
    # The server's count of time left, brought by the save, has lost the 31 minutes too.
    page.wait_for_function(  # minutes:seconds, from 180 minutes less the 31
        "() => parseInt(document.querySelector('.attempt-clock').textContent) <= 149")
    # The page's own keep-alive goes on being accepted.
    with page.expect_response(lambda r: r.url.endswith("/1/answer"), timeout=20_000) as beat:
        pass
    assert beat.value.status == 200
    [row] = _fresh(UserSession)
    assert row.ended_at is None and _session_ends() == []
    # Mid-exam the other tab is not signed out either: both tabs share the one session, and
    # ending it would end the exam's too.
    server_clock.advance(PAST_IDLE)
    other_tab.reload()
    assert other_tab.url == f"{portal_url}/training/"
    assert _fresh(UserSession)[0].ended_at is None

    page.get_by_role("link", name="Next case").click()
    page.wait_for_url("**/2")
    page.wait_for_function(LOADED)
    page.get_by_label("Normal").first.check()
    page.wait_for_function(SAVED)
    page.get_by_role("button", name="Submit all answers").click()
    page.wait_for_url("**/summary")
    page.get_by_role("button", name="Submit and finish").click()
    page.wait_for_url("**/result")
    [attempt] = _fresh(Attempt)
    assert attempt.state == AttemptState.SUBMITTED.value
    answers = {a.case_id: a.answers for a in _fresh(AttemptAnswer)}
    first, second = attempt.case_order
    assert answers[first]["overall"] == "abnormal" and answers[second] == {"overall": "normal"}

    # The exam is over: the tab left on a non-exam page idles out like any other page. The
    # result page's tab is closed first: a late request of its own (an image) would otherwise
    # be the one to meet the idle limit and show the reason.
    page.close()
    server_clock.advance(PAST_IDLE)
    other_tab.reload()
    # Signed out, for idleness (below). Which of the browser's requests shows the reason is
    # a race here (the page's own background requests may meet the limit first); the
    # one-tab test_outside_an_exam_idle_time_ends_the_session checks the sentence.
    assert other_tab.url.split("?")[0].endswith("/auth/login")
    assert other_tab.get_by_role("button", name="Sign in").is_visible()
    [ended] = _session_ends()
    assert ended.actor_id == trainee.id and ended.detail == {"reason": "idle"}


def test_outside_an_exam_idle_time_ends_the_session(portal_url, page, make_user, long_exam,
                                                    server_clock):
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    sign_in(page, portal_url, trainee.username)
    page.goto(f"{portal_url}/training/")
    assert page.get_by_role("button", name="Start").is_visible()  # an exam to start, none open
    server_clock.advance(PAST_IDLE)
    page.get_by_role("button", name="Start").click()
    _on_sign_in_with_the_idle_reason(page)
    assert _fresh(Attempt) == []  # nothing was started by the stale page
    [row] = _fresh(UserSession)
    assert row.ended_at is not None
    [ended] = _session_ends()
    assert ended.actor_id == trainee.id and ended.detail == {"reason": "idle"}


@pytest.fixture
def practice(app, tmp_path):
    folder = tmp_path / "practice-lib"
    (folder / "cases").mkdir(parents=True)
    shutil.copy(LIBRARY / "cases" / "phantom-cavity-1.json", folder / "cases")
    [result] = load_library(folder)
    return create_exercise(title="Practice", kind="practice", scheme_key="ds3030",
                           case_ids=[result.case_id], actor=None)


def test_a_practice_page_after_idle_says_why_it_cannot_save_and_keeps_the_answer(
        portal_url, page, make_user, practice, server_clock):
    """No exam protects practice: after 31 minutes without a request (the computer slept),
    the next answer is refused with the reason, kept on this device, and saved once the
    trainee has signed in again."""
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    sign_in(page, portal_url, trainee.username)
    page.get_by_role("link", name="Training", exact=True).click()
    page.get_by_role("button", name="Start").click()
    page.wait_for_function(LOADED)
    case_page = page.url
    server_clock.advance(PAST_IDLE)
    page.get_by_label("Abnormal").first.check()
    page.wait_for_function(
        "() => document.querySelector('.save-state').textContent.startsWith('not saved:')")
    assert IDLE_SENTENCE in page.locator(".save-state").inner_text()
    assert all(not a.answers for a in _fresh(AttemptAnswer))
    [ended] = _session_ends()
    assert ended.detail == {"reason": "idle"}

    sign_in(page, portal_url, trainee.username)
    page.goto(case_page)
    page.wait_for_function(LOADED)
    page.wait_for_function(SAVED)  # the answer kept on this device is sent
    assert page.get_by_label("Abnormal").first.is_checked()
    [answer] = [a for a in _fresh(AttemptAnswer) if a.answers]
    assert answer.answers == {"overall": "abnormal"}
