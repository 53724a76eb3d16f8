"""Trainers' exercises: edited until the first attempt, cloned, closed, deleted when never
attempted; thresholds in %, findings by their labels; image-quality exercises."""

from __future__ import annotations

from datetime import timedelta
from html import unescape

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.roles import Role
from app.cases.models import Case
from app.cases.reads import save_read
from app.db_types import utcnow
from app.extensions import db
from app.quizzes.answers import save_answer
from app.quizzes.exercises import (
    clone_exercise,
    close_exercise,
    create_exercise,
    delete_exercise,
    edit_exercise,
    publish_exercise,
)
from app.quizzes.models import Attempt, Exercise
from app.quizzes.results import case_feedback
from app.quizzes.selection import SelectionError, findings_by_label
from app.quizzes.services import (
    AttemptError,
    start_attempt,
    submit_attempt,
)
from app.schemes.registry import get_scheme
from tests.conftest import post_hand_built
from tests.forms import submit_form
from tests.test_attempts import published_tb_case

IQ_ANSWERS = {**{item: {"pass": True, "reason": ""} for item in (
    "inclusion", "rotation", "scapulae", "inspiration", "exposure", "collimation", "artefacts")},
    "grade": "1"}


@pytest.fixture
def expert(make_user):
    return make_user(Role.TRAINER, username="expert")


@pytest.fixture
def cases(app, expert) -> list[Case]:
    made = [published_tb_case(expert, 400 + seed) for seed in range(3)]
    db.session.commit()
    return made


def _practice(cases: list[Case], **kwargs) -> Exercise:
    return create_exercise(**{"title": "Practice", "kind": "practice", "scheme_key": "ds3030",
                              "case_ids": [c.id for c in cases[:2]], "actor": None, **kwargs})


def _settings(exercise: Exercise, **changes) -> dict:
    return {"title": exercise.title, "kind": exercise.kind, "scheme_key": exercise.scheme_key,
            "case_ids": [link.case_id for link in exercise.cases], **changes}


def _actions(object_id: int) -> list[str]:
    return list(db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.object_type == "exercise", AuditEvent.object_id == str(object_id))
        .order_by(AuditEvent.id)))


# ---- edit ---------------------------------------------------------------------------------


def test_edit_before_the_first_attempt_is_audited(cases, expert):
    exercise = _practice(cases)
    edit_exercise(exercise, actor=expert, **_settings(
        exercise, title="Practice 2", case_ids=[cases[1].id, cases[0].id],
        criteria=[("sensitivity", 0.9)]))
    db.session.expire_all()
    exercise = db.session.get_one(Exercise, exercise.id)
    assert exercise.title == "Practice 2"
    assert [link.case_id for link in exercise.cases] == [cases[1].id, cases[0].id]
    assert exercise.criteria == [{"metric": "sensitivity", "minimum": 0.9}]
    assert _actions(exercise.id) == ["exercise.create", "exercise.edit"]


def test_edit_after_an_attempt_is_refused_and_changes_nothing(cases, expert, make_user):
    exercise = _practice(cases)
    start_attempt(exercise, make_user(Role.TRAINEE_RADIOLOGIST))
    with pytest.raises(AttemptError, match="cannot be edited: it has been attempted") as refused:
        edit_exercise(exercise, actor=expert, **_settings(exercise, title="Changed"))
    assert refused.value.status == 409
    db.session.rollback()
    assert db.session.get_one(Exercise, exercise.id).title == "Practice"


def test_edit_keeps_the_practice_exam_separation(cases, expert):
    practice = _practice(cases)
    exam = create_exercise(title="Exam", kind="exam", scheme_key="ds3030",
                           case_ids=[cases[2].id], actor=None)
    with pytest.raises(AttemptError, match="is in the practice set 'Practice'"):
        edit_exercise(exam, actor=expert, **_settings(exam, case_ids=[cases[0].id]))
    db.session.rollback()
    # Its own cases never conflict with itself: a practice set may become an exam.
    edit_exercise(practice, actor=expert, **_settings(practice, kind="exam"))
    assert db.session.get_one(Exercise, practice.id).kind == "exam"


# ---- clone, publish -----------------------------------------------------------------------


