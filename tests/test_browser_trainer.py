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
    expect(desk.locator(".vw-status")).to_have_text("marks changed: Save read stores them")

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


def _published(trainer, seed: int) -> Case:
    from tests.test_attempts import published_tb_case

    case = published_tb_case(trainer, seed)
    db.session.commit()
    return case


def test_trainer_edits_clones_closes_and_deletes_exercises(app, portal_url, desk, trainer,
                                                          make_user):
    import re

    from playwright.sync_api import expect

    from app.quizzes.models import Exercise
    from app.quizzes.services import start_attempt

    cases = [_published(trainer, 500 + n) for n in range(2)]
    manage = f"{portal_url}/training/manage"
    sign_in(desk, portal_url, trainer.username)
    desk.goto(manage)

    # Created with a threshold in %, as the results show it.
    desk.get_by_label("Title").fill("Cavities")
    desk.get_by_label("Kind").select_option("practice")
    desk.get_by_label("Reporting scheme").select_option("ds3030")
    desk.get_by_label(re.compile(rf"^Case {cases[0].id}:")).check()
    desk.get_by_label("Pass: minimum sensitivity").fill("90")
    desk.get_by_role("button", name="Create exercise").click()
    expect(desk.get_by_text("Exercise Cavities created with 1 cases.")).to_be_visible()
    row = desk.locator("tr", has_text="Cavities")
    expect(row).to_contain_text("≥ 90 %")
    [exercise] = db.session.scalars(select(Exercise)).all()
    assert exercise.criteria == [{"metric": "sensitivity", "minimum": 0.9}]

    # Edited: the form shows the % it was given; a share over 100 % is refused with why.
    row.get_by_role("link", name="Edit Cavities").click()
    expect(desk.get_by_label("Pass: minimum sensitivity")).to_have_value("90.0")
    desk.get_by_label("Pass: minimum specificity").fill("150")
    desk.get_by_role("button", name="Save exercise").click()
    expect(desk.get_by_text("Enter a percentage from 0 to 100.")).to_be_visible()
    desk.get_by_label("Title").fill("Cavities and effusions")
    desk.get_by_label("Pass: minimum specificity").fill("80")
    desk.get_by_label(re.compile(rf"^Case {cases[1].id}:")).check()
    desk.get_by_role("button", name="Save exercise").click()
    expect(desk.get_by_text("Exercise Cavities and effusions saved.")).to_be_visible()
    row = desk.locator("tr", has_text="Cavities and effusions").first
    expect(row).to_contain_text("≥ 80 %")

    # Cloned: an unpublished copy, published when ready.
    row.get_by_role("button", name="Clone Cavities and effusions").click()
    copy_row = desk.locator("tr", has_text="Cavities and effusions (copy)")
    expect(copy_row).to_contain_text("not published")
    copy_row.get_by_role("button", name="Publish Cavities and effusions (copy)").click()
    expect(desk.locator("tr", has_text="(copy)")).not_to_contain_text("not published")

    # Once attempted, the page says why it can no longer be edited or deleted.
    db.session.expire_all()
    original = db.session.scalars(select(Exercise).order_by(Exercise.id)).first()
    start_attempt(original, make_user(Role.TRAINEE_RADIOLOGIST))
    desk.reload()
    row = desk.locator(f"tr[data-exercise='{original.id}']")
    expect(row.get_by_test_id("edit-refusal")).to_contain_text(
        "it has been attempted (1 attempt)")
    expect(row.get_by_test_id("delete-refusal")).to_be_visible()
    expect(row.get_by_role("link", name=re.compile("^Edit"))).to_have_count(0)

    # Closed: no new attempts, the list says so.
    row.get_by_role("button", name="Close now: Cavities and effusions").click()
    expect(desk.get_by_text("is closed: no new attempts")).to_be_visible()
    expect(desk.locator(f"tr[data-exercise='{original.id}']")).to_contain_text("closed")

    # The never-attempted copy can be deleted.
    desk.locator("tr", has_text="(copy)").get_by_role(
        "button", name="Delete Cavities and effusions (copy)").click()
    expect(desk.get_by_text("Cavities and effusions (copy) is deleted.")).to_be_visible()
    db.session.expire_all()
    assert [e.title for e in db.session.scalars(select(Exercise))] == ["Cavities and effusions"]


def test_trainer_adds_an_image_quality_read_and_builds_an_image_quality_exercise(
        app, portal_url, desk, trainer):
    import re

    from playwright.sync_api import expect

    from app.cases.reads import reference_for
    from app.quizzes.models import Exercise

    with_read, without = _published(trainer, 520), _published(trainer, 521)
    sign_in(desk, portal_url, trainer.username)
    desk.goto(f"{portal_url}/cases/{with_read.id}")
    desk.get_by_role("link", name="Add image-quality reference read").click()
    _viewer_ready(desk)
    expect(desk.get_by_role("heading", name=re.compile("Image-quality reference read"))) \
        .to_be_visible()
    for fieldset in desk.locator("fieldset.read-criterion").all():
        fieldset.get_by_label("pass").check()
    desk.get_by_label("2 – acceptable").check()  # noqa: RUF001
    desk.get_by_role("button", name="Save read").click()
    desk.wait_for_url(f"{portal_url}/cases/{with_read.id}")
    expect(desk.get_by_role("heading", name="Image-quality reference read")).to_be_visible()
    db.session.expire_all()
    assert reference_for(db.session.get_one(Case, with_read.id),
                         "image_quality").answers["grade"] == "2"

    desk.goto(f"{portal_url}/training/manage")
    desk.get_by_label("Title").fill("Positioning")
    desk.get_by_label("Reporting scheme").select_option("image_quality")
    desk.get_by_label(re.compile(rf"^Case {without.id}:")).check()
    desk.get_by_role("button", name="Create exercise").click()
    expect(desk.get_by_role("alert").filter(has_text="has no image-quality reference read")) \
        .to_be_visible()
    desk.get_by_label(re.compile(rf"^Case {without.id}:")).uncheck()
    desk.get_by_label(re.compile(rf"^Case {with_read.id}:")).check()
    desk.get_by_role("button", name="Create exercise").click()
    expect(desk.get_by_text("Exercise Positioning created with 1 cases.")).to_be_visible()
    [exercise] = db.session.scalars(select(Exercise)).all()
    assert exercise.scheme_key == "image_quality"
