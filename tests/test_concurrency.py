"""Attempts ending at the same moment: a cohort submitting together over real HTTP, one
attempt submitted twice at once, two exams of one programme passed at once. Each worker
has its own application context, database session and connection, as server threads do."""

from __future__ import annotations

import collections
import contextlib
import json
import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from app import locking
from app.audit.models import AuditEvent
from app.auth.models import User
from app.auth.roles import Role
from app.certification import services as certification_services
from app.certification.models import Certificate
from app.certification.services import create_programme
from app.extensions import db
from app.locking import is_transient
from app.quizzes import services as quizzes_services
from app.quizzes.answers import save_answer
from app.quizzes.exercises import create_exercise
from app.quizzes.models import Attempt, AttemptState
from app.quizzes.results import Population, exercise_statistics, finalise
from app.quizzes.services import start_attempt, submit_attempt
from tests.cohort import TB, cohort_exam, make_cases, prepare_cohort, run_together, submit_cohort
from tests.conftest import PASSWORD, login, postgresql_only
from tests.forms import submit_form

COHORT = 64
CASES = 12


def _scored(attempt: Attempt) -> tuple:
    return (json.loads(json.dumps(attempt.metrics)), attempt.case_set, attempt.case_scores,
            attempt.passed, attempt.sensitivity, attempt.specificity)


def _each_ended_once(exercise_id: int, attempt_ids: list[int]) -> None:
    """The attempts of the exercise are exactly these, each submitted once: one
    ``attempt.submit`` audit row each, stored scores (compact case scores included) equal
    to scoring it again, and counted once by the trainers' statistics."""
    db.session.expire_all()
    attempts = db.session.scalars(select(Attempt).where(
        Attempt.exercise_id == exercise_id).order_by(Attempt.id)).all()
    assert [a.id for a in attempts] == sorted(attempt_ids)
    assert [a.state for a in attempts] == [AttemptState.SUBMITTED.value] * len(attempts)
    assert all(a.ended_at is not None for a in attempts)
    audited = collections.Counter(db.session.scalars(select(AuditEvent.object_id).where(
        AuditEvent.action == "attempt.submit", AuditEvent.object_type == "attempt")))
    assert audited == {str(a): 1 for a in attempt_ids}

    stored = {a.id: _scored(a) for a in attempts}
    for attempt in attempts:
        metrics, case_set, case_scores, *_ = stored[attempt.id]
        assert case_set is not None and case_scores is not None
        assert len(case_scores) == len(attempt.case_order)
        assert case_scores.count("1") == list(metrics["cases"].values()).count(1)
        with db.session.no_autoflush:
            finalise(attempt)  # scored again, from the answers as they are now
        assert _scored(attempt) == stored[attempt.id]
    db.session.rollback()  # nothing of the re-scoring kept

    right: dict[str, list[int]] = collections.defaultdict(list)
    for metrics, *_ in stored.values():
        for case_id, x in metrics["cases"].items():
            right[case_id].append(int(x == 1))
    passed = [p for _, _, _, p, *_ in stored.values()]
    for population in Population:  # one attempt per trainee here: both count them all
        statistics = exercise_statistics(exercise_id, population)
        assert statistics.summary["attempts"] == len(attempt_ids)
        assert statistics.summary["trainees"] == len(attempt_ids)
        assert statistics.summary["pass_rate"] == pytest.approx(
            sum(1 for p in passed if p) / len(passed))
        assert (statistics.analysed, statistics.left_out) == (len(attempt_ids), 0)
        assert statistics.total.attempts == len(attempt_ids)
        for row in statistics.cases:
            assert row.attempts == len(attempt_ids)
            xs = right[str(row.case.id)]
            assert len(xs) == len(attempt_ids)
            assert row.share_correct == pytest.approx(sum(xs) / len(xs))


def _audited(action: str) -> int:
    return db.session.scalar(select(func.count(AuditEvent.id)).where(
        AuditEvent.action == action)) or 0