def test_clone_is_an_unpublished_editable_copy(cases, expert, make_user):
    exercise = _practice(cases, criteria=[("specificity", 0.8)], time_limit_minutes=20)
    start_attempt(exercise, make_user(Role.TRAINEE_RADIOLOGIST))
    copy = clone_exercise(exercise, actor=expert)
    assert copy.id != exercise.id and copy.title == "Practice (copy)"
    assert not copy.published
    assert [link.case_id for link in copy.cases] == [link.case_id for link in exercise.cases]
    assert (copy.criteria, copy.time_limit_minutes) == (exercise.criteria, 20)
    edit_exercise(copy, actor=expert, **_settings(copy, title="Practice, second edition"))
    publish_exercise(copy, actor=expert)
    assert copy.published and copy.title == "Practice, second edition"
    assert _actions(copy.id) == ["exercise.clone", "exercise.edit", "exercise.publish"]
    with pytest.raises(AttemptError, match="already published"):
        publish_exercise(copy, actor=expert)


def test_clone_checks_the_separation_again(cases, expert):
    exercise = _practice(cases)
    cases[0].exam_bank = True  # data from before the rule: joined the bank afterwards
    db.session.commit()
    with pytest.raises(AttemptError, match=f"case {cases[0].id} is in the exam bank"):
        clone_exercise(exercise, actor=expert)
    db.session.rollback()
    assert db.session.scalars(select(Exercise)).all() == [exercise]


# ---- close --------------------------------------------------------------------------------


def test_closing_stops_new_attempts_and_lets_open_ones_finish(cases, expert, make_user):
    exercise = _practice(cases, closes_at=utcnow() + timedelta(days=30))
    reader, latecomer = make_user(Role.TRAINEE_RADIOLOGIST), make_user(
        Role.TRAINEE_RADIOLOGIST)
    attempt = start_attempt(exercise, reader)
    close_exercise(exercise, actor=expert)
    assert exercise.closes_at <= utcnow()
    with pytest.raises(AttemptError, match="this exercise has closed"):
        start_attempt(exercise, latecomer)
    db.session.rollback()
    save_answer(attempt, reader, cases[0].id, {"overall": "normal"}, [])
    assert submit_attempt(attempt, reader).state == "submitted"
    with pytest.raises(AttemptError, match=r"closed on .* already"):
        close_exercise(exercise, actor=expert)
    assert "exercise.close" in _actions(exercise.id)


def test_closing_an_exercise_that_has_not_opened_yet(cases, expert):
    exercise = _practice(cases, opens_at=utcnow() + timedelta(days=1))
    close_exercise(exercise, actor=expert)
    assert exercise.opens_at <= exercise.closes_at


# ---- delete -------------------------------------------------------------------------------


def test_delete_only_when_never_attempted(cases, expert, make_user):
    unused, used = _practice(cases), _practice(cases, title="Used")
    start_attempt(used, make_user(Role.TRAINEE_RADIOLOGIST))
    with pytest.raises(AttemptError, match="cannot be deleted: it has been attempted"):
        delete_exercise(used, actor=expert)
    db.session.rollback()
    unused_id = unused.id
    delete_exercise(unused, actor=expert)
    assert db.session.get(Exercise, unused_id) is None
    assert db.session.get(Exercise, used.id) is not None
    assert _actions(unused_id)[-1] == "exercise.delete"


def test_delete_is_refused_for_a_programme_exam(cases, expert):
    from app.certification.models import Programme, Requirement

    exam = create_exercise(title="Exam", kind="exam", scheme_key="ds3030",
                           case_ids=[cases[2].id], actor=None)
    db.session.add(Programme(title="TB readers", requirements=[
        Requirement(exercise_id=exam.id, kind="exam")]))
    db.session.commit()
    with pytest.raises(AttemptError, match="programme 'TB readers' requires it"):
        delete_exercise(exam, actor=expert)


# ---- findings by label --------------------------------------------------------------------


def test_findings_are_named_by_their_labels():
    scheme = get_scheme("tb_screening")
    assert findings_by_label(scheme, "Nodule or mass, poorly defined: 2\ncavitary LESION : 3") \
        == {"nodule": 2, "cavitary_lesion": 3}
    with pytest.raises(SelectionError, match="'cavitary_lesion' is not a finding of"):
        findings_by_label(get_scheme("ds3030"), "cavitary_lesion: 5")
    with pytest.raises(SelectionError, match="as a finding and a number of cases"):
        findings_by_label(get_scheme("ds3030"), "Cavitary lesion: five")


# ---- image quality ------------------------------------------------------------------------


