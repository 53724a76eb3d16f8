"""Answer keys never reach a trainee before review allows it: exams and practice sets share
no case, an open attempt opens only its own cases, "after the exercise closes" needs a
closing date and nobody starts an exam whose key they have seen, every figure and table
obeys the review settings, and reading a case page changes nothing."""

from __future__ import annotations

import ast
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time
from sqlalchemy import func, select

from app.auth.roles import Role
from app.cases.models import Case
from app.extensions import db
from app.quizzes.answers import save_answer
from app.quizzes.exercises import create_exercise
from app.quizzes.models import Attempt, AttemptAnswer, AttemptState, Exercise
from app.quizzes.services import (
    AttemptError,
    start_attempt,
    submit_attempt,
)
from tests.forms import submit_form
from tests.keycases import TB_READ, make_key_case

APP = Path(__file__).resolve().parent.parent / "app"
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def curator(make_user):
    return make_user(Role.TRAINER, username="curator")


@pytest.fixture
def library(curator):
    """Six published cases (TB, normal, alternating) and one exam-bank case."""
    cases = [make_key_case(curator, 500 + n, tb=n % 2 == 0, label=f"case{n}") for n in range(6)]
    bank = make_key_case(curator, 520, tb=True, label="bank", exam_bank=True)
    return cases, bank


def _exercise_count() -> int:
    return db.session.scalar(select(func.count(Exercise.id)))


def _take(exercise, user, answers=TB_READ, now=None):
    attempt = start_attempt(exercise, user, now=now)
    for case_id in attempt.case_order:
        save_answer(attempt, user, case_id, answers, [], now=now)
    return submit_attempt(attempt, user, now=now)


# ---- 1. exams and practice sets never share a case ---------------------------------------


def test_a_practice_set_refuses_a_case_that_is_in_an_exam(library):
    cases, bank = library
    create_exercise(title="Exam", kind="exam", scheme_key="ds3030",
                    case_ids=[cases[0].id, cases[1].id], actor=None)
    before = _exercise_count()
    with pytest.raises(AttemptError, match=f"case {cases[1].id} is in the exam 'Exam'") as err:
        create_exercise(title="Practice", kind="practice", scheme_key="ds3030",
                        case_ids=[cases[2].id, cases[1].id], actor=None)
    assert err.value.status == 409
    db.session.rollback()
    with pytest.raises(AttemptError, match="exam bank"):
        create_exercise(title="Practice", kind="practice", scheme_key="ds3030",
                        case_ids=[bank.id], actor=None)
    db.session.rollback()
    assert _exercise_count() == before  # nothing half-written


def test_an_exam_refuses_a_case_that_is_in_a_practice_set(library):
    cases, _ = library
    create_exercise(title="Drill", kind="practice", scheme_key="ds3030",
                    case_ids=[cases[0].id], actor=None)
    with pytest.raises(AttemptError, match=f"case {cases[0].id} is in the practice set 'Drill'"):
        create_exercise(title="Exam", kind="exam", scheme_key="ds3030",
                        case_ids=[cases[1].id, cases[0].id], actor=None)
    db.session.rollback()
    assert _exercise_count() == 1
    # Exams may share cases with each other (a resit, a renewal exam).
    create_exercise(title="Exam", kind="exam", scheme_key="ds3030", case_ids=[cases[1].id],
                    actor=None)
    create_exercise(title="Renewal", kind="exam", scheme_key="ds3030", case_ids=[cases[1].id],
                    actor=None)


def test_the_exercise_form_refuses_a_practice_set_with_an_exam_case(client, library,
                                                                   login_as):
    cases, _ = library
    create_exercise(title="Exam", kind="exam", scheme_key="ds3030", case_ids=[cases[0].id],
                    actor=None)
    login_as(Role.TRAINER)
    page = client.get("/training/manage").get_data(as_text=True)
    assert re.search(rf"Case {cases[0].id}: [^<]* · in an exam", page)  # said up front
    response = submit_form(client, "/training/manage", button="Create exercise", fields={
        "title": "Leaky practice", "kind": "practice", "scheme": "ds3030",
        "cases": [cases[0].id, cases[2].id]})
    assert response.status_code == 409
    assert f"Case {cases[0].id} is in the exam" in response.get_data(as_text=True)
    assert _exercise_count() == 1


