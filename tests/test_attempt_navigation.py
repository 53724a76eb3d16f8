"""Moving through an attempt: the case navigator (answered as the scoring counts it, flagged
for review, the current case), the flag itself, the summary before submitting, the
confirmation before abandoning, and cases named by their place in the attempt only."""

from __future__ import annotations

import json
import re

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select

from app.auth.roles import Role
from app.cases.models import Case
from app.extensions import db
from app.quizzes import navigation
from app.quizzes.answers import save_answer
from app.quizzes.exercises import create_exercise
from app.quizzes.models import Attempt, AttemptAnswer, AttemptState
from app.quizzes.results import answered_cases, score
from app.quizzes.services import start_attempt, submit_attempt
from app.viewer.services import image_urls
from tests.conftest import csrf_token, post_hand_built
from tests.forms import FormNotFound, find_form, submit_form, submit_html
from tests.test_attempts import published_tb_case


@pytest.fixture
def trio(app, make_user) -> list[Case]:
    """Six published TB cases (three for a practice set, three for an exam) whose library
    ids are not 1..3: draft cases come first."""
    trainer = make_user(Role.TRAINER, username="expert")
    for n in range(7):
        db.session.add(Case(source=f"draft {n}"))
    db.session.flush()
    made = [published_tb_case(trainer, 400 + seed) for seed in range(6)]
    db.session.commit()
    assert min(c.id for c in made) > 3
    return made


@pytest.fixture
def practice(trio):
    return create_exercise(title="Drill", kind="practice", scheme_key="ds3030",
                           case_ids=[c.id for c in trio[:3]], actor=None, shuffle=False)


@pytest.fixture
def exam(trio):
    return create_exercise(title="Final exam", kind="exam", scheme_key="ds3030",
                           case_ids=[c.id for c in trio[3:]], actor=None, shuffle=False,
                           time_limit_minutes=30)


def _start(client, exercise) -> Attempt:
    response = submit_form(client, "/training/", action=f"/exercises/{exercise.id}/start")
    assert response.status_code == 302, response.status_code
    return db.session.scalars(select(Attempt).where(Attempt.exercise_id == exercise.id)).one()


def _page(client, attempt: Attempt, position: int) -> BeautifulSoup:
    response = client.get(f"/training/attempts/{attempt.id}/{position}")
    assert response.status_code == 200, response.status_code
    return BeautifulSoup(response.get_data(as_text=True), "html.parser")


def _tiles(soup: BeautifulSoup) -> dict[int, str]:
    return {int(a["data-position"]): a["aria-label"]
            for a in soup.select('[data-testid="case-navigator"] a')}


def _fresh(attempt_id: int) -> Attempt:
    db.session.expire_all()
    return db.session.get_one(Attempt, attempt_id)


# ---- 1. the navigator ------------------------------------------------------------------


def test_tiles_count_answered_as_the_scoring_does(practice, make_user):
    """A likelihood or findings without the overall classification leave the case open,
    as for the score; the tiles and the result's count agree."""
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    attempt = start_attempt(practice, trainee)
    first, second, _third = attempt.case_order
    save_answer(attempt, trainee, first, {"overall": "normal"}, [])
    save_answer(attempt, trainee, second, {"findings": ["cavitary_lesion"]}, [])
    tiles = navigation.tiles(attempt, current=2)
    assert [(t.position, t.answered, t.current) for t in tiles] == [
        (1, True, False), (2, False, True), (3, False, False)]
    assert sum(t.answered for t in tiles) == answered_cases(attempt) == 1
    assert tiles[1].status == "not answered, current case"
    submit_attempt(attempt, trainee)
    result, _ = score(attempt)
    assert answered_cases(attempt, result) == 1  # the scoring's own count agrees


def test_case_page_shows_every_case_as_a_numbered_tile(client, practice, login_as):
    login_as(Role.TRAINEE_RADIOLOGIST)
    attempt = _start(client, practice)
    save_answer(attempt, attempt.user, attempt.case_order[2], {"overall": "abnormal"}, [])
    soup = _page(client, attempt, 2)
    assert _tiles(soup) == {1: "Case 1: not answered", 2: "Case 2: not answered, current case",
                            3: "Case 3: answered"}
    links = soup.select('[data-testid="case-navigator"] a')
    assert [a.get_text(" ", strip=True)[0] for a in links] == ["1", "2", "3"]
    assert [a["href"] for a in links] == [f"/training/attempts/{attempt.id}/{n}"
                                          for n in (1, 2, 3)]
    assert links[1]["aria-current"] == "page" and not links[0].has_attr("aria-current")
    assert "1 of 3 answered" in soup.select_one('[data-testid="answered-count"]').get_text()


