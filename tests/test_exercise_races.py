"""Two trainers building a practice set and an exam from the same case at the same moment
(PostgreSQL, real concurrent connections): one of them is refused, never both saved."""

from __future__ import annotations

import threading

from sqlalchemy import func, select, text

from app.auth.roles import Role
from app.extensions import db
from app.quizzes import exercises
from app.quizzes.exercises import create_exercise
from app.quizzes.models import Exercise
from app.quizzes.services import AttemptError
from tests.conftest import postgresql_only
from tests.keycases import make_key_case

GUARD_SECONDS = 60  # only ends a hung test; nothing is measured


def _lock_waiters() -> int:
    """Connections of this database waiting for a row lock."""
    return db.session.scalar(text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock'"))


@postgresql_only
def test_a_practice_set_and_an_exam_made_at_once_never_share_a_case(app, make_user,
                                                                   monkeypatch):
    case = make_key_case(make_user(Role.TRAINER), 900, tb=True, label="shared")
    db.session.remove()
    first_flushed, release_first, second_done = (threading.Event() for _ in range(3))
    outcomes: dict[str, object] = {}
    record = exercises.record

    def record_and_hold(action, **kwargs):
        # The first trainer's exercise is written but not committed: hold it there until
        # the second trainer's request has either finished or is waiting for a lock.
        if threading.current_thread().name == "first" and action == "exercise.create":
            first_flushed.set()
            assert release_first.wait(GUARD_SECONDS)
        return record(action, **kwargs)

    monkeypatch.setattr(exercises, "record", record_and_hold)

    def trainer(kind: str) -> None:
        try:
            with app.app_context():
                if kind == "exam":
                    assert first_flushed.wait(GUARD_SECONDS)
                made = create_exercise(title=kind, kind=kind, scheme_key="ds3030",
                                       case_ids=[case.id], actor=None)
                outcomes[kind] = made.id
        except AttemptError as exc:
            outcomes[kind] = exc
        finally:
            if kind == "exam":
                second_done.set()

    first = threading.Thread(target=trainer, args=("practice",), name="first")
    second = threading.Thread(target=trainer, args=("exam",), name="second")
    first.start()
    second.start()
    assert first_flushed.wait(GUARD_SECONDS)
    with app.app_context():
        for _ in range(GUARD_SECONDS * 20):
            if second_done.wait(0.05) or _lock_waiters():
                break
    release_first.set()
    first.join(GUARD_SECONDS)
    second.join(GUARD_SECONDS)
    assert not first.is_alive() and not second.is_alive()

    assert isinstance(outcomes["practice"], int)
    refused = outcomes["exam"]
    assert isinstance(refused, AttemptError), refused
    assert f"case {case.id} is in the practice set 'practice'" in str(refused)
    assert db.session.scalar(select(func.count(Exercise.id))) == 1


@postgresql_only
def test_an_attempt_started_during_an_edit_begins_the_edited_exercise(app, make_user,
                                                                      monkeypatch):
    from app.auth.models import User
    from app.quizzes import services
    from app.quizzes.exercises import edit_exercise

    author = make_user(Role.TRAINER)
    before, after = (make_key_case(author, 910 + n, tb=True, label=f"case {n}").id
                     for n in range(2))
    exercise_id = create_exercise(title="Practice", kind="practice", scheme_key="ds3030",
                                  case_ids=[before], actor=None).id
    trainee_id = make_user(Role.TRAINEE_RADIOLOGIST).id
    db.session.remove()
    edit_flushed, release_edit, start_done = (threading.Event() for _ in range(3))
    outcomes: dict[str, object] = {}
    record = exercises.record

    def record_and_hold(action, **kwargs):
        # The edit is written but not committed: hold it until the trainee's start has
        # finished or is waiting for the exercise's row.
        if action == "exercise.edit":
            edit_flushed.set()
            assert release_edit.wait(GUARD_SECONDS)
        return record(action, **kwargs)

    monkeypatch.setattr(exercises, "record", record_and_hold)

    def trainer() -> None:
        with app.app_context():
            edit_exercise(db.session.get_one(Exercise, exercise_id), actor=None,
                          title="Practice, edited", kind="practice", scheme_key="ds3030",
                          case_ids=[after])

    def trainee() -> None:
        try:
            with app.app_context():
                assert edit_flushed.wait(GUARD_SECONDS)
                attempt = services.start_attempt(db.session.get_one(Exercise, exercise_id),
                                                 db.session.get_one(User, trainee_id))
                outcomes["order"] = list(attempt.case_order)
        finally:
            start_done.set()

    first = threading.Thread(target=trainer, name="trainer")
    second = threading.Thread(target=trainee, name="trainee")
    first.start()
    second.start()
    assert edit_flushed.wait(GUARD_SECONDS)
    with app.app_context():
        for _ in range(GUARD_SECONDS * 20):
            if start_done.wait(0.05) or _lock_waiters():
                break
    release_edit.set()
    first.join(GUARD_SECONDS)
    second.join(GUARD_SECONDS)
    assert not first.is_alive() and not second.is_alive()
    # Never the old cases under the edited title: the start waited and read the edit.
    assert outcomes["order"] == [after]