def test_drawing_by_rule_keeps_practice_sets_and_exams_apart(client, library, login_as):
    cases, bank = library
    exam_ids = {cases[0].id, cases[1].id}
    create_exercise(title="Exam", kind="exam", scheme_key="ds3030", case_ids=sorted(exam_ids),
                    actor=None)
    login_as(Role.TRAINER)
    # Every case a practice set may take: the four not in the exam nor the bank.
    drawn = submit_form(client, "/training/manage", button="Create exercise", fields={
        "title": "Drawn practice", "kind": "practice", "scheme": "ds3030", "rule_total": "4"})
    assert drawn.status_code == 302, drawn.get_data(as_text=True)
    practice = db.session.scalars(select(Exercise).where(Exercise.title == "Drawn practice")).one()
    practice_ids = {link.case_id for link in practice.cases}
    assert practice_ids == {c.id for c in cases} - exam_ids
    short = submit_form(client, "/training/manage", button="Create exercise", fields={
        "title": "Too many", "kind": "practice", "scheme": "ds3030", "rule_total": "5"})
    assert short.status_code == 400 and "needed" in short.get_data(as_text=True)
    # An exam drawn by rule takes the exam and bank cases, never a practice set's.
    exam = submit_form(client, "/training/manage", button="Create exercise", fields={
        "title": "Drawn exam", "kind": "exam", "scheme": "ds3030", "rule_total": "3"})
    assert exam.status_code == 302, exam.get_data(as_text=True)
    drawn_exam = db.session.scalars(select(Exercise).where(Exercise.title == "Drawn exam")).one()
    assert {link.case_id for link in drawn_exam.cases} == exam_ids | {bank.id}


def test_selection_by_rule_for_each_kind(library):
    from app.quizzes.selection import CaseRule, SelectionError, select_cases

    cases, bank = library
    create_exercise(title="Drill", kind="practice", scheme_key="ds3030",
                    case_ids=[cases[0].id, cases[1].id], actor=None)
    assert set(select_cases(CaseRule(total=5, kind="exam"))) == (
        {c.id for c in cases[2:]} | {bank.id})
    with pytest.raises(SelectionError):
        select_cases(CaseRule(total=6, kind="exam"))
    # Given candidates (the demo's loaded cases) are filtered the same way.
    everything = db.session.scalars(select(Case)).all()
    assert set(select_cases(CaseRule(total=6, kind="practice"), candidates=everything)) == {
        c.id for c in cases}


def test_cli_refuses_a_practice_set_with_an_exam_case(app, library):
    cases, _ = library
    runner = app.test_cli_runner()
    made = runner.invoke(args=["quizzes", "create-exercise", "--title", "Exam", "--kind", "exam",
                               "--case", str(cases[0].id)])
    assert made.exit_code == 0, made.output
    refused = runner.invoke(args=["quizzes", "create-exercise", "--title", "P", "--case",
                                  str(cases[1].id), "--case", str(cases[0].id)])
    assert refused.exit_code != 0
    assert f"case {cases[0].id} is in the exam 'Exam'" in refused.output
    assert _exercise_count() == 1


def test_exam_bank_flag_is_refused_for_a_case_in_a_practice_set(client, library, login_as):
    cases, _ = library
    create_exercise(title="Drill", kind="practice", scheme_key="ds3030",
                    case_ids=[cases[0].id], actor=None)
    login_as(Role.TRAINER)
    response = submit_form(client, f"/cases/{cases[0].id}", button="Save",
                           fields={"exam_bank": True, "teaching_notes": "changed"})
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "cannot join the exam bank: it is in the practice set &#39;Drill&#39;" in page
    db.session.expire_all()
    case = db.session.get(Case, cases[0].id)
    assert case.exam_bank is False and case.teaching_notes != "changed"  # nothing written
    # A case in no practice set joins the bank.
    ok = submit_form(client, f"/cases/{cases[1].id}", button="Save",
                     fields={"exam_bank": True})
    assert ok.status_code == 302
    db.session.expire_all()
    assert db.session.get(Case, cases[1].id).exam_bank is True


