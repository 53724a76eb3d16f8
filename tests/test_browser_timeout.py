"""The exam page in Chromium when the server's time runs out: the last answer is saved and
the trainee lands on the result of the timed-out attempt; a computer clock that is fast
does not end the exam early (the server's count of seconds left wins)."""

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
from tests.test_library_files import LIBRARY

pytestmark = pytest.mark.browser
LOADED = "() => window.cxrViewer && window.cxrViewer.state().panes[0].fullLoaded"
SAVED = "() => document.querySelector('.save-state').textContent.startsWith('saved')"


@pytest.fixture
def exam(app, tmp_path):
    folder = tmp_path / "lib"
    (folder / "cases").mkdir(parents=True)
    for name in ("phantom-cavity-1", "phantom-normal-1"):
        shutil.copy(LIBRARY / "cases" / f"{name}.json", folder / "cases")
    results = load_library(folder)
    return create_exercise(title="Timed exam", kind="exam", scheme_key="ds3030",
                           case_ids=[r.case_id for r in results], actor=None,
                           time_limit_minutes=30, shuffle=False)


def _attempt() -> Attempt:
    db.session.expire_all()
    return db.session.scalars(select(Attempt)).one()


def test_when_the_time_runs_out_the_trainee_lands_on_the_result(portal_url, page, make_user,
                                                                 exam):
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    # The trainee started 30 minutes ago, less a few seconds: the page counts them down.
    attempt = start_attempt(exam, trainee, now=utcnow() - timedelta(minutes=30, seconds=-8))
    sign_in(page, portal_url, trainee.username)
    page.goto(f"{portal_url}/training/attempts/{attempt.id}/1")
    page.wait_for_function(LOADED)
    page.get_by_label("Abnormal").check()
    page.get_by_label("Cavitary lesion").check()
    page.wait_for_function(SAVED)
    page.wait_for_url("**/result", timeout=60_000)
    assert "timed out" in page.get_by_test_id("attempt-state").inner_text()
    assert "still in progress" not in page.content()
    assert "1 of 2 cases answered" in page.content()
    ended = _attempt()
    assert ended.state == AttemptState.TIMED_OUT.value
    assert ended.ended_at == ended.deadline_at and ended.metrics is not None


def test_a_server_deadline_nearer_than_the_page_said_is_followed(portal_url, page, make_user,
                                                                 exam):
    """Each acknowledged save brings the server's count of seconds left."""
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    sign_in(page, portal_url, trainee.username)
    page.get_by_role("link", name="Training", exact=True).click()  # from the home page
    page.get_by_role("button", name="Start").click()
    page.wait_for_function(LOADED)
    attempt = _attempt()
    attempt.deadline_at = utcnow() + timedelta(seconds=8)
    db.session.commit()
    page.get_by_label("Normal").first.check()
    page.wait_for_function(SAVED)
    page.wait_for_function(
        "() => document.querySelector('.attempt-clock').textContent.startsWith('0:')")
    page.wait_for_url("**/result", timeout=60_000)
    assert _attempt().state == AttemptState.TIMED_OUT.value


def test_a_fast_computer_clock_does_not_end_the_exam_early(portal_url, page, make_user, exam):
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    sign_in(page, portal_url, trainee.username)
    # This computer's clock runs an hour ahead: by it, the 30 minutes are over at once.
    page.clock.set_system_time(datetime.now(UTC) + timedelta(hours=1))
    page.get_by_role("link", name="Training", exact=True).click()  # from the home page
    page.get_by_role("button", name="Start").click()
    page.wait_for_function(LOADED)
    # The time-up check asks the server (a save), which counts ~30 minutes left.
    page.wait_for_function(SAVED)
    page.wait_for_function(
        "() => !document.querySelector('.attempt-clock').textContent.startsWith('0:')")
    assert page.url.endswith("/1")
    assert _attempt().state == AttemptState.IN_PROGRESS.value
    left = page.get_by_test_id("time-left").inner_text()
    assert int(left.split(":")[0]) >= 25
