"""A trainer's work in Chromium at 1280x800, through the rendered pages: the reference read on
one page, exercises edited, cloned, closed and deleted, pass criteria in %, image-quality
exercises."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.auth.roles import Role
from app.cases.ingest import ImportOptions, Source, import_files
from app.cases.models import Case, ReferenceRead
from app.extensions import db
from tests.conftest import sign_in
from tests.dicom_factory import cr_dataset, to_bytes

pytestmark = pytest.mark.browser


@pytest.fixture
def desk(browser):
    """A trainer's desktop: 1280x800."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def trainer(make_user):
    return make_user(Role.TRAINER)


def _import(actor, seed: int) -> Case:
    data = to_bytes(cr_dataset(seed=seed, rows=300, columns=240))
    [result] = import_files([Source(f"{seed}.dcm", lambda: data)], actor=actor,
                            options=ImportOptions()).results
    return db.session.get_one(Case, result.case_id)


def _viewer_ready(page) -> dict:
    page.wait_for_function(
        "() => window.cxrViewer && window.cxrViewer.state().panes[0].fullLoaded",
        timeout=30_000)
    return page.evaluate("() => window.cxrViewer.state()")


def test_trainer_draws_a_mark_fills_the_form_and_saves_once(app, portal_url, desk, trainer):
    from playwright.sync_api import expect

    case = _import(trainer, 21)
    case_url = f"{portal_url}/cases/{case.id}"
    sign_in(desk, portal_url, trainer.username)
    desk.goto(case_url)
    desk.get_by_role("link", name="Write the reference read").click()
    state = _viewer_ready(desk)

    # An ellipse drawn on the image, its finding chosen in the viewer.
    desk.locator(".vw-label").select_option(label="Cavitary lesion")
    desk.get_by_role("button", name="Ellipse").click()
    box = desk.locator(".pane-overlay").first.bounding_box()
    view = state["panes"][0]["view"]

    def screen(x: float, y: float) -> tuple[float, float]:
        return (box["x"] + x * view["scale"] + view["tx"],
                box["y"] + y * view["scale"] + view["ty"])

    desk.mouse.move(*screen(60, 80))
    desk.mouse.down()
    desk.mouse.move(*screen(140, 160), steps=6)
    desk.mouse.up()
    [drawn] = desk.evaluate("() => window.cxrViewer.state().marks")
    assert drawn["finding"] == "cavitary_lesion" and drawn["shape"] == "ellipse"

    # The form beside it, and one Save for both.
    desk.get_by_label("Abnormal", exact=True).check()
    desk.get_by_label("Cavitary lesion", exact=True).check()
    expect(desk.get_by_role("button", name="Save marks")).to_have_count(0)
    desk.get_by_role("button", name="Save read").click()
    desk.wait_for_url(case_url)
    expect(desk.get_by_text("Your read and its marks are saved.")).to_be_visible()
    expect(desk.get_by_text("1 lesion mark")).to_be_visible()
    [read] = db.session.scalars(select(ReferenceRead)).all()
    assert read.answers == {"overall": "abnormal", "findings": ["cavitary_lesion"]}
    assert len(read.marks) == 1

    # Reloaded: the answers in the form and the mark in the viewer, ready to edit.
    desk.get_by_role("link", name="Edit my read").click()
    state = _viewer_ready(desk)
    [loaded] = state["marks"]
    assert loaded["geometry"] == pytest.approx(drawn["geometry"], abs=0.11)
    expect(desk.get_by_label("Abnormal", exact=True)).to_be_checked()
    expect(desk.get_by_label("Cavitary lesion", exact=True)).to_be_checked()
    expect(desk.get_by_role("button", name="Ellipse")).to_be_visible()