def test_autosave_says_whether_the_case_is_now_answered(client, practice, login_as):
    login_as(Role.TRAINEE_RADIOLOGIST)
    attempt = _start(client, practice)
    soup = _page(client, attempt, 1)
    url = soup.select_one("#attempt")["data-save-url"]
    headers = {"X-CSRFToken": csrf_token(client, f"/training/attempts/{attempt.id}/1")}
    likelihood_only = client.post(url, json={"answers": {"findings": ["cavitary_lesion"]}},
                                  headers=headers)
    assert likelihood_only.get_json()["answered"] is False
    classified = client.post(url, json={"answers": {"overall": "normal"}}, headers=headers)
    assert classified.get_json()["answered"] is True
    assert classified.get_json()["position"] == 1


# ---- the flag --------------------------------------------------------------------------


def test_flag_for_review_without_script_persists_and_shows_on_the_tile(client, practice,
                                                                       login_as):
    login_as(Role.TRAINEE_RADIOLOGIST)
    attempt = _start(client, practice)
    flagged = submit_form(client, f"/training/attempts/{attempt.id}/2",
                          button="Flag for review")
    assert flagged.status_code == 302
    assert flagged.headers["Location"].endswith(f"/training/attempts/{attempt.id}/2")
    [answer] = _fresh(attempt.id).answers
    assert (answer.case_id, answer.flagged, answer.answers) == (attempt.case_order[1], True, {})
    soup = _page(client, attempt, 2)
    assert _tiles(soup)[2] == "Case 2: not answered, flagged for review, current case"
    button = soup.select_one('[data-testid="flag"]')
    assert button["aria-pressed"] == "true"
    assert _tiles(_page(client, attempt, 1))[2] == "Case 2: not answered, flagged for review"
    # The same button clears it; an answer saved in between keeps the flag.
    save_answer(_fresh(attempt.id), attempt.user, attempt.case_order[1], {"overall": "normal"},
                [])
    assert _fresh(attempt.id).answers[0].flagged is True
    cleared = submit_form(client, f"/training/attempts/{attempt.id}/2",
                          button="Flagged for review: remove the flag")
    assert cleared.status_code == 302
    [answer] = _fresh(attempt.id).answers
    assert answer.flagged is False and answer.answers == {"overall": "normal"}
    assert _tiles(_page(client, attempt, 2))[2] == "Case 2: answered, current case"