def test_exam_bank_service_refuses_all_or_nothing(library):
    from app.cases.services import CaseError, put_in_exam_bank

    cases, _ = library
    create_exercise(title="Drill", kind="practice", scheme_key="ds3030",
                    case_ids=[cases[3].id], actor=None)
    chosen = [db.session.get(Case, c.id) for c in (cases[2], cases[3])]
    with pytest.raises(CaseError, match="practice set 'Drill'"):
        put_in_exam_bank(chosen, actor=None)
    db.session.rollback()
    assert [db.session.get(Case, c.id).exam_bank for c in (cases[2], cases[3])] == [False, False]


def test_import_library_refuses_to_bank_a_present_case_that_is_in_a_practice_set(
        app, tmp_path, library):
    import shutil

    from app.cases.library_files import load_library
    from tests.test_library_files import LIBRARY

    folder = tmp_path / "lib"
    (folder / "cases").mkdir(parents=True)
    shutil.copy(LIBRARY / "cases" / "phantom-normal-1.json", folder / "cases")
    [loaded] = load_library(folder)
    create_exercise(title="Drill", kind="practice", scheme_key="ds3030",
                    case_ids=[loaded.case_id], actor=None)
    # The exchanged file now says the case is for exams only.
    path = folder / "cases" / "phantom-normal-1.json"
    spec = json.loads(path.read_text())
    path.write_text(json.dumps({**spec, "exam_bank": True}))
    result = app.test_cli_runner().invoke(args=["cases", "import-library", str(folder)])
    assert result.exit_code == 1
    assert "practice set 'Drill'" in result.output and "1 refused" in result.output
    assert db.session.get(Case, loaded.case_id).exam_bank is False
    # Once out of every practice set, the same file puts it in the bank.
    db.session.delete(db.session.scalars(select(Exercise)).one())
    db.session.commit()
    again = app.test_cli_runner().invoke(args=["cases", "import-library", str(folder)])
    assert again.exit_code == 0, again.output
    db.session.expire_all()
    assert db.session.get(Case, loaded.case_id).exam_bank is True


def test_an_open_attempt_opens_only_its_own_cases_while_it_lasts(client, curator, library,
                                                                  login_as):
    cases, bank = library
    exam = create_exercise(title="Exam", kind="exam", scheme_key="ds3030",
                           case_ids=[cases[0].id, bank.id], actor=None, time_limit_minutes=30)
    other_bank = make_key_case(curator, 530, tb=False, label="other-bank", exam_bank=True)
    trainee = login_as(Role.TRAINEE_RADIOLOGIST)

    def viewer(case_id):
        return client.get(f"/viewer/api/cases/{case_id}").status_code

    # Requests at real time (signed-in sessions do not survive a clock set back).
    now = datetime.now(UTC)
    with freeze_time(now):
        start_attempt(exam, trainee)
    with freeze_time(now + timedelta(minutes=1)):
        assert viewer(bank.id) == 200
        assert viewer(other_bank.id) == 404  # in no attempt of hers
    with freeze_time(now + timedelta(minutes=31)):  # past the deadline, nothing has ended it
        assert viewer(bank.id) == 404


def test_a_practice_attempt_never_opens_an_exam_bank_case(client, library, login_as):
    """Data from before the rule: a case flagged exam-bank while in a practice set."""
    cases, _ = library
    practice = create_exercise(title="Drill", kind="practice", scheme_key="ds3030",
                               case_ids=[cases[0].id, cases[1].id], actor=None)
    db.session.get(Case, cases[1].id).exam_bank = True
    db.session.commit()
    trainee = login_as(Role.TRAINEE_RADIOLOGIST)
    start_attempt(practice, trainee)
    image = db.session.get(Case, cases[1].id).images[0]
    assert client.get(f"/cases/images/{image.id}/preview").status_code == 404
    assert client.get(f"/viewer/api/cases/{cases[1].id}").status_code == 404


