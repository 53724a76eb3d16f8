"""Who may see which case."""

from __future__ import annotations

from sqlalchemy import exists, select

from app.auth.models import User
from app.auth.roles import Role
from app.cases.models import Case, CaseStatus
from app.extensions import db


def can_view_case(user: User, case: Case) -> bool:
    """Trainers and administrators see the whole library; trainees see published,
    non-exam-bank cases, and the cases of an attempt they have in progress (exam-bank cases
    only ever that way)."""
    if user.has_role(Role.TRAINER, Role.ADMIN):
        return True
    if case.status == CaseStatus.PUBLISHED.value and not case.exam_bank:
        return True
    return in_open_attempt(user, case)


def in_open_attempt(user: User, case: Case) -> bool:
    from app.quizzes.models import Attempt, AttemptState, ExerciseCase

    return bool(db.session.scalar(select(exists().where(
        Attempt.user_id == user.id,
        Attempt.state == AttemptState.IN_PROGRESS.value,
        ExerciseCase.exercise_id == Attempt.exercise_id,
        ExerciseCase.case_id == case.id,
    ))))
