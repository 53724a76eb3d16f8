"""Exercises and attempts: the state machine, autosave and server-side time.

Attempt states: in progress -> submitted | timed out (at the server deadline, by server
time, whether or not the trainee comes back) | abandoned. One attempt per trainee and
exercise can be in progress (a partial unique index); starting twice returns it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.audit.services import record
from app.auth.models import User
from app.auth.roles import Role
from app.cases.models import Case
from app.db_types import utcnow
from app.extensions import commit_keeping_loaded, db
from app.i18n import ATTEMPT_STATES, N_
from app.locking import lock_row, retrying
from app.quizzes.disclosure import seen_keys
from app.quizzes.models import (
    Attempt,
    AttemptAnswer,
    AttemptState,
    Exercise,
    ExerciseKind,
)
from app.quizzes.refusal import LocalTime, Refusal
from app.quizzes.signals import attempt_ended

# Metrics an exercise may set a pass threshold on (names of scoring.score_attempt's metrics),
# with the words shown to trainees.
CRITERIA_METRICS = {
    "sensitivity": N_("sensitivity for TB-suggestive reads"),
    "specificity": N_("specificity"),
    "accuracy": N_("accuracy of the sputum decision"),
    "kappa": N_("Cohen's kappa of the sputum decision"),
    "auc": N_("ROC AUC of the TB likelihood"),
    "lesion_localisation_sensitivity": N_("share of reference lesions marked"),
    "concordance": N_("share of concordant reads"),
    "quality_agreement": N_("image-quality agreement"),
}

# Gaps longer than this between two events of an attempt are not counted as reading time:
# the trainee was away or the link was down.
MAX_READING_GAP = timedelta(minutes=5)


class AttemptError(Refusal):
    """A refused action on an exercise or attempt; the message is for the trainee."""


# ---- who may take which exercise --------------------------------------------------------------


def assigned_to(exercise: Exercise, user: User) -> bool:
    """An exercise's audience: named readers, roles, clinics and countries; each one given
    must match (any of its values), and an empty audience means every trainee."""
    audience = exercise.audience or {}
    roles = set(audience.get("roles") or [])
    clinics = set(audience.get("clinic_ids") or [])
    countries = set(audience.get("countries") or [])
    users = set(audience.get("user_ids") or [])
    if users and user.id not in users:
        return False
    if roles and not user.has_role(*(Role(r) for r in roles)):
        return False
    if clinics and user.clinic_id not in clinics:
        return False
    return not countries or (user.clinic is not None and user.clinic.country_code in countries)


def open_exercises(user: User, now: datetime | None = None) -> list[Exercise]:
    now = now or utcnow()
    query = select(Exercise).where(Exercise.published).order_by(Exercise.id)
    return [
        e
        for e in db.session.scalars(query)
        if (e.opens_at is None or e.opens_at <= now)
        and (e.closes_at is None or now < e.closes_at)
        and assigned_to(e, user)
    ]


# ---- attempts -------------------------------------------------------------------------------


def open_attempt(exercise: Exercise, user: User) -> Attempt | None:
    return db.session.scalar(
        select(Attempt).where(
            Attempt.exercise_id == exercise.id,
            Attempt.user_id == user.id,
            Attempt.state == AttemptState.IN_PROGRESS.value,
        )
    )


def _overdue(attempt: Attempt, now: datetime) -> bool:
    return (
        attempt.state == AttemptState.IN_PROGRESS.value
        and attempt.deadline_at is not None
        and now >= attempt.deadline_at
    )


def _busy() -> AttemptError:
    return AttemptError(N_(
        "many attempts are ending at this moment: your answers are saved, try again in a "
        "moment"), 409)


def _lock(attempt: Attempt) -> None:
    """Hold the attempt's row until this transaction ends and re-read it: of two requests
    ending one attempt at once (two tabs, a double click, the clock and the trainee), the
    second sees that the first ended it."""
    db.session.expire(attempt)  # its answers too: another request may have saved one
    lock_row(Attempt, attempt.id)


def expire_if_overdue(attempt: Attempt, now: datetime | None = None) -> bool:
    """Time an attempt out at its deadline (by server time); True when this call ended it.
    Called wherever an attempt is read, so an attempt past its deadline never shows as in
    progress: the trainee who runs out of time gets a result without waiting for cron."""
    now = now or utcnow()
    if not _overdue(attempt, now):
        return False  # the common case: no lock taken

    def time_out() -> bool:
        _lock(attempt)
        ended = _overdue(attempt, now)
        if ended:
            _end_timed_out(attempt)
        db.session.commit()
        return ended

    return retrying(time_out, _busy)


def _end_timed_out(attempt: Attempt) -> None:
    """End a locked attempt at its deadline: the reading time up to the deadline, the
    answers saved by then."""
    assert attempt.deadline_at is not None
    _account_reading(attempt, attempt.deadline_at)
    attempt.state = AttemptState.TIMED_OUT.value
    attempt.ended_at = attempt.deadline_at
    attempt.current_case_id = None
    _finalise(attempt)
    record("attempt.timed_out", actor=attempt.user, object_type="attempt", object_id=attempt.id)


def expire_overdue_attempts(now: datetime | None = None, user: User | None = None) -> int:
    """Every attempt past its deadline (cron, the demo server), or only ``user``'s (pages
    that show their attempts, certificates or progress); returns how many it ended."""
    now = now or utcnow()
    query = select(Attempt).where(
        Attempt.state == AttemptState.IN_PROGRESS.value, Attempt.deadline_at <= now
    ).order_by(Attempt.id)
    if user is not None:
        query = query.where(Attempt.user_id == user.id)
    overdue = db.session.scalars(query).all()
    return sum(expire_if_overdue(a, now) for a in overdue)


def start_attempt(exercise: Exercise, user: User, now: datetime | None = None) -> Attempt:
    now = now or utcnow()
    current = open_attempt(exercise, user)
    if current is not None and not expire_if_overdue(current, now):
        return current
    _hold_exercise(exercise)
    previous = _attempts_at(exercise, user)
    refusal = _refusal(exercise, user, now, previous,
                       lambda case_ids: seen_keys(user, case_ids, now))
    if refusal is not None:
        raise refusal
    order = [link.case_id for link in exercise.cases]
    if exercise.shuffle:
        random.Random(f"{exercise.id}:{user.id}:{len(previous)}").shuffle(order)  # noqa: S311
    deadline = (
        now + timedelta(minutes=exercise.time_limit_minutes)
        if (exercise.time_limit_minutes)
        else None
    )
    attempt = Attempt(
        exercise=exercise,
        user=user,
        state=AttemptState.IN_PROGRESS.value,
        number=len(previous) + 1,
        case_order=order,
        started_at=now,
        deadline_at=deadline,
    )
    db.session.add(attempt)
    try:
        db.session.flush()
    except IntegrityError:  # another tab started the same attempt a moment ago
        db.session.rollback()
        existing = open_attempt(exercise, user)
        if existing is None:
            raise
        return existing
    record(
        "attempt.start",
        actor=user,
        object_type="attempt",
        object_id=attempt.id,
        exercise=exercise.id,
    )
    db.session.commit()
    return attempt


def _hold_exercise(exercise: Exercise) -> None:
    """Share-lock the exercise's row to the end of the transaction and read it afresh:
    editing or deleting it (app/quizzes/exercises.py, which lock it exclusively and allow
    neither once it has an attempt) waits for an attempt being started, and a start that
    waited for an edit begins the edited exercise. Starts do not wait for each other."""
    held = db.session.execute(select(Exercise.id).where(Exercise.id == exercise.id)
                              .with_for_update(read=True)).first()
    if held is None:
        raise AttemptError(N_("this exercise has been deleted"), 404)
    db.session.expire(exercise)


def _attempts_at(exercise: Exercise, user: User) -> list[Attempt]:
    """``user``'s attempts at ``exercise``, the latest first."""
    return list(db.session.scalars(
        select(Attempt)
        .where(Attempt.exercise_id == exercise.id, Attempt.user_id == user.id)
        .order_by(Attempt.number.desc())
    ))