# ---- 2. "after the exercise closes" needs a date; no exam after its key was seen ------------


def test_review_after_close_needs_a_closing_date(library):
    cases, _ = library
    with pytest.raises(AttemptError, match="closing date"):
        create_exercise(title="E", kind="exam", scheme_key="ds3030", case_ids=[cases[0].id],
                        actor=None, review={"reference": "after_close"})
    db.session.rollback()
    assert _exercise_count() == 0
    create_exercise(title="E", kind="exam", scheme_key="ds3030", case_ids=[cases[0].id],
                    actor=None, review={"reference": "after_close"},
                    closes_at=datetime.now(UTC) + timedelta(days=3))


def test_the_exercise_form_asks_for_a_closing_date(client, library, login_as):
    cases, _ = library
    login_as(Role.TRAINER)
    response = submit_form(client, "/training/manage", button="Create exercise", fields={
        "title": "Exam", "kind": "exam", "scheme": "ds3030", "cases": [cases[0].id],
        "review_reference": "after_close"})
    assert response.status_code == 400
    assert "closing date" in response.get_data(as_text=True)
    assert _exercise_count() == 0


def test_an_old_exercise_without_closing_date_never_shows_what_waits_for_it(library,
                                                                         make_user):
    """Rows from before the rule: after_close and no date shows nothing, not everything."""
    from app.quizzes import review_rules

    cases, _ = library
    exam = create_exercise(title="Old", kind="exam", scheme_key="ds3030",
                           case_ids=[cases[0].id], actor=None)
    exam.review = {**exam.review, "reference": "after_close"}
    db.session.commit()
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    attempt = _take(exam, trainee)
    assert attempt.state == AttemptState.SUBMITTED.value
    assert review_rules.visible(attempt, "reference") is False


def test_no_exam_attempt_starts_once_the_key_was_shown(library, make_user):
    cases, _ = library
    exam = create_exercise(title="Exam", kind="exam", scheme_key="ds3030",
                           case_ids=[cases[0].id, cases[1].id], actor=None, max_attempts=3,
                           review={"correctness": "after_submit"})
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    _take(exam, trainee)
    with pytest.raises(AttemptError, match=r"seen .* 2 of this exam's cases") as refused:
        start_attempt(exam, trainee)
    assert refused.value.status == 409
    # Another trainee, who has seen nothing, starts it.
    assert start_attempt(exam, make_user(Role.TRAINEE_RADIOLOGIST)).number == 1


def test_an_exam_showing_its_key_after_closing_cannot_be_retaken_after_it_closes(
        library, make_user):
    cases, _ = library
    closes = T0 + timedelta(days=2)
    exam = create_exercise(title="Exam", kind="exam", scheme_key="ds3030",
                           case_ids=[cases[0].id], actor=None, max_attempts=3, opens_at=T0,
                           closes_at=closes, review={"reference": "after_close"})
    from app.quizzes.disclosure import of_attempt

    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    with freeze_time(T0 + timedelta(hours=1)):
        first = _take(exam, trainee)
        resit = start_attempt(exam, trainee)  # nothing shown yet: a resit is fair
        assert resit.number == 2
    after = closes + timedelta(minutes=1)
    with freeze_time(after):
        # The exercise has closed, but the resit is still open: the first key stays hidden.
        assert of_attempt(first, after).at(1).reference is False
        submit_attempt(resit, trainee)
        assert of_attempt(first, after).at(1).reference is True
        with pytest.raises(AttemptError, match="closed"):
            start_attempt(exam, trainee)


def test_a_key_seen_in_one_exam_bars_another_exam_with_that_case(library, make_user):
    cases, _ = library
    first = create_exercise(title="First", kind="exam", scheme_key="ds3030",
                            case_ids=[cases[0].id, cases[1].id], actor=None,
                            review={"reference": "after_submit"})
    renewal = create_exercise(title="Renewal", kind="exam", scheme_key="ds3030",
                              case_ids=[cases[1].id, cases[2].id], actor=None)
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    _take(first, trainee)
    with pytest.raises(AttemptError, match="'First'"):
        start_attempt(renewal, trainee)


