"""A trainee in Chromium at 1280 x 800: home page, a practice set read through the rendered
pages and submitted, the result page (case list, ROC figure, plain words), case reviews
walked with next / previous, and back home to the latest result."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.auth.roles import Role
from app.cases.models import Case
from app.extensions import db
from app.quizzes.exercises import create_exercise
from app.quizzes.models import Attempt
from tests.conftest import sign_in
from tests.test_results_page import likelihood_case

pytestmark = pytest.mark.browser

LOADED = "() => window.cxrViewer && window.cxrViewer.state().panes[0].fullLoaded"
SAVED = "() => document.querySelector('.save-state').textContent.startsWith('saved')"
SNAKE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")


@pytest.fixture
def practice(app, make_user):
    trainer = make_user(Role.TRAINER, username="expert")
    cases = [likelihood_case(trainer, 900 + n, tb=n == 0) for n in range(3)]
    return create_exercise(title="Likelihood practice", kind="practice",
                           scheme_key="tb_screening", case_ids=[c.id for c in cases],
                           actor=None)


@pytest.fixture
def desk(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def _reads_well(text: str) -> None:
    assert not SNAKE.findall(text), SNAKE.findall(text)
    assert not re.search(r"-?\binf\b|\bnan\b|not defined", text, re.IGNORECASE)


def test_trainee_walks_home_practice_result_reviews_and_back(portal_url, desk, make_user,
                                                            practice):
    page = desk
    trainee = make_user(Role.TRAINEE_RADIOLOGIST, full_name="Dr Amina Otieno")
    sign_in(page, portal_url, trainee.username)
    page.wait_for_url(portal_url + "/home")
    assert page.get_by_role("heading", level=1).inner_text() == "Welcome, Dr Amina Otieno"
    assert "You have no results yet." in page.get_by_test_id("home-recent").inner_text()

    page.get_by_role("link", name="Training", exact=True).click()
    page.get_by_role("row").filter(has_text="Likelihood practice").get_by_role(
        "button", name="Start").click()
    page.wait_for_url("**/attempts/*/1")
    attempt = db.session.scalars(select(Attempt)).one()
    tb = {n: db.session.get(Case, case_id).reference_tb_positive
          for n, case_id in enumerate(attempt.case_order, 1)}
    # Read the first two cases right (TB: likelihood 5; normal: 1); leave the third blank.
    for position in (1, 2):
        if position > 1:
            page.get_by_role("link", name="Next case").click()
            page.wait_for_url(f"**/{position}")
        page.wait_for_function(LOADED)
        if tb[position]:
            page.get_by_label("Abnormal \N{EN DASH} suggestive of TB").check()
            page.get_by_label("5 definitely TB").check()
            page.get_by_label("Cavitary lesion").check()
        else:
            page.get_by_label("Normal", exact=True).check()
            page.get_by_label("1 definitely not TB").check()
        page.wait_for_function(SAVED)
    page.get_by_role("button", name="Submit all answers").click()
    page.wait_for_url("**/summary")  # the unanswered third case is listed before submitting
    assert "Case 3" in page.get_by_test_id("summary-unanswered").inner_text()
    page.get_by_role("button", name="Submit and finish").click()
    page.wait_for_url("**/result")

    # The result: plain words, the case list, the ROC figure drawn (not an empty frame).
    main = page.locator("main")
    _reads_well(main.inner_text())
    rows = page.get_by_test_id("case-row")
    assert rows.count() == 3
    assert "Correct sputum decision" in rows.nth(0).inner_text()
    assert "Not answered (counts as wrong)" in rows.nth(2).inner_text()
    thumbnail = rows.nth(0).locator("img.thumb")
    thumbnail.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=thumbnail.element_handle())
    roc = page.get_by_test_id("roc-figure").locator("img")
    roc.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 100",
                           arg=roc.element_handle())
    box = roc.bounding_box()
    assert box["width"] <= 1280 and box["x"] >= 0

    # Case reviews: read beside reference, the grade in words, next / previous / back.
    page.get_by_role("link", name="Review case 1").click()
    page.wait_for_url("**/review/1")
    page.wait_for_function(LOADED)
    table = page.get_by_test_id("compare-table")
    assert "Your read" in table.inner_text() and "Reference read" in table.inner_text()
    assert "✓ same" in table.inner_text()
    assert page.get_by_test_id("grade-meaning").inner_text().startswith("Grade 1:")
    _reads_well(page.locator(".attempt-panel").inner_text())
    page.get_by_role("link", name="Next case").click()
    page.wait_for_url("**/review/2")
    page.get_by_role("link", name="Next case").click()
    page.wait_for_url("**/review/3")
    assert page.get_by_test_id("grade-meaning").inner_text().startswith("Grade U:")
    assert "✗ differs" in page.get_by_test_id("compare-table").inner_text()
    assert page.get_by_role("link", name="Next case").count() == 0
    page.get_by_role("link", name="Previous case").click()
    page.wait_for_url("**/review/2")
    page.get_by_role("link", name="Back to the result").click()
    page.wait_for_url("**/result")

    # Home again: the latest result, linked.
    page.get_by_role("link", name="Home", exact=True).click()
    page.wait_for_url(portal_url + "/home")
    recent = page.get_by_test_id("home-recent")
    assert "accuracy" in recent.inner_text()
    recent.get_by_role("link", name=re.compile("Likelihood practice")).click()
    page.wait_for_url(f"**/attempts/{attempt.id}/result")
