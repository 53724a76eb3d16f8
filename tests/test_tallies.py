"""Running sums per exercise and case: equal to a recount from the stored scores after
attempts end, after re-scoring and after a migration from before they existed."""

from __future__ import annotations

import random

import numpy as np
import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import select

from app import MIGRATIONS_DIR
from app.auth.roles import Role
from app.extensions import db
from app.quizzes import tallies
from app.quizzes.models import Attempt, AttemptAnswer, ExerciseCaseTally
from app.quizzes.results import rescore
from app.quizzes.services import create_exercise, save_answer, start_attempt, submit_attempt
from tests.test_attempts import cases  # noqa: F401 (fixture)

TB = {"overall": "abnormal", "findings": ["cavitary_lesion"]}
NORMAL = {"overall": "normal"}


def _stored() -> dict[tuple[int, int], tuple]:
    rows = db.session.scalars(select(ExerciseCaseTally)).all()
    return {(r.exercise_id, r.case_id): (r.n, round(r.sum_x, 9), round(r.sum_y, 9),
                                         round(r.sum_xy, 9), round(r.sum_yy, 9)) for r in rows}


@pytest.fixture
def exam_with_attempts(cases, make_user):  # noqa: F811
    exam = create_exercise(title="Tallied", kind="exam", scheme_key="ds3030",
                           case_ids=[c.id for c in cases], actor=None)
    rng = random.Random(4)
    for _ in range(5):
        trainee = make_user(Role.TRAINEE_RADIOLOGIST)
        attempt = start_attempt(exam, trainee)
        for case_id in attempt.case_order:
            save_answer(attempt, trainee, case_id, TB if rng.random() < 0.6 else NORMAL, [])
        submit_attempt(attempt, trainee)
    return exam


def test_pearson_from_the_sums_matches_numpy():
    rng = random.Random(7)
    for _ in range(50):
        n = rng.randint(3, 40)
        xs = [rng.randint(0, 1) for _ in range(n)]
        ys = [rng.random() for _ in range(n)]
        row = ExerciseCaseTally(n=n, sum_x=sum(xs), sum_y=sum(ys),
                                sum_xy=sum(x * y for x, y in zip(xs, ys, strict=True)),
                                sum_yy=sum(y * y for y in ys))
        result = tallies.tally(row)
        assert result.share_correct == pytest.approx(sum(xs) / n)
        if len(set(xs)) > 1:
            assert result.discrimination == pytest.approx(np.corrcoef(xs, ys)[0, 1], abs=1e-9)
        else:
            assert result.discrimination is None  # no variation: undefined, not NaN
    assert tallies.tally(None) == tallies.CaseTally(0, None, None)
    two = ExerciseCaseTally(n=2, sum_x=1, sum_y=1.0, sum_xy=0.9, sum_yy=0.82)
    assert tallies.tally(two).discrimination is None  # fewer than 3 attempts


def test_tallies_equal_a_recount_after_attempts_end(exam_with_attempts):
    kept = _stored()
    assert sum(n for n, *_ in kept.values()) == 5 * 3
    tallies.rebuild(exam_with_attempts.id)
    db.session.commit()
    assert _stored() == kept


def test_rescoring_replaces_an_attempts_share_without_double_counting(exam_with_attempts):
    kept = _stored()
    assert rescore(exam_with_attempts.id).attempts == 5
    assert _stored() == kept  # same scores: subtracted and added back
    # A changed answer (as after a reference read changed): the tallies follow it.
    answer = db.session.scalars(select(AttemptAnswer).join(Attempt).where(
        Attempt.exercise_id == exam_with_attempts.id)).first()
    answer.answers = NORMAL if answer.answers == TB else TB
    db.session.commit()
    rescore(exam_with_attempts.id)
    changed = _stored()
    assert changed != kept
    tallies.rebuild(exam_with_attempts.id)
    db.session.commit()
    assert _stored() == changed


def test_migrations_fill_the_new_columns_and_tallies_from_stored_scores(exam_with_attempts):
    scores = {a.id: (a.sensitivity, a.specificity)
              for a in db.session.scalars(select(Attempt))}
    kept = _stored()
    assert any(s is not None for s, _ in scores.values())
    db.session.remove()
    downgrade(directory=str(MIGRATIONS_DIR), revision="b8e0aca72c64")
    upgrade(directory=str(MIGRATIONS_DIR))
    assert {a.id: (a.sensitivity, a.specificity)
            for a in db.session.scalars(select(Attempt))} == scores
    assert _stored() == kept


def test_concurrent_attempt_ends_lose_no_counts(app, exam_with_attempts):
    """Two workers adding to the same case's sums at once, each in its own session and
    transaction, as two attempts ending together on two server threads."""
    import threading

    exercise_id = exam_with_attempts.id
    case_id = exam_with_attempts.cases[0].case_id
    before = db.session.get(ExerciseCaseTally, (exercise_id, case_id)).n
    db.session.remove()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with app.app_context():
                for _ in range(25):
                    ended = Attempt(exercise_id=exercise_id, metrics={
                        "metrics": {"accuracy": 0.5}, "cases": {str(case_id): 1}})
                    tallies.record_scores(ended, old_metrics=None)
                    db.session.commit()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert db.session.get(ExerciseCaseTally, (exercise_id, case_id)).n == before + 50