def test_a_key_is_withheld_while_another_open_exam_holds_the_case(client, library, login_as):
    from app.quizzes.disclosure import of_attempt

    cases, _ = library
    first = create_exercise(title="First", kind="exam", scheme_key="ds3030",
                            case_ids=[cases[0].id, cases[1].id], actor=None, shuffle=False,
                            review={"reference": "after_submit",
                                    "correctness": "after_submit"})
    renewal = create_exercise(title="Renewal", kind="exam", scheme_key="ds3030",
                              case_ids=[cases[1].id, cases[2].id], actor=None)
    trainee = login_as(Role.TRAINEE_RADIOLOGIST)
    open_renewal = start_attempt(renewal, trainee)  # before the first exam shows anything
    ended = _take(first, trainee)
    shown = of_attempt(ended)
    assert shown.at(1).reference and not shown.at(2).reference
    assert client.get(f"/training/attempts/{ended.id}/review/1").status_code == 200
    assert client.get(f"/training/attempts/{ended.id}/review/2").status_code == 403
    page = client.get(f"/training/attempts/{ended.id}/result").get_data(as_text=True)
    assert cases[0].secrets[1] in page and cases[1].secrets[1] not in page
    assert client.get(f"/training/attempts/{ended.id}/roc.png").status_code == 403
    submit_attempt(open_renewal, trainee)
    assert client.get(f"/training/attempts/{ended.id}/review/2").status_code == 200


def test_practice_sets_can_be_retaken_after_their_feedback(library, make_user):
    """Practice sets exist for immediate feedback and retakes; their cases are in no exam."""
    from app.quizzes.services import check_case

    cases, _ = library
    practice = create_exercise(title="Drill", kind="practice", scheme_key="ds3030",
                               case_ids=[cases[0].id, cases[1].id], actor=None)
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    attempt = start_attempt(practice, trainee)
    check_case(attempt, trainee, attempt.case_order[0])
    submit_attempt(attempt, trainee)
    assert start_attempt(practice, trainee).number == 2


# ---- 3. every figure and table obeys the review settings ---------------------------------


NORMAL = {"overall": "normal"}


def _ended_exam(client, login_as, cases, reads=(TB_READ, NORMAL), **settings):
    """An exam of four cases taken once per read in ``reads``: (first, last) attempt."""
    exam = create_exercise(title="Exam", kind="exam", scheme_key="ds3030",
                           case_ids=[c.id for c in cases[:4]], actor=None, max_attempts=5,
                           **settings)
    trainee = login_as(Role.TRAINEE_RADIOLOGIST)
    attempts = []
    for day, read in enumerate(reads):
        with freeze_time(T0 + timedelta(days=day)):
            attempts.append(_take(exam, trainee, read))
    return attempts[0], attempts[-1]


def test_the_exam_result_is_no_answer_oracle(client, library, login_as):
    cases, _ = library
    _, attempt = _ended_exam(client, login_as, cases)  # defaults: scores only
    page = client.get(f"/training/attempts/{attempt.id}/result").get_data(as_text=True)
    assert 'data-testid="scores"' in page
    for oracle in ("Per finding", "TP / FN / FP / TN", "absent from every reference read",
                   "roc.png", 'data-testid="case-feedback"', "grade 3"):
        assert oracle not in page, oracle
    for case in cases[:4]:
        for secret in case.secrets:
            assert secret not in page, secret
    assert client.get(f"/training/attempts/{attempt.id}/roc.png").status_code == 403


def test_learning_curve_obeys_the_score_setting(client, library, login_as):
    cases, _ = library
    first, attempt = _ended_exam(client, login_as, cases, review={"score": "never"})
    for ended in (first, attempt):
        response = client.get(f"/training/attempts/{ended.id}/learning.png")
        assert response.status_code == 403, response.status_code
    page = client.get(f"/training/attempts/{attempt.id}/result").get_data(as_text=True)
    assert "learning.png" not in page and 'data-testid="scores"' not in page