SeenKeys = Callable[[list[int]], dict[int, Attempt]]


def _refusal(exercise: Exercise, user: User, now: datetime, previous: Sequence[Attempt],
             seen: SeenKeys) -> AttemptError | None:
    """Why ``user`` may not start a new attempt at ``exercise`` (no attempt of theirs is
    open), or None. ``previous``: their attempts at it, the latest first; ``seen``: which of
    some case ids have had their key shown to them (seen_keys), asked only for an exam."""
    if not assigned_to(exercise, user):
        return AttemptError(N_("this exercise is not assigned to you"), 403)
    if not exercise.published or (exercise.opens_at and now < exercise.opens_at):
        return AttemptError(N_("this exercise is not open yet"), 409)
    if exercise.closes_at and now >= exercise.closes_at:
        return AttemptError(N_("this exercise has closed"), 409)
    # Every earlier attempt counts, abandoned ones too: abandoning cannot reset an exam.
    if exercise.max_attempts is not None and len(previous) >= exercise.max_attempts:
        return AttemptError(N_("all %(count)s attempts used"), 409,
                            count=exercise.max_attempts)
    if previous and exercise.cooldown_hours and previous[0].ended_at is not None:
        ready = previous[0].ended_at + timedelta(hours=exercise.cooldown_hours)
        if now < ready:
            return AttemptError(
                N_("available again on %(time)s (cool-down after an attempt)"), 409,
                time=LocalTime(ready))
    if exercise.kind == ExerciseKind.EXAM.value:
        return _seen_keys_refusal(exercise, [link.case_id for link in exercise.cases], seen)
    return None


