"""A trainee takes a practice exercise in Chromium: reads, marks, autosave, reload, submit."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.auth.roles import Role
from app.cases.library_files import load_library
from app.extensions import db
from app.quizzes.exercises import create_exercise
from app.quizzes.models import Attempt, AttemptAnswer
from tests.conftest import sign_in
from tests.test_library_files import LIBRARY

pytestmark = pytest.mark.browser


@pytest.fixture
def exercise(app, tmp_path):
    import shutil

    folder = tmp_path / "lib"
    (folder / "cases").mkdir(parents=True)
    for name in ("phantom-cavity-1", "phantom-normal-1"):
        shutil.copy(LIBRARY / "cases" / f"{name}.json", folder / "cases")
    results = load_library(folder)
    return create_exercise(
        title="Browser practice",
        kind="practice",
        scheme_key="ds3030",
        case_ids=[r.case_id for r in results],
        actor=None,
    )


def test_trainee_reads_marks_autosaves_resumes_and_submits(portal_url, page, make_user, exercise):
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    sign_in(page, portal_url, trainee.username)
    page.get_by_role("link", name="Training", exact=True).click()  # from the home page
    page.get_by_role("button", name="Start").click()
    page.wait_for_function("() => window.cxrViewer && window.cxrViewer.state().panes[0].fullLoaded")

    page.get_by_label("Abnormal").check()
    page.get_by_label("Cavitary lesion").check()
    state = page.get_by_test_id("save-state")
    page.wait_for_function(
        "() => document.querySelector('.save-state').textContent.startsWith('saved')"
    )
    # A mark with the viewer: ellipse tool, finding label chosen in the viewer.
    page.get_by_label("Finding label").select_option("cavitary_lesion")
    page.get_by_role("button", name="Ellipse").click()
    box = page.locator(".pane-overlay").first.bounding_box()
    page.mouse.move(box["x"] + 200, box["y"] + 150)
    page.mouse.down()
    page.mouse.move(box["x"] + 260, box["y"] + 200, steps=5)
    page.mouse.up()
    page.wait_for_function(
        "() => document.querySelector('.save-state').textContent.includes('revision 2')"
    )
    assert "saved" in state.inner_text()

    # Another device (a reload) resumes with every acknowledged answer present.
    page.reload()
    page.wait_for_function("() => window.cxrViewer && window.cxrViewer.state().panes[0].fullLoaded")
    assert page.get_by_label("Abnormal").is_checked()
    assert page.get_by_label("Cavitary lesion").is_checked()
    marks = page.evaluate("() => window.cxrViewer.state().marks")
    assert len(marks) == 1 and marks[0]["finding"] == "cavitary_lesion"

    page.get_by_role("link", name="Next case").click()
    page.wait_for_url("**/2")
    page.get_by_label("Normal").first.check()
    page.get_by_role("button", name="Submit all answers").click()
    page.wait_for_url("**/summary")
    assert "2 of 2 cases answered" in page.get_by_test_id("summary-answered").inner_text()
    page.get_by_role("button", name="Submit and finish").click()
    page.wait_for_url("**/result")
    assert "submitted" in page.get_by_test_id("attempt-state").inner_text()
    assert page.get_by_test_id("scores").is_visible()
    assert page.get_by_test_id("case-feedback").count() == 2
    # Review in the viewer: the trainee's mark with its outcome, and the legend.
    page.get_by_role("link", name="review in the viewer").first.click()
    page.wait_for_function("() => window.cxrViewer && window.cxrViewer.state().panes[0].fullLoaded")
    assert page.locator(".viewer-legend").is_visible()
    assert "missed reference lesion" in page.locator(".viewer-legend").inner_text()

    attempt = db.session.scalars(select(Attempt)).one()
    answers = {a.case_id: a for a in db.session.scalars(select(AttemptAnswer))}
    first, second = attempt.case_order
    assert answers[first].answers == {"overall": "abnormal", "findings": ["cavitary_lesion"]}
    assert answers[second].answers == {"overall": "normal"}
    assert answers[first].seconds > 0


@pytest.fixture
def exam(app, tmp_path):
    import shutil

    folder = tmp_path / "exam-lib"
    (folder / "cases").mkdir(parents=True)
    for name in ("phantom-effusion-1", "phantom-normal-2"):
        shutil.copy(LIBRARY / "cases" / f"{name}.json", folder / "cases")
    results = load_library(folder)
    return create_exercise(
        title="Browser exam",
        kind="exam",
        scheme_key="ds3030",
        case_ids=[r.case_id for r in results],
        actor=None,
        time_limit_minutes=30,
        max_attempts=2,
        criteria=[("sensitivity", 0.8), ("specificity", 0.8)],
    )


def test_trainee_takes_a_timed_exam_end_to_end(portal_url, page, make_user, exam):
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    sign_in(page, portal_url, trainee.username)
    page.get_by_role("link", name="Training", exact=True).click()  # from the home page
    page.get_by_role("button", name="Start").click()
    loaded = "() => window.cxrViewer && window.cxrViewer.state().panes[0].fullLoaded"
    saved = "() => document.querySelector('.save-state').textContent.startsWith('saved')"
    page.wait_for_function(loaded)
    clock = page.get_by_test_id("time-left").inner_text()
    assert clock.startswith(("29:", "30:"))
    assert not page.get_by_role("button", name="Check my answer (final for this case)").count()

    attempt = db.session.scalars(select(Attempt)).one()
    from app.cases.models import Case

    for position, case_id in enumerate(attempt.case_order, 1):
        if position > 1:
            page.get_by_role("link", name="Next case").click()
            page.wait_for_url(f"**/{position}")
            page.wait_for_function(loaded)
        tb = db.session.get(Case, case_id).reference_tb_positive
        page.get_by_label("Abnormal" if tb else "Normal").first.check()
        if tb:
            page.get_by_label("Pleural effusion").check()
        page.wait_for_function(saved)
        if position == 1:  # reload mid-way: the answer is still there
            page.reload()
            page.wait_for_function(loaded)
            assert page.get_by_label("Abnormal" if tb else "Normal").first.is_checked()
    page.get_by_role("button", name="Submit all answers").click()
    page.wait_for_url("**/summary")
    page.get_by_role("button", name="Submit and finish").click()
    page.wait_for_url("**/result")
    assert page.get_by_test_id("verdict").inner_text() == "Passed"
    assert page.get_by_test_id("scores").is_visible()
    assert page.get_by_test_id("case-feedback").count() == 0  # exams: scores only


def test_dropped_connection_shows_not_saved_and_retries(portal_url, page, make_user, exercise):
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    sign_in(page, portal_url, trainee.username)
    page.get_by_role("link", name="Training", exact=True).click()  # from the home page
    page.get_by_role("button", name="Start").click()
    page.wait_for_function("() => window.cxrViewer && window.cxrViewer.state().panes[0].fullLoaded")
    page.context.set_offline(True)
    page.get_by_label("Abnormal").check()
    page.wait_for_function(
        "() => document.querySelector('.save-state').textContent === 'not saved — retrying'"
    )
    assert db.session.scalars(select(AttemptAnswer)).all() == [] or all(
        not a.answers for a in db.session.scalars(select(AttemptAnswer))
    )
    page.context.set_offline(False)
    page.wait_for_function(
        "() => document.querySelector('.save-state').textContent.startsWith('saved')",
        timeout=20_000,
    )
    db.session.expire_all()
    [answer] = [a for a in db.session.scalars(select(AttemptAnswer)) if a.answers]
    assert answer.answers == {"overall": "abnormal"}