def test_learning_curve_is_not_drawn_during_an_attempt(client, library, login_as):
    cases, _ = library
    _, attempt = _ended_exam(client, login_as, cases)
    trainee = db.session.get(Attempt, attempt.id).user
    with freeze_time(T0 + timedelta(days=2)):
        current = start_attempt(db.session.get(Exercise, attempt.exercise_id), trainee)
    assert client.get(f"/training/attempts/{current.id}/learning.png").status_code == 409
    assert client.get(f"/training/attempts/{current.id}/roc.png").status_code == 409
    # Once ended, with scores shown after each attempt, the curve is drawn.
    assert client.get(f"/training/attempts/{attempt.id}/learning.png").status_code == 200


def test_shown_correctness_draws_roc_and_the_per_finding_table(client, library, login_as):
    cases, _ = library
    _, attempt = _ended_exam(client, login_as, cases, reads=(NORMAL,),
                             review={"correctness": "after_submit"})
    page = client.get(f"/training/attempts/{attempt.id}/result").get_data(as_text=True)
    assert "Per finding" in page and "grade 3b" in page
    # Correctness is shown, so the ROC is not refused for the key: DS-3030 has no likelihood
    # rating, so there is no curve to draw (404), not a 403.
    assert "roc.png" not in page and 'data-testid="roc-figure"' not in page
    assert client.get(f"/training/attempts/{attempt.id}/roc.png").status_code == 404
    for case in cases[:4]:
        assert case.secrets[0] not in page and case.secrets[1] not in page


def _viewer_data(html):
    return json.loads(re.search(r'id="viewer-data">(.*?)</script>', html, re.S).group(1))


def test_review_with_reference_but_not_correctness_shows_no_outcome(client, library, login_as):
    cases, _ = library
    _, attempt = _ended_exam(client, login_as, cases, reads=(NORMAL,),
                             review={"reference": "after_submit"},
                             shuffle=False)
    html = client.get(f"/training/attempts/{attempt.id}/review/1").get_data(as_text=True)
    assert cases[0].secrets[1] in html  # the reference read is shown...
    assert "grade" not in html and 'data-testid="localisation"' not in html  # ...no outcome
    assert cases[0].secrets[0] not in html  # teaching notes: never
    data = _viewer_data(html)
    assert [m["status"] for m in data["reference_marks"]] == ["reference"]
    assert all("status" not in m for m in data["marks"])


def test_review_with_correctness_but_not_reference_shows_no_reference(client, library,
                                                                      login_as):
    cases, _ = library
    _, attempt = _ended_exam(client, login_as, cases, reads=(NORMAL,),
                             review={"correctness": "after_submit"},
                             shuffle=False)
    html = client.get(f"/training/attempts/{attempt.id}/review/1").get_data(as_text=True)
    assert "grade 3b" in html
    assert "Reference read" not in html and "reference_marks" not in html
    for secret in cases[0].secrets:
        assert secret not in html


# ---- 4. reading a case page changes nothing ----------------------------------------------


def _state(attempt_id):
    db.session.expire_all()
    attempt = db.session.get(Attempt, attempt_id)
    rows = db.session.scalars(select(AttemptAnswer).where(
        AttemptAnswer.attempt_id == attempt_id)).all()
    return (attempt.current_case_id, attempt.current_since,
            sorted((a.case_id, a.revision, a.seconds) for a in rows))


def test_opening_a_case_page_changes_nothing(client, library, login_as):
    cases, _ = library
    practice = create_exercise(title="Drill", kind="practice", scheme_key="ds3030",
                               case_ids=[c.id for c in cases[:3]], actor=None)
    trainee = login_as(Role.TRAINEE_RADIOLOGIST)
    attempt = start_attempt(practice, trainee)
    before = _state(attempt.id)
    assert before == (None, None, [])
    for position in (1, 2, 3, 2):
        assert client.get(f"/training/attempts/{attempt.id}/{position}").status_code == 200
    assert _state(attempt.id) == before


def _opened_url(html):
    return re.search(r'data-opened-url="([^"]+)"', html).group(1)