def _seen_keys_refusal(exercise: Exercise, case_ids: list[int],
                       seen: SeenKeys) -> AttemptError | None:
    """Nobody starts an exam with any of its answers in hand: not after this exam's own
    review showed them (a resit once the key is out), nor another exam's. Practice sets are
    exempt: their cases are in no exam, and retaking them after the feedback is their point."""
    shown = {case_id: attempt for case_id, attempt in seen(case_ids).items()
             if case_id in set(case_ids)}
    if not shown:
        return None
    where = sorted({attempt.exercise.title for attempt in shown.values()})
    titles = ", ".join(repr(title) for title in where)
    if all(attempt.exercise_id == exercise.id for attempt in shown.values()):
        return AttemptError(N_("you have seen this exam's answers: it cannot be retaken (the "
                               "answer key of %(count)s of this exam's cases was shown in "
                               "%(titles)s)"), 409, count=len(shown), titles=titles)
    return AttemptError(N_("you have seen answers to this exam: it cannot be taken (the answer "
                           "key of %(count)s of this exam's cases was shown in %(titles)s)"),
                        409, count=len(shown), titles=titles)


def start_refusals(exercises: Sequence[Exercise], user: User,
                   now: datetime | None = None) -> dict[int, str]:
    """Why ``user`` cannot start each of ``exercises`` now (the refusals of start_attempt),
    for the training list, in a fixed number of statements: {exercise id: sentence} for those
    they cannot start. An exercise with an attempt of theirs in progress has none: its
    button resumes it."""
    now = now or utcnow()
    ids = {exercise.id for exercise in exercises}
    attempts: dict[int, list[Attempt]] = {}
    for attempt in db.session.scalars(
            select(Attempt).where(Attempt.user_id == user.id, Attempt.exercise_id.in_(ids))
            .order_by(Attempt.number.desc())):
        attempts.setdefault(attempt.exercise_id, []).append(attempt)
    exam_cases = [link.case_id for exercise in exercises
                  if exercise.kind == ExerciseKind.EXAM.value for link in exercise.cases]
    known: dict[int, Attempt] | None = None

    def seen(case_ids: list[int]) -> dict[int, Attempt]:
        nonlocal known
        if known is None:  # one look for every exam of the list, and only if one asks
            known = seen_keys(user, exam_cases, now)
        return known

    refusals = {}
    for exercise in exercises:
        previous = attempts.get(exercise.id, [])
        if any(a.state == AttemptState.IN_PROGRESS.value and not _overdue(a, now)
               for a in previous):
            continue
        refusal = _refusal(exercise, user, now, previous, seen)
        if refusal is not None:
            refusals[exercise.id] = refusal.sentence
    return refusals


def _account_reading(attempt: Attempt, now: datetime) -> None:
    """Add the time since the last event to the case that was open."""
    if attempt.current_case_id is None or attempt.current_since is None:
        return
    gap = min(now - attempt.current_since, MAX_READING_GAP)
    if gap.total_seconds() > 0:
        answer = _answer(attempt, attempt.current_case_id)
        answer.seconds = (answer.seconds or 0.0) + gap.total_seconds()
    attempt.current_since = now


def _answer(attempt: Attempt, case_id: int) -> AttemptAnswer:
    for answer in attempt.answers:
        if answer.case_id == case_id:
            return answer
    answer = AttemptAnswer(
        attempt=attempt, case_id=case_id, answers={}, marks=[], revision=0, seconds=0.0
    )
    db.session.add(answer)
    return answer


def _check_active(attempt: Attempt, user: User, now: datetime) -> None:
    if attempt.user_id != user.id:
        raise AttemptError(N_("this is not your attempt"), 404)
    expire_if_overdue(attempt, now)
    if attempt.state != AttemptState.IN_PROGRESS.value:
        raise AttemptError(N_("this attempt has ended (%(state)s)"), 409,
                           state=ATTEMPT_STATES.get(attempt.state, attempt.state))


