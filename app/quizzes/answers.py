"""Saving a trainee's answer to one case of an attempt (the page's autosave).

Every acknowledged save gets the next revision of that answer, strictly increasing: saves
of one attempt are serialised by the attempt's row lock (SELECT … FOR UPDATE; SQLite's
write lock), and the revision is read again under it. A page sends the revision it last
saw; a save based on an older one (another tab or device saved in between) is refused as
stale instead of silently overwriting the newer answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm.attributes import set_committed_value

from app.auth.models import User
from app.cases.models import CaseImage
from app.cases.reads import validate_marks_on_images
from app.db_types import utcnow
from app.extensions import db
from app.quizzes.models import Attempt, AttemptAnswer
from app.quizzes.services import AttemptError, _account_reading, _answer, _check_active, _lock
from app.schemes.definitions import (
    SchemeError,
    validate_answers,
)
from app.schemes.registry import scheme_of


class StaleAnswer(AttemptError):
    """A save based on a revision that is no longer the newest: ``current`` is the newer
    answer, for the page to show instead."""

    def __init__(self, current: AttemptAnswer) -> None:
        super().__init__(
            f"this answer was changed in another window or on another device (revision "
            f"{current.revision}): the newer answer is shown, check it and change it again "
            "if needed", 409)
        self.current = current


def save_answer(
    attempt: Attempt,
    user: User,
    case_id: int,
    answers: Any,
    marks: Any,
    now: datetime | None = None,
    expected_revision: int | None = None,
) -> AttemptAnswer:
    """Autosave of one case's read (may be incomplete until submission). With
    ``expected_revision`` (the revision the page last saw) a save is refused as stale when
    another one was acknowledged since; without it the last save wins."""
    now = now or utcnow()
    if attempt.user_id == user.id:
        _lock(attempt)  # a submit at the same moment scores this answer, or it is refused
    _check_active(attempt, user, now)
    if case_id not in attempt.case_order:
        raise AttemptError("that case is not part of this attempt", 404)
    stored = _stored(attempt, case_id)
    if stored is not None and stored.checked_at is not None:
        raise AttemptError("you have seen the feedback for this case: its answer is final", 409)
    if expected_revision is not None:
        current = stored.revision if stored is not None else 0
        if current != expected_revision:
            raise StaleAnswer(stored) if stored is not None else AttemptError(
                f"revision {expected_revision} of this answer does not exist", 409)
    clean_answers, clean_marks = _validated(attempt, case_id, answers, marks)
    if attempt.current_case_id == case_id:
        _account_reading(attempt, now)
    answer = _answer(attempt, case_id)
    answer.answers = clean_answers
    answer.marks = clean_marks
    answer.revision = (answer.revision or 0) + 1
    answer.saved_at = now
    acknowledged = {"revision": answer.revision, "saved_at": now, "answers": clean_answers,
                    "marks": clean_marks}
    db.session.commit()
    # The acknowledgement names what this save wrote: read after the commit, the row may
    # already hold a later save from another device (which releases the lock in between).
    for key, value in acknowledged.items():
        set_committed_value(answer, key, value)
    return answer


def _stored(attempt: Attempt, case_id: int) -> AttemptAnswer | None:
    """The saved answer as committed now, read under the attempt's lock: an answer this
    session loaded before the lock may hold an older revision."""
    return db.session.scalars(
        select(AttemptAnswer)
        .where(AttemptAnswer.attempt_id == attempt.id, AttemptAnswer.case_id == case_id)
        .execution_options(populate_existing=True)
    ).first()


def _validated(attempt: Attempt, case_id: int, answers: Any,
               marks: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    scheme = scheme_of(attempt.exercise)
    # The case's images alone (one statement; loading the case would add its tags).
    images = {image.id: image for image in db.session.scalars(
        select(CaseImage).where(CaseImage.case_id == case_id))}
    try:
        clean_answers = validate_answers(scheme, answers or {}, partial=True)
        clean_marks = validate_marks_on_images(scheme, marks or [], images)
    except SchemeError as exc:
        raise AttemptError(str(exc)) from None
    return clean_answers, clean_marks