def _csrf(html):
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def test_the_page_posts_case_opened_and_reading_time_is_measured(client, library, login_as):
    cases, _ = library
    practice = create_exercise(title="Drill", kind="practice", scheme_key="ds3030",
                               case_ids=[c.id for c in cases[:2]], actor=None, shuffle=False)
    trainee = login_as(Role.TRAINEE_RADIOLOGIST)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)
    with freeze_time(start):
        attempt = start_attempt(practice, trainee)
        html = client.get(f"/training/attempts/{attempt.id}/1").get_data(as_text=True)
        headers = {"X-CSRFToken": _csrf(html)}
        # What attempt.js does when the page has loaded.
        opened = client.post(_opened_url(html), headers=headers)
        assert opened.status_code == 200 and opened.get_json()["opened"] is True
    assert _state(attempt.id)[:2] == (cases[0].id, start)
    assert _state(attempt.id)[2] == []  # no answer row until something is saved
    with freeze_time(start + timedelta(seconds=40)):
        html = client.get(f"/training/attempts/{attempt.id}/2").get_data(as_text=True)
        client.post(_opened_url(html), headers=headers)
    with freeze_time(start + timedelta(seconds=55)):
        saved = client.post(re.search(r'data-save-url="([^"]+)"', html).group(1),
                            json={"answers": {"overall": "normal"}, "marks": []},
                            headers=headers)
        assert saved.status_code == 200
    seconds = {case_id: secs for case_id, _, secs in _state(attempt.id)[2]}
    assert seconds == {cases[0].id: pytest.approx(40), cases[1].id: pytest.approx(15)}


def test_case_opened_refuses_bad_requests_and_writes_nothing(client, library, login_as,
                                                             make_user):
    cases, _ = library
    practice = create_exercise(title="Drill", kind="practice", scheme_key="ds3030",
                               case_ids=[cases[0].id], actor=None)
    trainee = login_as(Role.TRAINEE_RADIOLOGIST)
    attempt = start_attempt(practice, trainee)
    html = client.get(f"/training/attempts/{attempt.id}/1").get_data(as_text=True)
    headers = {"X-CSRFToken": _csrf(html)}
    url = _opened_url(html)
    assert client.post(url).status_code == 400  # no CSRF token
    for position in (0, 2):  # the attempt has one case
        wrong = client.post(f"/training/attempts/{attempt.id}/{position}/opened",
                            headers=headers)
        assert wrong.status_code == 404
        assert "no such case in this attempt" in wrong.get_json()["message"]
    someone_else = start_attempt(practice, make_user(Role.TRAINEE_RADIOLOGIST))
    theirs = client.post(f"/training/attempts/{someone_else.id}/1/opened", headers=headers)
    assert theirs.status_code == 404
    assert _state(attempt.id) == (None, None, [])
    submit_attempt(attempt, trainee)
    ended = client.post(url, headers=headers)
    assert ended.status_code == 409 and ended.get_json()["ended"] is True


# ---- 5. the case library imports nothing from attempts ------------------------------------


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def _package_graph() -> dict[str, set[str]]:
    """app's areas (packages and top-level modules) and the areas each imports."""
    graph: dict[str, set[str]] = {}
    for path in APP.rglob("*.py"):
        area = path.relative_to(APP).parts[0].removesuffix(".py")
        targets = {name.split(".")[1] for name in _imports(path)
                   if name.startswith("app.") and len(name.split(".")) > 1}
        graph.setdefault(area, set()).update(targets - {area})
    return graph


def test_the_case_library_imports_nothing_from_attempts():
    for path in (APP / "cases").rglob("*.py"):
        quizzes = [name for name in _imports(path) if name.startswith("app.quizzes")]
        assert quizzes == [], f"{path.relative_to(APP)} imports {quizzes}"

    graph = _package_graph()

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            area = todo.pop()
            if area == goal:
                return True
            if area not in seen:
                seen.add(area)
                todo += graph.get(area, ())
        return False

    assert not reaches("cases", "quizzes")  # no import circle through the library


# ---- the data migration ----------------------------------------------------------------


