"""In Chromium: a trainee whose answer already holds as many marks (or polygon points) as a
case may hold draws one more on the image; the viewer refuses it with a visible, announced
"Mark not added" and the reason, adds nothing and saves nothing new, while a mark within the
limits is still added and saved."""

from __future__ import annotations

import json
import shutil

import pytest
from sqlalchemy import select

from app.auth.roles import Role
from app.cases.library_files import load_library
from app.cases.models import CaseImage
from app.extensions import db
from app.quizzes.answers import save_answer
from app.quizzes.exercises import create_exercise
from app.quizzes.models import AttemptAnswer
from app.quizzes.services import start_attempt
from app.schemes.answers import MAX_MARK_VERTICES, MAX_MARKS
from app.schemes.registry import get_scheme
from tests.conftest import sign_in
from tests.test_library_files import LIBRARY

pytestmark = pytest.mark.browser
LOADED = "() => window.cxrViewer && window.cxrViewer.state().panes[0].fullLoaded"
MARKS = "() => window.cxrViewer.state().marks.length"
STATUS = ".vw-status"
# Every text the status line takes from now on, in order.
WATCH_STATUS = """() => {
  const status = document.querySelector('.vw-status');
  window.statusTexts = [];
  new MutationObserver(() => window.statusTexts.push(status.textContent))
    .observe(status, {childList: true, characterData: true, subtree: true});
}"""


@pytest.fixture
def practice(app, tmp_path):
    folder = tmp_path / "lib"
    (folder / "cases").mkdir(parents=True)
    shutil.copy(LIBRARY / "cases" / "phantom-cavity-1.json", folder / "cases")
    [result] = load_library(folder)
    return create_exercise(title="Marking practice", kind="practice", scheme_key="ds3030",
                           case_ids=[result.case_id], actor=None)


@pytest.fixture
def trainee(make_user):
    return make_user(Role.TRAINEE_RADIOLOGIST)


def _image(case_id: int) -> CaseImage:
    return db.session.scalars(select(CaseImage).where(CaseImage.case_id == case_id)
                              .order_by(CaseImage.id)).first()


def _finding() -> str:
    return get_scheme("ds3030").mark_labels[0].value


