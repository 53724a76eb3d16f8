"""The training list never offers a Start that would be refused: it says why instead (attempt
limit, cool-down, an exam whose key the trainee has seen). The unanswered rule is stated
before an exam, and the result page counts answered cases as the scoring does."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from bs4 import BeautifulSoup
from freezegun import freeze_time
from sqlalchemy import event

from app.auth.roles import Role
from app.extensions import db
from app.quizzes.answers import save_answer
from app.quizzes.exercises import create_exercise
from app.quizzes.models import Attempt, Exercise
from app.quizzes.services import (
    start_attempt,
    start_refusals,
    submit_attempt,
)
from app.schemes.registry import get_scheme
from bench.exam_data import add_cases, add_exam
from tests.conftest import login
from tests.forms import FormNotFound, find_form, submit_form, submit_html
from tests.keycases import TB_READ, make_key_case

# Near the real time: the signed-in session is from now.
T0 = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
BLANK_RULE = "Unanswered cases count as wrong"


@pytest.fixture
def library(make_user):
    curator = make_user(Role.TRAINER, username="curator")
    return [make_key_case(curator, 700 + n, tb=n % 2 == 0, label=f"c{n}") for n in range(4)]


def _exam(cases, title="Exam", **kwargs):
    return create_exercise(title=title, kind="exam", scheme_key="ds3030",
                           case_ids=[c.id for c in cases], actor=None, **kwargs)


def _take(exercise, user, now=None):
    attempt = start_attempt(exercise, user, now=now)
    for case_id in attempt.case_order:
        save_answer(attempt, user, case_id, TB_READ, [], now=now)
    return submit_attempt(attempt, user, now=now)


def _row(html: str, title: str):
    soup = BeautifulSoup(html, "html.parser")
    exercises = soup.find("h2", string="Exercises").find_next("table")
    [row] = [tr for tr in exercises.select("tbody tr") if tr.find("td").get_text() == title]
    return row


def _start_form(html: str, exercise_id: int):
    return find_form(html, action=f"/training/exercises/{exercise_id}/start")


def _refused_on_the_list(client, exercise) -> str:
    html = client.get("/training/").get_data(as_text=True)
    with pytest.raises(FormNotFound):
        _start_form(html, exercise.id)
    return " ".join(_row(html, exercise.title).get_text().split())


def test_an_exam_with_every_attempt_used_says_so_instead_of_start(client, library, login_as):
    exam = _exam(library[:2], max_attempts=2)
    trainee = login_as(Role.TRAINEE_RADIOLOGIST)
    _take(exam, trainee)
    _take(exam, trainee)
    assert "All 2 attempts used" in _refused_on_the_list(client, exam)


def test_an_exam_cooling_down_says_when_it_opens_again(client, library, login_as):
    exam = _exam(library[:2], max_attempts=3, cooldown_hours=24)
    trainee = login_as(Role.TRAINEE_RADIOLOGIST)
    with freeze_time(T0):
        _take(exam, trainee)
    with freeze_time(T0 + timedelta(hours=2)):
        login(client, trainee.username)  # two hours later: signed in afresh
        row = _refused_on_the_list(client, exam)
    ready = T0 + timedelta(hours=24)
    assert f"Available again on {ready:%Y-%m-%d %H:%M} UTC" in row
    with freeze_time(T0 + timedelta(hours=25)):
        login(client, trainee.username)  # a day later: signed in afresh
        response = submit_form(client, "/training/",
                               action=f"/training/exercises/{exam.id}/start")
    assert response.status_code == 302 and "/training/attempts/" in response.location


def test_an_exam_whose_answers_were_shown_cannot_be_retaken_and_says_so(client, library,
                                                                       login_as):
    exam = _exam(library[:2], max_attempts=3, review={"correctness": "after_submit"})
    trainee = login_as(Role.TRAINEE_RADIOLOGIST)
    _take(exam, trainee)
    assert ("You have seen this exam's answers: it cannot be retaken"
            in _refused_on_the_list(client, exam))
    # The list and the service give the same reason: the rule lives once.
    assert start_refusals([exam], trainee)[exam.id].startswith(
        "You have seen this exam's answers: it cannot be retaken")


def test_an_exercise_that_can_start_starts_from_the_list(client, library, login_as):
    exam = _exam(library[:2], max_attempts=2)
    practice = create_exercise(title="Drill", kind="practice", scheme_key="ds3030",
                               case_ids=[library[2].id], actor=None)
    trainee = login_as(Role.TRAINEE_RADIOLOGIST)
    _take(practice, trainee)  # practice keys may be seen: retaking them is their point
    for exercise in (exam, practice):
        assert exercise.id not in start_refusals([exercise], trainee)
        response = submit_form(client, "/training/",
                               action=f"/training/exercises/{exercise.id}/start")
        assert response.status_code == 302, response.get_data(as_text=True)
        attempt = db.session.get(Attempt, int(response.location.split("/")[-2]))
        assert attempt.exercise_id == exercise.id and attempt.user_id == trainee.id
    html = client.get("/training/").get_data(as_text=True)
    assert _row(html, "Exam").find("button").get_text() == "Resume"


def test_the_list_states_the_unanswered_rule_for_exams(client, library, login_as):
    _exam(library[:2])
    create_exercise(title="Drill", kind="practice", scheme_key="ds3030",
                    case_ids=[library[2].id], actor=None)
    login_as(Role.TRAINEE_RADIOLOGIST)
    html = client.get("/training/").get_data(as_text=True)
    assert BLANK_RULE in _row(html, "Exam").get_text()
    assert BLANK_RULE not in _row(html, "Drill").get_text()


def test_the_exam_case_page_states_the_unanswered_rule_by_the_submit_button(
        client, library, login_as):
    exam = _exam(library[:2])
    login_as(Role.TRAINEE_RADIOLOGIST)
    response = submit_form(client, "/training/", action=f"/training/exercises/{exam.id}/start",
                           follow_redirects=True)
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    rule = soup.select_one('[data-testid="blank-rule"]')
    assert rule is not None and BLANK_RULE in rule.get_text()
    assert "likelihood without a classification" in rule.get_text()
    # Beside the submit control: in the same panel, just before the submit form (which
    # leads to the summary)...
    submit_control = rule.find_next("form")
    assert submit_control["action"].endswith("/summary")
    assert "Submit all answers" in submit_control.get_text()
    # ... and on that summary, just before the form that submits.
    summary = submit_html(client, str(soup), response.request.path, button="Submit all answers")
    soup = BeautifulSoup(summary.get_data(as_text=True), "html.parser")
    rule = soup.select_one('[data-testid="blank-rule"]')
    assert rule is not None and BLANK_RULE in rule.get_text()
    assert rule.find_next("form")["action"].endswith("/submit")


def _statements(client, url: str) -> int:
    sent: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert client.get(url).status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    return len(sent)


def test_the_reasons_cost_no_statements_per_exercise(client, library, login_as):
    """The list already loads each exercise's open attempt and its cases; the reasons add
    a fixed number of statements however many exercises and attempts there are."""
    trainee = login_as(Role.TRAINEE_RADIOLOGIST)
    counts = []
    for n in range(4):
        exam = _exam(library[n:n + 1], title=f"Exam {n}", max_attempts=1,
                     review={"correctness": "after_submit"})
        _take(exam, trainee)
        db.session.expire_all()
        counts.append(_statements(client, "/training/"))
    growth = {b - a for a, b in itertools.pairwise(counts)}
    assert len(growth) == 1 and growth.pop() <= 2, counts  # open_attempt and the cases of each row


def test_a_likelihood_alone_is_not_counted_as_answered_on_the_result_page(
        client, make_user, login_as):
    scheme = get_scheme("tb_screening")
    case_ids = add_cases(2, scheme=scheme, experts=[make_user(Role.TRAINER)], seed=3)
    exam_id = add_exam(case_ids, scheme=scheme, title="Likelihoods",
                       review={"score": "after_submit"})
    trainee = login_as(Role.TRAINEE_RADIOLOGIST)
    exam = db.session.get(Exercise, exam_id)
    attempt = start_attempt(exam, trainee)
    first, second = attempt.case_order
    save_answer(attempt, trainee, first, {"tb_likelihood": 4}, [])
    save_answer(attempt, trainee, second, {"classification": "normal", "tb_likelihood": 1}, [])
    url = f"/training/attempts/{attempt.id}/result"
    assert "1 of 2 cases answered." in client.get(url).get_data(as_text=True)
    submit_attempt(attempt, trainee)
    html = client.get(url).get_data(as_text=True)
    assert "1 of 2 cases answered." in html
    blank = BeautifulSoup(html, "html.parser").select_one('[data-testid="blank-count"]')
    assert blank is not None and blank.get_text().startswith("1 of 2 cases not answered")