def test_migration_takes_exam_cases_out_of_practice_sets(app, library, make_user):
    from flask_migrate import downgrade, upgrade

    from app import MIGRATIONS_DIR
    from app.quizzes.models import ExerciseCase

    cases, bank = library
    c = [case.id for case in cases]
    practice = create_exercise(title="Drill", kind="practice", scheme_key="ds3030",
                               case_ids=[c[2], c[3]], actor=None)
    only_exam_cases = create_exercise(title="Exam drill", kind="practice", scheme_key="ds3030",
                                      case_ids=[c[4]], actor=None)
    exam = create_exercise(title="Exam", kind="exam", scheme_key="ds3030",
                           case_ids=[c[0], c[1]], actor=None)
    waiting = create_exercise(title="Graded later", kind="exam", scheme_key="ds3030",
                              case_ids=[c[5]], actor=None)
    # Rows as they could be written before the rules.
    db.session.add_all([ExerciseCase(exercise_id=practice.id, case_id=c[0], position=2),
                        ExerciseCase(exercise_id=practice.id, case_id=bank.id, position=3),
                        ExerciseCase(exercise_id=exam.id, case_id=c[4], position=2)])
    waiting.review = {**waiting.review, "reference": "after_close", "score": "after_close"}
    db.session.commit()
    reading, finished, stuck = (make_user(Role.TRAINEE_RADIOLOGIST) for _ in range(3))
    db.session.expire_all()
    open_attempt = start_attempt(db.session.get(Exercise, practice.id), reading)
    for case_id in (c[0], c[2]):
        save_answer(open_attempt, reading, case_id, {"overall": "normal"}, [])
    open_attempt.current_case_id = c[0]
    db.session.commit()
    ended = _take(db.session.get(Exercise, practice.id), finished, {"overall": "normal"})
    ended_order = list(ended.case_order)
    empty = start_attempt(db.session.get(Exercise, only_exam_cases.id), stuck)
    ids = {name: row.id for name, row in (("practice", practice), ("exam", exam),
                                          ("only_exam_cases", only_exam_cases),
                                          ("waiting", waiting), ("open", open_attempt),
                                          ("ended", ended), ("empty", empty))}

    db.session.remove()
    downgrade(directory=str(MIGRATIONS_DIR), revision="6491851cb4c1")
    upgrade(directory=str(MIGRATIONS_DIR))
    db.session.expire_all()

    def links(exercise_id):
        return {link.case_id for link in db.session.scalars(
            select(ExerciseCase).where(ExerciseCase.exercise_id == exercise_id))}

    assert links(ids["practice"]) == {c[2], c[3]}  # the exam and exam-bank cases left
    assert links(ids["exam"]) == {c[0], c[1], c[4]}  # the exam keeps every case
    assert links(ids["only_exam_cases"]) == set()
    assert db.session.get(Exercise, ids["only_exam_cases"]).published is False
    reading_now = db.session.get(Attempt, ids["open"])
    assert sorted(reading_now.case_order) == [c[2], c[3]]
    assert {a.case_id for a in reading_now.answers} == {c[2]}
    assert reading_now.current_case_id is None and reading_now.state == "in_progress"
    finished_now = db.session.get(Attempt, ids["ended"])
    assert finished_now.case_order == ended_order  # history stays as it was
    assert {a.case_id for a in finished_now.answers} == set(ended_order)
    assert db.session.get(Attempt, ids["empty"]).state == AttemptState.ABANDONED.value
    assert db.session.get(Exercise, ids["waiting"]).review == {
        "score": "never", "correctness": "never", "reference": "never",
        "teaching_notes": "never"}


def test_the_exam_bank_refusal_is_in_the_trainers_language(client, library, login_as):
    cases, _ = library
    create_exercise(title="Drill", kind="practice", scheme_key="ds3030",
                    case_ids=[cases[0].id], actor=None)
    trainer = login_as(Role.TRAINER)
    trainer.language = "fr"
    db.session.commit()
    response = submit_form(client, f"/cases/{cases[0].id}", button="Enregistrer",
                           fields={"exam_bank": True})
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "il est dans la série d&#39;entraînement &#39;Drill&#39;" in page