def _with_quality_read(case: Case, expert, grade: str = "1") -> Case:
    save_read(case, author=expert, scheme=get_scheme("image_quality"),
              answers={**IQ_ANSWERS, "grade": grade})
    return case


def test_image_quality_exercises_take_only_cases_with_an_image_quality_read(cases, expert):
    with pytest.raises(AttemptError, match=f"case {cases[0].id} has no image-quality "
                                           "reference read"):
        create_exercise(title="IQ", kind="practice", scheme_key="image_quality",
                        case_ids=[cases[0].id], actor=None)
    db.session.rollback()
    _with_quality_read(cases[0], expert)
    exercise = create_exercise(title="IQ", kind="practice", scheme_key="image_quality",
                               case_ids=[cases[0].id], actor=None)
    # Editing it to add a case without one is refused the same way.
    with pytest.raises(AttemptError, match=f"case {cases[1].id} has no image-quality"):
        edit_exercise(exercise, actor=expert, **_settings(
            exercise, case_ids=[cases[0].id, cases[1].id]))


def test_image_quality_feedback_shows_the_image_quality_reference(cases, expert, make_user):
    _with_quality_read(cases[0], expert, grade="3")
    exercise = create_exercise(title="IQ", kind="practice", scheme_key="image_quality",
                               case_ids=[cases[0].id], actor=None)
    reader = make_user(Role.TRAINEE_RADIOGRAPHER)
    attempt = start_attempt(exercise, reader)
    save_answer(attempt, reader, cases[0].id, {**IQ_ANSWERS, "grade": "3"}, [])
    feedback = case_feedback(attempt, 1)
    assert feedback.reference.scheme.key == "image_quality"
    assert feedback.reference.answers["grade"] == "3"
    submit_attempt(attempt, reader)
    assert attempt.metrics["metrics"]["quality_agreement"] == 1.0


def test_cli_refuses_an_image_quality_exercise_without_image_quality_reads(app, cases):
    result = app.test_cli_runner().invoke(args=[
        "quizzes", "create-exercise", "--title", "IQ", "--scheme", "image_quality",
        "--case", str(cases[0].id)])
    assert result.exit_code != 0
    assert "has no image-quality reference read" in result.output
    assert db.session.scalars(select(Exercise)).all() == []


# ---- the pages ----------------------------------------------------------------------------


def test_edit_page_shows_percentages_and_saves_them_as_fractions(client, cases, login_as):
    exercise = _practice(cases, criteria=[("sensitivity", 0.9), ("kappa", 0.6)])
    login_as(Role.TRAINER)
    page = client.get(f"/training/manage/{exercise.id}/edit").get_data(as_text=True)
    assert 'name="min_sensitivity"' in page and 'value="90.0"' in page
    response = submit_form(client, f"/training/manage/{exercise.id}/edit",
                           button="Save exercise", fields={
                               "title": "Renamed", "min_specificity": "75",
                               "rule_findings": ""})
    assert response.status_code == 302, unescape(response.get_data(as_text=True))
    db.session.expire_all()
    exercise = db.session.get_one(Exercise, exercise.id)
    assert exercise.title == "Renamed"
    assert exercise.criteria == [{"metric": "sensitivity", "minimum": 0.9},
                                 {"metric": "specificity", "minimum": 0.75},
                                 {"metric": "kappa", "minimum": 0.6}]
    bad = submit_form(client, f"/training/manage/{exercise.id}/edit", button="Save exercise",
                      fields={"min_specificity": "150"})
    assert bad.status_code == 400
    assert "Enter a percentage from 0 to 100." in bad.get_data(as_text=True)


def test_manage_page_says_why_an_attempted_exercise_cannot_be_edited(client, cases, login_as,
                                                                     make_user):
    exercise = _practice(cases)
    start_attempt(exercise, make_user(Role.TRAINEE_RADIOLOGIST))
    login_as(Role.TRAINER)
    listing = unescape(client.get("/training/manage").get_data(as_text=True))
    assert "Not editable: it has been attempted (1 attempt)" in listing
    assert "Not deletable: it has been attempted (1 attempt)" in listing
    page = unescape(client.get(f"/training/manage/{exercise.id}/edit").get_data(as_text=True))
    assert "This exercise cannot be edited: it has been attempted" in page
    assert "Save exercise" not in page
    # Deliberately hand-built: the page offers no form to post.
    forced = post_hand_built(client, f"/training/manage/{exercise.id}/edit",
                             {"title": "Forced", "kind": "practice", "scheme": "ds3030",
                              "cases": str(cases[0].id)},
                             page="/training/manage")
    assert forced.status_code == 409
    assert db.session.get_one(Exercise, exercise.id).title == "Practice"
    deleted = post_hand_built(client, f"/training/manage/{exercise.id}/delete",
                              page="/training/manage")
    assert deleted.status_code == 409
    assert "cannot be deleted" in unescape(deleted.get_data(as_text=True))


