"""Answers are never lost in Chromium: a save that fails (a 500, a dropped connection) keeps
the answer on the page and on the device, leaving or submitting asks first, a reload puts it
back, and once the network is back the database holds it. Without script the case pages
still lead from case to case and to the submission."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.auth.roles import Role
from app.extensions import db
from app.quizzes.models import Attempt, AttemptAnswer, AttemptState
from tests.conftest import PASSWORD, sign_in
from tests.test_browser_attempt import exercise  # noqa: F401 (fixture)

pytestmark = pytest.mark.browser

LOADED = "() => window.cxrViewer && window.cxrViewer.state().panes[0].fullLoaded"
SAVED = "() => document.querySelector('.save-state').textContent.startsWith('saved')"
RETRYING = ("() => document.querySelector('.save-state').textContent"
            ".startsWith('not saved — retrying')")
KEPT = "() => Object.keys(localStorage).filter((k) => k.startsWith('cxr-academy:unsaved:'))"


def _server_error(route):
    route.fulfill(status=500, content_type="text/html", body="<h1>Internal Server Error</h1>")


def _dropped(route):
    route.abort("connectionreset")


def _stored_answers(attempt_id: int) -> dict[int, dict]:
    """{case id: answers} as the database holds them now."""
    db.session.expire_all()
    return {a.case_id: a.answers for a in db.session.scalars(
        select(AttemptAnswer).where(AttemptAnswer.attempt_id == attempt_id)) if a.answers}


@pytest.fixture
def reading(portal_url, page, make_user, exercise):  # noqa: F811 (fixture)
    """A trainee at the first case of a started practice attempt: (page, attempt)."""
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    sign_in(page, portal_url, trainee.username)
    page.get_by_role("link", name="Training", exact=True).click()
    page.get_by_role("button", name="Start").click()
    page.wait_for_function(LOADED)
    return page, db.session.scalars(select(Attempt)).one()


def _questions(page) -> list[str]:
    """Dialogs the page opens are answered "Cancel" (Playwright's default) and listed."""
    asked: list[str] = []

    def answer(dialog):
        asked.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", answer)
    return asked


def test_a_failed_save_keeps_the_trainee_on_the_case_until_the_server_has_it(reading):
    """Saves answered with a 500: "Next case" asks before leaving; staying (Cancel) keeps
    the answer, which is saved by the retries once the server answers again."""
    page, attempt = reading
    asked = _questions(page)
    page.route("**/answer", _server_error)
    page.get_by_label("Abnormal").check()
    page.wait_for_function(RETRYING)
    state = page.get_by_test_id("save-state")
    assert state.get_attribute("aria-live") == "polite" and state.get_attribute("role") == "status"
    assert _stored_answers(attempt.id) == {}
    kept = page.evaluate(KEPT)
    assert kept == [f"cxr-academy:unsaved:{attempt.id}:1"]
    entry = json.loads(page.evaluate("(k) => localStorage.getItem(k)", kept[0]))
    assert entry == {"answers": {"overall": "abnormal"}, "marks": [], "revision": 0}

    page.get_by_role("link", name="Next case").click()
    page.wait_for_timeout(500)
    assert len(asked) == 1 and "not saved" in asked[0]
    assert page.url.endswith(f"/attempts/{attempt.id}/1")  # stayed on the case
    assert page.get_by_label("Abnormal").is_checked()

    page.unroute("**/answer", _server_error)  # the server answers again: the retries save it
    page.wait_for_function(SAVED, timeout=40_000)
    assert _stored_answers(attempt.id) == {attempt.case_order[0]: {"overall": "abnormal"}}
    assert page.evaluate(KEPT) == []
    page.get_by_role("link", name="Next case").click()
    page.wait_for_url("**/2")
    assert len(asked) == 1  # acknowledged: no question this time


def test_an_answer_left_behind_on_purpose_is_sent_from_the_next_case(reading):
    """The trainee confirms leaving a case whose save failed: the next case's page sends
    the kept answer once the server answers again."""
    page, attempt = reading
    page.on("dialog", lambda dialog: dialog.accept())  # "leave anyway?": yes
    page.route("**/answer", _server_error)
    page.get_by_label("Abnormal").check()
    page.wait_for_function(RETRYING)
    page.get_by_role("link", name="Next case").click()
    page.wait_for_url("**/2")
    page.wait_for_function(LOADED)
    assert _stored_answers(attempt.id) == {}
    page.unroute("**/answer", _server_error)
    page.wait_for_function(f"() => ({KEPT})().length === 0", timeout=40_000)
    assert _stored_answers(attempt.id) == {attempt.case_order[0]: {"overall": "abnormal"}}


def test_submitting_with_a_dropped_connection_asks_and_the_summary_sends_the_answer(reading):
    """The connection drops (aborted requests) before "Submit all answers": the page asks;
    going on anyway keeps the answer on the device, the summary sends it when the network
    is back, and the submitted attempt scores it; nothing is left on the device."""
    page, attempt = reading
    asked: list[str] = []

    def answer(dialog):
        asked.append(dialog.message)
        if len(asked) == 1:
            dialog.dismiss()  # first: stay
        else:
            dialog.accept()  # then: go to the summary anyway

    page.on("dialog", answer)
    page.route("**/answer", _dropped)
    page.get_by_label("Normal").first.check()
    page.wait_for_function(RETRYING)
    page.get_by_role("button", name="Submit all answers").click()
    page.wait_for_timeout(500)
    assert len(asked) == 1 and page.url.endswith("/1")
    page.get_by_role("button", name="Submit all answers").click()
    page.wait_for_url("**/summary")
    assert len(asked) == 2
    unsaved = page.get_by_test_id("unsaved-state")
    unsaved.wait_for()
    assert "case 1" in unsaved.inner_text() and unsaved.get_attribute("aria-live") == "polite"
    assert _stored_answers(attempt.id) == {}

    page.unroute("**/answer", _dropped)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=unsaved-state]').hidden", timeout=40_000)
    assert _stored_answers(attempt.id) == {attempt.case_order[0]: {"overall": "normal"}}
    assert "1 of 2 cases answered" in page.get_by_test_id("summary-answered").inner_text()
    assert page.evaluate(KEPT) == []
    # An answer another tab still keeps for this attempt is of no use once it has ended.
    page.evaluate(f"() => localStorage.setItem('cxr-academy:unsaved:{attempt.id}:2', "
                  "JSON.stringify({answers: {}, marks: [], revision: 0}))")
    page.route("**/answer", _dropped)
    page.get_by_role("button", name="Submit and finish").click()
    page.wait_for_url("**/result")
    assert len(asked) == 3 and "case 2 is not saved" in asked[2]  # accepted: submitted
    db.session.expire_all()
    assert db.session.get(Attempt, attempt.id).state == AttemptState.SUBMITTED.value
    assert page.evaluate(KEPT) == []