@postgresql_only
def test_a_cohort_submitting_together_gets_every_result_each_counted_once(
        app, make_user, portal_url):
    """64 trainees post the submit form of a 12-case exam at the same moment (PostgreSQL:
    every submit gets its result page, every attempt ends once with its scores, and the
    trainers' statistics count each attempt once)."""
    expert = make_user(Role.TRAINER, username="expert")
    exam = cohort_exam(make_cases(CASES, expert))
    members = prepare_cohort(exam, COHORT, PASSWORD)
    answers = submit_cohort(portal_url, members, PASSWORD)

    failures = [a if isinstance(a, BaseException) else (a.status, a.body[-300:])
                for a in answers if isinstance(a, BaseException) or a.status != 302]
    assert failures == []
    for member, answer in zip(members, answers, strict=True):
        assert answer.headers["Location"].endswith(
            f"/training/attempts/{member.attempt_id}/result")
    assert len(members) == COHORT
    _each_ended_once(exam.id, [member.attempt_id for member in members])


@pytest.fixture
def exam_attempt(app, make_user):
    expert = make_user(Role.TRAINER, username="expert")
    exam = cohort_exam(make_cases(3, expert))
    [member] = prepare_cohort(exam, 1, PASSWORD)
    return exam, member


def test_one_attempt_submitted_twice_at_once_counts_once(app, exam_attempt):
    """Two requests (a double click, two tabs) submit the same attempt at the same moment:
    one ends it, the other finds it ended: one audit row, its scores stored once, and the
    statistics count it once. (Without the attempt's row lock in ``submit_attempt`` both
    end it, and it has two audit rows.)"""
    exam, member = exam_attempt
    exam_id, attempt_id = exam.id, member.attempt_id
    user_id = db.session.scalar(select(User.id).where(User.username == member.username))
    db.session.remove()
    both_read = threading.Barrier(2, timeout=60)

    def submit() -> str:
        with app.app_context():
            attempt = db.session.get(Attempt, attempt_id)
            user = db.session.get(User, user_id)
            assert attempt.state == AttemptState.IN_PROGRESS.value  # as each request saw it
            both_read.wait()
            try:
                return submit_attempt(attempt, user).state
            finally:
                db.session.remove()

    results = run_together([submit, submit], timeout=120)
    assert results == [AttemptState.SUBMITTED.value] * 2
    _each_ended_once(exam_id, [attempt_id])


def test_attempts_ending_together_in_their_own_sessions_lose_nothing(app, make_user):
    """Several trainees' attempts end at the same moment, each on its own server thread with
    its own session and transaction (SQLite: one writer at a time, the others wait or
    retry): every attempt ends once, with its audit row and its scores."""
    expert = make_user(Role.TRAINER, username="expert")
    exam = cohort_exam(make_cases(3, expert))
    members = prepare_cohort(exam, 6, PASSWORD)
    exam_id = exam.id
    users = dict(db.session.execute(select(User.username, User.id)).all())
    db.session.remove()

    def submit(member):
        def job() -> str:
            with app.app_context():
                try:
                    return submit_attempt(db.session.get(Attempt, member.attempt_id),
                                          db.session.get(User, users[member.username])).state
                finally:
                    db.session.remove()
        return job

    results = run_together([submit(m) for m in members], timeout=120)
    assert results == [AttemptState.SUBMITTED.value] * len(members)
    _each_ended_once(exam_id, [m.attempt_id for m in members])