def view_case(
    attempt: Attempt, user: User, position: int, now: datetime | None = None
) -> tuple[Case, AttemptAnswer]:
    """The case at 0-based ``position`` and the trainee's saved answer to it (an empty one,
    not stored, when nothing is saved yet). Reading changes nothing: the page tells the
    server when the case is on screen (open_case)."""
    now = now or utcnow()
    _check_active(attempt, user, now)
    if not 0 <= position < len(attempt.case_order):
        raise AttemptError(N_("there is no such case in this attempt"), 404)
    case_id = attempt.case_order[position]
    saved = next((a for a in attempt.answers if a.case_id == case_id), None)
    answer = saved or AttemptAnswer(case_id=case_id, answers={}, marks=[], revision=0,
                                    seconds=0.0)
    return db.session.get_one(Case, case_id), answer


def open_case(attempt: Attempt, user: User, case_id: int, now: datetime | None = None) -> None:
    """The trainee has ``case_id`` on screen from ``now``: the time since the attempt's last
    event goes to the case that was open before, and the reading clock runs for this one."""
    now = now or utcnow()
    _check_active(attempt, user, now)
    if case_id not in attempt.case_order:
        raise AttemptError(N_("that case is not part of this attempt"), 404)
    _account_reading(attempt, now)
    attempt.current_case_id = case_id
    attempt.current_since = now
    # The request answers with what it has loaded: no reload of the user after the commit.
    commit_keeping_loaded()


def submit_attempt(attempt: Attempt, user: User, now: datetime | None = None) -> Attempt:
    """Idempotent: submitting an ended attempt returns it unchanged; one past its deadline
    is timed out instead (the answers saved by the deadline count)."""
    now = now or utcnow()
    if attempt.user_id != user.id:
        raise AttemptError(N_("this is not your attempt"), 404)

    def submit() -> Attempt:
        _lock(attempt)
        if _overdue(attempt, now):
            _end_timed_out(attempt)
        elif attempt.state == AttemptState.IN_PROGRESS.value:
            _account_reading(attempt, now)
            attempt.state = AttemptState.SUBMITTED.value
            attempt.ended_at = now
            attempt.current_case_id = None
            _finalise(attempt)
            record("attempt.submit", actor=user, object_type="attempt", object_id=attempt.id)
        db.session.commit()
        return attempt

    return retrying(submit, _busy)


def check_case(attempt: Attempt, user: User, case_id: int,
               now: datetime | None = None) -> AttemptAnswer:
    """Practice sets give immediate feedback per case; asking for it makes the answer final."""
    now = now or utcnow()
    _check_active(attempt, user, now)
    from app.quizzes.review_rules import immediate_feedback

    if not immediate_feedback(attempt.exercise):
        raise AttemptError(N_("feedback comes after the attempt, as the review settings allow"),
                           403)
    if case_id not in attempt.case_order:
        raise AttemptError(N_("that case is not part of this attempt"), 404)
    answer = _answer(attempt, case_id)
    if answer.checked_at is None:
        if attempt.current_case_id == case_id:
            _account_reading(attempt, now)
        answer.checked_at = now
        db.session.commit()
    return answer


def abandon_attempt(attempt: Attempt, user: User) -> Attempt:
    """Give up a practice attempt (exams are submitted or time out)."""
    if attempt.user_id != user.id:
        raise AttemptError(N_("this is not your attempt"), 404)
    if attempt.exercise.kind == ExerciseKind.EXAM.value:
        raise AttemptError(N_("an exam cannot be abandoned: submit it"), 409)

    def abandon() -> Attempt:
        _lock(attempt)  # a submit at the same moment wins or loses whole, never both
        if attempt.state == AttemptState.IN_PROGRESS.value:
            attempt.state = AttemptState.ABANDONED.value
            attempt.ended_at = utcnow()
            attempt.current_case_id = None
            record("attempt.abandon", actor=user, object_type="attempt", object_id=attempt.id)
        db.session.commit()
        return attempt

    return retrying(abandon, _busy)


def _finalise(attempt: Attempt) -> None:
    """Score a locked attempt that has just ended and tell whoever listens (certificates
    follow from the scores) within the same transaction; the caller commits."""
    # Imported here: results builds on this module (scheme_of).
    from app.quizzes.results import finalise

    db.session.flush()
    finalise(attempt, just_ended=True)
    db.session.flush()
    attempt_ended.send(current_app._get_current_object(),  # type: ignore[attr-defined]
                       attempt=attempt)


def attempts_of(user: User) -> list[Attempt]:
    return list(
        db.session.scalars(
            select(Attempt).where(Attempt.user_id == user.id).order_by(Attempt.started_at.desc())
        )
    )