def test_a_reload_after_a_failed_save_puts_the_answer_back_and_sends_it(reading):
    page, attempt = reading
    page.on("dialog", lambda dialog: dialog.accept())  # "leave the page?": yes, reload
    page.route("**/answer", _dropped)
    page.get_by_label("Abnormal").check()
    page.get_by_label("Cavitary lesion").check()
    page.wait_for_function(RETRYING)
    page.reload()
    page.wait_for_function(LOADED)
    assert page.get_by_label("Abnormal").is_checked()  # from this device, not the server
    assert page.get_by_label("Cavitary lesion").is_checked()
    page.wait_for_function(RETRYING)
    assert _stored_answers(attempt.id) == {}
    page.unroute("**/answer", _dropped)
    page.wait_for_function(SAVED, timeout=40_000)
    assert _stored_answers(attempt.id) == {
        attempt.case_order[0]: {"overall": "abnormal", "findings": ["cavitary_lesion"]}}
    assert page.evaluate(KEPT) == []


def test_an_answer_saved_in_another_tab_wins_and_the_trainee_is_told(reading):
    """Two tabs show the same case; the first saves an answer; the second, still showing
    the older one, changes it: its save is refused (stale), it reloads the newer answer
    and says so in its live region."""
    page, attempt = reading
    other = page.context.new_page()
    other.goto(page.url)
    other.wait_for_function(LOADED)
    page.get_by_label("Abnormal").check()
    page.wait_for_function(SAVED)
    other.get_by_label("Normal").first.check()
    other.wait_for_function(
        "() => document.querySelector('.save-state').textContent.includes('another window')")
    assert other.get_by_label("Abnormal").is_checked()  # the newer answer, reloaded
    assert _stored_answers(attempt.id) == {attempt.case_order[0]: {"overall": "abnormal"}}
    assert other.evaluate(KEPT) == []
    other.close()


def test_without_script_the_cases_lead_to_the_submission(browser, portal_url, make_user,
                                                         exercise):  # noqa: F811 (fixture)
    """Script off: the case page shows its links and forms, "Next case" and "Submit all
    answers" lead on, and the summary's button submits."""
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, portal_url, trainee.username, PASSWORD)
        page.goto(portal_url + "/training/")
        page.get_by_role("button", name="Start").click()
        page.wait_for_url("**/1")
        page.get_by_role("link", name="Next case").click()
        page.wait_for_url("**/2")
        page.get_by_role("button", name="Submit all answers").click()
        page.wait_for_url("**/summary?")  # a plain GET form: an empty query
        assert page.get_by_test_id("unsaved-state").is_hidden()
        page.get_by_role("button", name="Submit and finish").click()
        page.wait_for_url("**/result")
    finally:
        context.close()
    db.session.expire_all()
    assert db.session.scalars(select(Attempt)).one().state == AttemptState.SUBMITTED.value