def test_clone_close_and_delete_buttons(client, cases, login_as):
    exercise = _practice(cases)
    exercise_id = exercise.id
    login_as(Role.TRAINER)

    def press(action: str):
        return submit_form(client, "/training/manage",
                           action=f"/training/manage/{exercise_id}/{action}")

    assert press("clone").status_code == 302
    copy = db.session.scalars(select(Exercise).where(Exercise.id != exercise_id)).one()
    assert copy.title == "Practice (copy)" and not copy.published
    assert press("close").status_code == 302
    db.session.expire_all()
    assert db.session.get_one(Exercise, exercise_id).closes_at is not None
    assert press("delete").status_code == 302
    db.session.expire_all()
    assert db.session.get(Exercise, exercise_id) is None
    # Without the form's token nothing happens (a forged request).
    forged = client.post(f"/training/manage/{copy.id}/delete")
    assert forged.status_code == 400
    assert db.session.get(Exercise, copy.id) is not None


def test_trainees_cannot_change_exercises(client, cases, login_as):
    exercise = _practice(cases)
    login_as(Role.TRAINEE_RADIOLOGIST)
    assert client.get(f"/training/manage/{exercise.id}/edit").status_code == 403
    for action in ("clone", "close", "delete", "publish"):
        assert post_hand_built(client, f"/training/manage/{exercise.id}/{action}",
                               page="/training/").status_code == 403
    assert db.session.scalars(select(Attempt)).all() == []


def test_image_quality_review_page_shows_the_image_quality_reference(client, cases, expert,
                                                                      make_user):
    from app.quizzes.services import check_case
    from tests.conftest import login

    _with_quality_read(cases[0], expert, grade="3")
    exercise = create_exercise(title="IQ", kind="practice", scheme_key="image_quality",
                               case_ids=[cases[0].id], actor=None)
    reader = make_user(Role.TRAINEE_RADIOGRAPHER)
    attempt = start_attempt(exercise, reader)
    save_answer(attempt, reader, cases[0].id, {**IQ_ANSWERS, "grade": "1"}, [])
    check_case(attempt, reader, cases[0].id)
    login(client, reader.username)
    page = unescape(client.get(f"/training/attempts/{attempt.id}/review/1").get_data(
        as_text=True))
    assert "3 – poor" in page and "Overall grade" in page  # noqa: RUF001
    assert "Cavitary lesion" not in page and "Abnormal" not in page


def test_rule_draws_only_image_quality_cases_for_an_image_quality_exercise(cases, expert):
    from app.quizzes.selection import CaseRule, select_cases

    _with_quality_read(cases[1], expert)
    db.session.commit()
    assert select_cases(CaseRule(total=1, image_quality=True)) == [cases[1].id]
    with pytest.raises(SelectionError, match="only 1 published case"):
        select_cases(CaseRule(total=2, image_quality=True))


def test_exercise_form_names_findings_and_classifications_by_their_labels(client, cases,
                                                                          login_as):
    login_as(Role.TRAINER)
    page = unescape(client.get("/training/manage").get_data(as_text=True))
    assert f"Case {cases[0].id}: Abnormal · TB-suggestive" in page
    response = submit_form(client, "/training/manage", button="Create exercise", fields={
        "title": "By rule", "kind": "practice", "scheme": "ds3030", "rule_total": "2",
        "rule_findings": "Cavitary lesion: 2"})
    assert response.status_code == 302, unescape(response.get_data(as_text=True))
    refused = submit_form(client, "/training/manage", button="Create exercise", fields={
        "title": "By key", "kind": "practice", "scheme": "ds3030", "rule_total": "2",
        "rule_findings": "cavitary_lesion: 2"})
    assert refused.status_code == 400
    assert "'cavitary_lesion' is not a finding of" in unescape(refused.get_data(as_text=True))
    assert [e.title for e in db.session.scalars(select(Exercise))] == ["By rule"]