def test_the_page_script_gets_the_flag_as_json(client, practice, login_as):
    login_as(Role.TRAINEE_RADIOLOGIST)
    attempt = _start(client, practice)
    response = submit_form(client, f"/training/attempts/{attempt.id}/3",
                           button="Flag for review", headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.get_json() == {"position": 3, "flagged": True}


def test_bad_flags_are_refused_with_a_reason_and_nothing_written(client, practice, make_user,
                                                                 login_as):
    login_as(Role.TRAINEE_RADIOLOGIST)
    attempt = _start(client, practice)
    page = f"/training/attempts/{attempt.id}/1"
    # Deliberately hand-built: values and places no page offers.
    forged = post_hand_built(client, f"{page}/flag", {"flagged": "maybe"}, page=page)
    assert forged.status_code == 400
    assert "flagged=1" in forged.get_data(as_text=True)
    missing = post_hand_built(client, f"{page}/flag", {}, page=page)
    assert missing.status_code == 400
    for position in (0, 4):
        outside = post_hand_built(client, f"/training/attempts/{attempt.id}/{position}/flag",
                                  {"flagged": "1"}, page=page)
        assert outside.status_code == 404
        assert "no such case in this attempt" in outside.get_data(as_text=True)
    no_token = client.post(f"{page}/flag", data={"flagged": "1"})
    assert no_token.status_code == 400
    other = make_user(Role.TRAINEE_RADIOLOGIST)
    theirs = start_attempt(practice, other)
    stolen = post_hand_built(client, f"/training/attempts/{theirs.id}/1/flag",
                             {"flagged": "1"}, page=page)
    assert stolen.status_code == 404
    assert db.session.scalars(select(AttemptAnswer)).all() == []
    # An ended attempt: the page's button leads to its result, the script is told it ended.
    html = client.get(page).get_data(as_text=True)
    submit_attempt(_fresh(attempt.id), attempt.user)
    late = submit_html(client, html, page, button="Flag for review")
    assert late.status_code == 302 and late.headers["Location"].endswith("/result")
    late_json = submit_html(client, html, page, button="Flag for review",
                            headers={"Accept": "application/json"})
    assert late_json.status_code == 409 and late_json.get_json()["ended"] is True
    assert db.session.scalars(select(AttemptAnswer)).all() == []


# ---- 3. the summary before submitting, the confirmation before abandoning ---------------


def test_submit_goes_through_a_summary_of_unanswered_and_flagged_cases(client, exam, login_as):
    login_as(Role.TRAINEE_RADIOLOGIST)
    attempt = _start(client, exam)
    save_answer(attempt, attempt.user, attempt.case_order[0], {"overall": "abnormal"}, [])
    submit_form(client, f"/training/attempts/{attempt.id}/1", button="Flag for review")
    submit_form(client, f"/training/attempts/{attempt.id}/3", button="Flag for review")
    summary = submit_form(client, f"/training/attempts/{attempt.id}/2",
                          button="Submit all answers")
    assert summary.status_code == 200 and summary.request.path.endswith("/summary")
    assert _fresh(attempt.id).state == AttemptState.IN_PROGRESS.value  # nothing ended yet
    soup = BeautifulSoup(summary.get_data(as_text=True), "html.parser")
    assert "1 of 3 cases answered" in soup.select_one('[data-testid="summary-answered"]').text

    def listed(testid: str) -> list[tuple[str, str]]:
        return [(a.get_text(strip=True), a["href"])
                for a in soup.select(f'[data-testid="{testid}"] a')]

    base = f"/training/attempts/{attempt.id}"
    assert listed("summary-unanswered") == [("Case 2", f"{base}/2"), ("Case 3", f"{base}/3")]
    assert listed("summary-flagged") == [("Case 1", f"{base}/1"), ("Case 3", f"{base}/3")]
    assert "Unanswered cases count as wrong" in soup.select_one('[data-testid="blank-rule"]').text
    done = submit_html(client, str(soup), f"{base}/summary", button="Submit and finish")
    assert done.status_code == 302 and done.headers["Location"].endswith(f"{base}/result")
    assert _fresh(attempt.id).state == AttemptState.SUBMITTED.value


def test_a_submit_without_the_confirmation_is_refused_and_ends_nothing(client, exam, login_as,
                                                                        make_user):
    login_as(Role.TRAINEE_RADIOLOGIST)
    attempt = _start(client, exam)
    base = f"/training/attempts/{attempt.id}"
    # Deliberately hand-built: the old one-click submit, without the summary's confirmation.
    refused = post_hand_built(client, f"{base}/submit", {}, page=f"{base}/1")
    assert refused.status_code == 400 and "Submit and finish" in refused.get_data(as_text=True)
    assert _fresh(attempt.id).state == AttemptState.IN_PROGRESS.value
    # Another trainee's attempt: no summary, no submit.
    theirs = start_attempt(exam, make_user(Role.TRAINEE_RADIOLOGIST))
    assert client.get(f"/training/attempts/{theirs.id}/summary").status_code == 404
    stolen = post_hand_built(client, f"/training/attempts/{theirs.id}/submit",
                             {"confirm": "yes"}, page=f"{base}/summary")
    assert stolen.status_code == 404
    assert _fresh(theirs.id).state == AttemptState.IN_PROGRESS.value
    # A summary left open in a second tab after the attempt ended: its result, unchanged.
    html = client.get(f"{base}/summary").get_data(as_text=True)
    submit_attempt(_fresh(attempt.id), attempt.user)
    ended_at = _fresh(attempt.id).ended_at
    again = submit_html(client, html, f"{base}/summary", button="Submit and finish",
                        follow_redirects=True)
    assert again.status_code == 200 and again.request.path == f"{base}/result"
    assert "already ended" in again.get_data(as_text=True)
    assert _fresh(attempt.id).ended_at == ended_at
    assert client.get(f"{base}/summary").headers["Location"].endswith(f"{base}/result")


def test_abandoning_a_practice_attempt_is_confirmed_first(client, practice, exam, login_as):
    login_as(Role.TRAINEE_RADIOLOGIST)
    attempt = _start(client, practice)
    base = f"/training/attempts/{attempt.id}"
    page = client.get(f"{base}/2").get_data(as_text=True)
    with pytest.raises(FormNotFound):  # no one-click abandon on the case page
        find_form(page, action="/abandon")
    link = BeautifulSoup(page, "html.parser").find("a", string="Abandon this practice attempt")
    confirmation = client.get(link["href"])
    assert confirmation.status_code == 200
    assert _fresh(attempt.id).state == AttemptState.IN_PROGRESS.value
    html = confirmation.get_data(as_text=True)
    back = BeautifulSoup(html, "html.parser").find("a", string="Back to case 2")
    assert back["href"] == f"{base}/2"
    # Deliberately hand-built: the final POST without the confirmation page's field.
    refused = post_hand_built(client, f"{base}/abandon", {}, page=link["href"])
    assert refused.status_code == 400
    assert _fresh(attempt.id).state == AttemptState.IN_PROGRESS.value
    done = submit_html(client, html, link["href"], button="Abandon this attempt")
    assert done.status_code == 302 and done.headers["Location"].endswith("/training/")
    assert _fresh(attempt.id).state == AttemptState.ABANDONED.value
    # Exams are not abandoned: not even the confirmation page.
    exam_attempt = _start(client, exam)
    assert "Abandon" not in client.get(f"/training/attempts/{exam_attempt.id}/1").get_data(
        as_text=True)
    refused_exam = client.get(f"/training/attempts/{exam_attempt.id}/abandon")
    assert refused_exam.status_code == 409
    assert "cannot be abandoned" in refused_exam.get_data(as_text=True)


# ---- 5. no library case id on a trainee's page ------------------------------------------


def _urls(html: str) -> list[str]:
    soup = BeautifulSoup(html, "html.parser")
    found = []
    for tag in soup.find_all(True):
        for name, value in tag.attrs.items():
            if name in ("href", "src", "action", "formaction") or name.endswith("-url"):
                found.append(str(value))
    return found


def test_a_trainee_page_names_cases_by_position_never_by_library_id(client, practice,
                                                                   login_as):
    login_as(Role.TRAINEE_RADIOLOGIST)
    attempt = _start(client, practice)
    library_ids = {str(case_id) for case_id in attempt.case_order}
    assert library_ids.isdisjoint({"1", "2", "3"})
    base = f"/training/attempts/{attempt.id}"
    for position in (1, 2, 3):
        html = client.get(f"{base}/{position}").get_data(as_text=True)
        payload_text = BeautifulSoup(html, "html.parser").select_one("#viewer-data").string
        payload = json.loads(payload_text)
        assert payload["case"] == {"position": position, "title": f"Case {position}"}
        for url in _urls(html) + payload.get("prefetch", []) + [
                u for image in payload["images"] for u in image_urls(image)]:
            numbers = set(re.findall(r"\d+", url.split("?")[0]))
            assert numbers.isdisjoint(library_ids), url
            assert not re.search(r"/cases/\d", url), url  # images: /cases/images/<image id>
        image_ids = {image.id for case_id in attempt.case_order
                     for image in db.session.get_one(Case, case_id).images}
        assert {image["id"] for image in payload["images"]} <= image_ids
        for case_id in library_ids:
            assert not re.search(rf'"id": ?{case_id}\b', payload_text)
            assert f"/cases/{case_id}" not in html
        _assert_no_library_id(html, library_ids)
        save_url = BeautifulSoup(html, "html.parser").select_one("#attempt")["data-save-url"]
        saved = client.post(save_url, json={"answers": {"overall": "normal"}},
                            headers={"X-CSRFToken": csrf_token(client, f"{base}/{position}")})
        assert saved.status_code == 200
        # Every field but the clock time, whose digits may equal a case id by chance.
        reply = {k: v for k, v in saved.get_json().items() if k != "saved_at"}
        assert library_ids.isdisjoint(re.findall(r"\d+", json.dumps(reply)))
    summary = client.get(f"{base}/summary").get_data(as_text=True)
    for url in _urls(summary):
        assert library_ids.isdisjoint(re.findall(r"\d+", url.split("?")[0])), url
    # The server keeps the mapping: position 2 saved the library's second case.
    saved = {a.case_id: a.answers for a in _fresh(attempt.id).answers}
    assert saved == {case_id: {"overall": "normal"} for case_id in attempt.case_order}
    # The review in the viewer after the attempt, and the result, name positions too.
    submit_attempt(_fresh(attempt.id), attempt.user)
    for url in [f"{base}/review/{n}" for n in (1, 2, 3)] + [f"{base}/result"]:
        html = client.get(url).get_data(as_text=True)
        _assert_no_library_id(html, library_ids)


def _assert_no_library_id(html: str, library_ids: set[str]) -> None:
    """No URL of the page, no viewer data and no text names a case by its library id."""
    soup = BeautifulSoup(html, "html.parser")
    for url in _urls(html):
        assert library_ids.isdisjoint(re.findall(r"\d+", url.split("?")[0])), url
    data = soup.select_one("#viewer-data")
    if data is not None:
        payload = json.loads(data.string)
        assert set(payload["case"]) == {"position", "title"}, payload["case"]
    for case_id in library_ids:
        assert not re.search(rf'"id": ?{case_id}\b', html)
        assert not re.search(rf"\bCase {case_id}\b", soup.get_text(" ")), case_id

