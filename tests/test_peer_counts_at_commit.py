"""The running peer figures an exam's whole cohort shares (per-case calls, the accuracy
histogram) are written as the last statements of a submit, after the audit row and the
certificate check, so their row locks are held for the commit alone; a transaction rolled
back counts nothing."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select

from app.auth.models import User
from app.auth.roles import Role
from app.extensions import db
from app.quizzes.models import Attempt, AttemptState, PeerAccuracy, PeerCaseShare
from app.quizzes.results import finalise
from app.quizzes.services import submit_attempt
from app.schemes.registry import get_scheme
from bench.exam_data import add_cases, add_exam, finished_read
from tests.test_scoring_path import statements

SHARED = ("peer_case_share", "peer_accuracy")


def _exam(make_user: Callable[..., User]) -> int:
    scheme = get_scheme("tb_screening")
    experts = [make_user(Role.TRAINER), make_user(Role.TRAINER)]
    return add_exam(add_cases(6, scheme=scheme, experts=experts, seed=3), scheme=scheme)


def _counts() -> tuple[int, int]:
    return (db.session.scalar(select(func.coalesce(func.sum(PeerCaseShare.readers), 0))),
            db.session.scalar(select(func.coalesce(func.sum(PeerAccuracy.readers), 0))))


def test_a_submit_writes_the_shared_peer_rows_last(app, make_user):
    exam_id = _exam(make_user)
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    attempt_id, user_id = finished_read(exam_id, trainee, seed=5), trainee.id
    db.session.remove()
    with statements() as sent:
        submit_attempt(db.session.get_one(Attempt, attempt_id), db.session.get_one(User, user_id))
    shared = [i for i, s in enumerate(sent) if any(f" {t}" in s for t in SHARED)]
    others = [i for i, s in enumerate(sent)
              if not any(t in s for t in ("peer_", "SAVEPOINT", "RELEASE"))]
    assert shared, "the submit counted nothing in the shared peer rows"
    # Nothing of the submit (its audit row, the certificate check) runs while they are held.
    assert min(shared) > max(others), [sent[i][:60] for i in range(min(shared), len(sent))]
    db.session.remove()
    assert db.session.get_one(Attempt, attempt_id).state == AttemptState.SUBMITTED.value
    assert _counts() == (6, 1)  # six decided cases read by one reader; one standing


def test_an_attempt_scored_in_a_transaction_rolled_back_counts_nothing(app, make_user):
    exam_id = _exam(make_user)
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    attempt = db.session.get_one(Attempt, finished_read(exam_id, trainee, seed=6))
    attempt.state = AttemptState.SUBMITTED.value
    finalise(attempt, just_ended=True)
    db.session.rollback()
    db.session.commit()  # a later transaction of the same session
    assert _counts() == (0, 0)