@postgresql_only
def test_two_exams_of_a_programme_passed_at_once_issue_the_certificate(
        app, make_user, monkeypatch):
    """A programme needs exams A and B; the trainee's two attempts end at the same moment
    on two server threads. Each used to look for the other's pass before it was committed,
    and neither issued the certificate."""
    expert = make_user(Role.TRAINER, username="expert")
    cases = make_cases(4, expert)
    exams = [create_exercise(title=f"Exam {name}", kind="exam", scheme_key="ds3030",
                             case_ids=[c.id for c in part], actor=None,
                             criteria=[("sensitivity", 0.5)])
             for name, part in (("A", cases[:2]), ("B", cases[2:]))]
    programme = create_programme(title="Two exams", requirements=[(e.id, "exam") for e in exams])
    trainee = make_user(Role.TRAINEE_RADIOLOGIST)
    attempt_ids = []
    for exam in exams:
        attempt = start_attempt(exam, trainee)
        for case_id in attempt.case_order:
            save_answer(attempt, trainee, case_id, TB, [])
        attempt_ids.append(attempt.id)
    user_id, programme_id = trainee.id, programme.id
    db.session.remove()

    # Each attempt end reads the trainee's progress before the other commits: the moment two
    # server threads collide. Each waits (a bounded time) for the other to have read too; a
    # lock that keeps the other out until this one commits makes that wait run out.
    both_read = threading.Barrier(2, timeout=10)
    original = certification_services.progress

    def colliding(*args, **kwargs):
        found = original(*args, **kwargs)
        # Broken when the other attempt end is held back by a lock: no collision then.
        with contextlib.suppress(threading.BrokenBarrierError):
            both_read.wait()
        return found

    monkeypatch.setattr(certification_services, "progress", colliding)

    def submit(attempt_id: int):
        def job() -> bool:
            with app.app_context():
                try:
                    attempt = submit_attempt(db.session.get(Attempt, attempt_id),
                                             db.session.get(User, user_id))
                    return bool(attempt.passed)
                finally:
                    db.session.remove()
        return job

    results = run_together([submit(a) for a in attempt_ids], timeout=120)
    assert results == [True, True]
    certificates = db.session.scalars(select(Certificate).where(
        Certificate.user_id == user_id, Certificate.programme_id == programme_id)).all()
    assert len(certificates) == 1
    assert {e["attempt_id"] for e in certificates[0].evidence["requirements"]} == set(attempt_ids)


class _Aborted(Exception):
    """What psycopg raises for a transaction PostgreSQL chose to abort."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"aborted ({sqlstate})")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(("orig", "transient"), [
    (_Aborted("40P01"), True),  # deadlock detected
    (_Aborted("40001"), True),  # serialisation failure
    (_Aborted("23505"), False),  # unique violation: running again would not help
    (Exception("database is locked"), True),  # SQLite's busy writer lock
    (Exception("no such table: attempt"), False),
])
def test_only_transactions_aborted_by_another_are_retried(orig, transient):
    assert is_transient(OperationalError("SELECT 1", {}, orig)) is transient


def test_a_submit_that_stays_deadlocked_is_refused_with_a_reason_and_nothing_written(
        app, client, exam_attempt, monkeypatch):
    """After the bounded retries, the trainee gets a 409 saying what to do, never a 500;
    the attempt stays open with its answers and nothing of the failed ends is kept."""
    _exam, member = exam_attempt
    tries = []

    def deadlocked(attempt):
        tries.append(attempt.id)
        raise OperationalError("UPDATE attempt SET state", {}, _Aborted("40P01"))

    monkeypatch.setattr(quizzes_services, "_finalise", deadlocked)
    monkeypatch.setattr(locking.time, "sleep", lambda seconds: None)
    login(client, member.username)
    answer = submit_form(client, f"/training/attempts/{member.attempt_id}/summary",
                         button="Submit and finish")
    assert answer.status_code == 409
    assert "your answers are saved, try again in a moment" in answer.get_data(as_text=True)
    assert tries == [member.attempt_id] * locking.RETRIES
    attempt = db.session.get(Attempt, member.attempt_id)
    db.session.refresh(attempt)
    assert attempt.state == AttemptState.IN_PROGRESS.value and attempt.ended_at is None
    assert len([a for a in attempt.answers if a.answers]) == 3
    assert _audited("attempt.submit") == 0
    assert (attempt.metrics, attempt.case_set, attempt.case_scores, attempt.passed) == (
        None, None, None, None)