def _points(image: CaseImage, count: int) -> list[dict]:
    return [{"image_id": image.id, "finding": _finding(), "shape": "point",
             "geometry": {"x": 10.0 + i % 100, "y": 10.0 + i // 100}} for i in range(count)]


def _polygons(image: CaseImage, count: int, points: int) -> list[dict]:
    def ring(k: int) -> list[list[float]]:
        x0, y0 = 20.0 + (k % 10) * 40, 20.0 + (k // 10) * 40
        top = [[x0 + i * 0.1, y0] for i in range(points // 2)]
        bottom = [[x0 + (points // 2 - i) * 0.1, y0 + 10] for i in range(points - points // 2)]
        return top + bottom
    return [{"image_id": image.id, "finding": _finding(), "shape": "polygon",
             "geometry": {"points": ring(k)}} for k in range(count)]


def _preloaded(practice, trainee, marks):
    """The trainee's attempt, its one case's answer already holding ``marks(image)``."""
    attempt = start_attempt(practice, trainee)
    [case_id] = attempt.case_order
    save_answer(attempt, trainee, case_id, {"overall": "abnormal"}, marks(_image(case_id)))
    return attempt


def _stored() -> AttemptAnswer:
    db.session.expire_all()
    return db.session.scalars(select(AttemptAnswer)).one()


def _open(page, base, trainee, attempt, saves: list[dict]):
    sign_in(page, base, trainee.username)
    page.on("request", lambda r: saves.append(json.loads(r.post_data or "{}"))
            if r.method == "POST" and r.url.endswith("/1/answer") else None)
    page.goto(f"{base}/training/attempts/{attempt.id}/1")
    page.wait_for_function(LOADED)
    box = page.locator(".pane-overlay").first.bounding_box()
    view = page.evaluate("() => window.cxrViewer.state().panes[0].view")

    def at(x: float, y: float) -> tuple[float, float]:
        """Screen position of image pixel (x, y)."""
        return box["x"] + x * view["scale"] + view["tx"], box["y"] + y * view["scale"] + view["ty"]
    return at


def _refused_with(page, reason: str) -> None:
    status = page.locator(STATUS)
    assert status.inner_text() == f"Mark not added: {reason}."
    assert status.is_visible()
    # Announced without moving the focus: a polite live region (role=status).
    assert status.get_attribute("role") == "status"
    assert status.get_attribute("aria-live") == "polite"


def test_a_mark_past_the_300_per_case_is_refused_visibly_and_not_saved(
        portal_url, page, trainee, practice):
    attempt = _preloaded(practice, trainee, lambda image: _points(image, MAX_MARKS))
    saves: list[dict] = []
    at = _open(page, portal_url, trainee, attempt, saves)
    assert page.evaluate(MARKS) == MAX_MARKS
    page.keyboard.press("a")  # the point tool
    page.mouse.click(*at(400, 400))
    _refused_with(page, "at most 300 marks per case")
    assert page.evaluate(MARKS) == MAX_MARKS
    page.evaluate(WATCH_STATUS)
    page.keyboard.press("e")  # any other shape is refused the same way
    page.mouse.move(*at(300, 300))
    page.mouse.down()
    page.mouse.move(*at(420, 380), steps=5)
    page.mouse.up()
    # The same words again: the live region is emptied and refilled, so they are announced
    # again rather than silently left in place.
    page.wait_for_function("() => window.statusTexts.at(-1) !== undefined"
                           " && window.statusTexts.at(-1).startsWith('Mark not added')")
    assert page.evaluate("() => window.statusTexts") == [
        "", "Mark not added: at most 300 marks per case."]
    _refused_with(page, "at most 300 marks per case")
    assert page.evaluate(MARKS) == MAX_MARKS
    page.wait_for_timeout(1_000)  # past the page's 0.4 s save debounce
    assert "not saved" not in page.locator(".save-state").inner_text()
    assert all(len(body.get("marks", [])) == MAX_MARKS for body in saves)
    stored = _stored()
    assert len(stored.marks) == MAX_MARKS and stored.revision == 1


def test_a_polygon_past_the_case_s_polygon_points_is_refused_but_a_point_is_added(
        portal_url, page, trainee, practice):
    # 100 polygons of 200 points: the 20,000 points a case may hold, in 100 of its 300 marks.
    attempt = _preloaded(practice, trainee, lambda image: _polygons(image, 100, 200))
    saves: list[dict] = []
    at = _open(page, portal_url, trainee, attempt, saves)
    assert page.evaluate(MARKS) == 100
    page.keyboard.press("g")  # the freehand polygon
    path = [(600, 600), (700, 620), (750, 700), (680, 780), (590, 730)]
    page.mouse.move(*at(*path[0]))
    page.mouse.down()
    for point in path[1:]:
        page.mouse.move(*at(*point), steps=4)
    page.mouse.up()
    _refused_with(page, f"at most {MAX_MARK_VERTICES} polygon points per case")
    assert page.evaluate(MARKS) == 100

    page.keyboard.press("a")  # a point has no polygon points: it is added and saved
    page.mouse.click(*at(650, 650))
    assert page.evaluate(MARKS) == 101
    assert "Mark not added" not in page.locator(STATUS).inner_text()  # no longer true
    page.wait_for_function(
        "() => document.querySelector('.save-state').textContent.startsWith('saved')")
    stored = _stored()
    assert len(stored.marks) == 101 and stored.marks[-1]["shape"] == "point"
    assert sum(len(m["geometry"].get("points", [])) for m in stored.marks) == MAX_MARK_VERTICES
    assert all(len(body.get("marks", [])) <= 101 for body in saves)
