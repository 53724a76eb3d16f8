"""Saving a trainee's answer to one case of an attempt (the page's autosave).

Every acknowledged save gets the next revision of that answer, strictly increasing: saves
of one attempt are serialised by the attempt's row lock (SELECT … FOR UPDATE; SQLite's
write lock), and the revision is checked in the write itself (UPDATE … WHERE revision = the
revision the page saw). A page sends the revision it last saw; a save based on an older one
(another tab or device saved in between) is refused as stale instead of silently
overwriting the newer answer.

An exam of 1,000 trainees saving every 15 seconds is ~67 saves a second on two cores, so a
save is a fixed handful of statements: the attempt with its exercise (locked), the case with
its images and reference reads (marks are checked against the images; "answered" is judged
against the reference, as the scoring judges it), one write of the answer and, while the
case is the one on screen, one of the attempt's reading clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import joinedload, lazyload

from app.auth.models import User
from app.cases.models import Case
from app.cases.reads import reference_for, validate_marks_on_images
from app.db_types import utcnow
from app.extensions import commit_keeping_loaded, db
from app.i18n import N_
from app.locking import lock_row
from app.quizzes.models import Attempt, AttemptAnswer
from app.quizzes.results import read_for, reference_key, truth_for
from app.quizzes.scoring.inputs import unanswered
from app.quizzes.services import MAX_READING_GAP, AttemptError, _check_active, _lock
from app.schemes.answers import validate_answers
from app.schemes.errors import SchemeError
from app.schemes.parts import Scheme
from app.schemes.registry import scheme_of


class StaleAnswer(AttemptError):
    """A save based on a revision that is no longer the newest: ``current`` is the newer
    answer, for the page to show instead."""

    def __init__(self, current: AttemptAnswer) -> None:
        super().__init__(N_(
            "this answer was changed in another window or on another device (revision "
            "%(revision)s): the newer answer is shown, check it and change it again "
            "if needed"), 409, revision=current.revision)
        # A copy: the caller rolls back, which would make the stored row load again.
        self.current = AttemptAnswer(attempt_id=current.attempt_id, case_id=current.case_id,
                                     revision=current.revision, answers=current.answers,
                                     marks=current.marks)


@dataclass(frozen=True, slots=True)
class Saved:
    """What the page is told of an acknowledged save."""

    revision: int
    saved_at: datetime
    seconds_left: int | None
    answered: bool  # as the scoring counts it (the navigator's tile)


def locked_attempt(attempt_id: int) -> Attempt | None:
    """The attempt with its exercise, its row locked until the transaction ends: one
    statement (FOR UPDATE OF the attempt alone; the exercise is only read)."""
    return lock_row(Attempt, attempt_id, joinedload(Attempt.exercise, innerjoin=True))


def autosave(attempt: Attempt, user: User, case_id: int, answers: Any, marks: Any,
             expected_revision: int | None, now: datetime | None = None) -> Saved:
    """The page's autosave of ``attempt`` (from ``locked_attempt``). Commits without
    reloading what the request has loaded: the answer to the page is known already."""
    now = now or utcnow()
    saved, answered = _save_locked(attempt, user, case_id, answers, marks, now,
                                   expected_revision, judge=True)
    seconds_left = None
    if attempt.deadline_at is not None:
        seconds_left = max(0, int((attempt.deadline_at - now).total_seconds()))
    commit_keeping_loaded()
    return Saved(revision=saved.revision, saved_at=now, seconds_left=seconds_left,
                 answered=bool(answered))


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
    another one was acknowledged since; without it the last save wins. Returns the answer
    as this save wrote it (not attached to the session)."""
    now = now or utcnow()
    if attempt.user_id == user.id:
        _lock(attempt)  # a submit at the same moment scores this answer, or it is refused
    saved, _ = _save_locked(attempt, user, case_id, answers, marks, now, expected_revision,
                            judge=False)
    db.session.commit()
    return saved


def _save_locked(attempt: Attempt, user: User, case_id: int, answers: Any, marks: Any,
                 now: datetime, expected_revision: int | None,
                 judge: bool) -> tuple[AttemptAnswer, bool | None]:
    """Write the answer of a locked attempt (the caller commits): the answer as written and,
    with ``judge``, whether the case now counts as answered."""
    _check_active(attempt, user, now)
    if case_id not in attempt.case_order:
        raise AttemptError(N_("that case is not part of this attempt"), 404)
    scheme = scheme_of(attempt.exercise)
    case = _case_with_images_and_reads(case_id)
    try:
        clean_answers = validate_answers(scheme, answers or {}, partial=True)
        clean_marks = validate_marks_on_images(
            scheme, marks or [], {image.id: image for image in case.images})
    except SchemeError as exc:
        # A final or stale answer is the first thing to tell, as for a valid save.
        _refuse_write(attempt, case_id, expected_revision)
        raise AttemptError(exc.message, **exc.params) from None
    seconds = 0.0
    if attempt.current_case_id == case_id and attempt.current_since is not None:
        # The case on screen: its reading time up to now (as _account_reading does).
        seconds = max(0.0, min(now - attempt.current_since, MAX_READING_GAP).total_seconds())
        attempt.current_since = now
    row = _write(attempt.id, case_id, clean_answers, clean_marks, seconds, now,
                 expected_revision)
    if row is None:
        _refuse_write(attempt, case_id, expected_revision)
        raise AttemptError(N_("the answer could not be saved"), 409)  # not reached: refused
    revision, total_seconds, flagged = row
    saved = AttemptAnswer(attempt_id=attempt.id, case_id=case_id, answers=clean_answers,
                          marks=clean_marks, revision=revision, seconds=total_seconds,
                          saved_at=now, checked_at=None, flagged=flagged)
    answered = _answered(attempt, case, scheme, saved) if judge else None
    return saved, answered


def _case_with_images_and_reads(case_id: int) -> Case:
    """The case with its images and reference reads in one statement (a case has a few of
    each); its tags and findings are not needed here."""
    return db.session.scalars(
        select(Case).where(Case.id == case_id).options(
            joinedload(Case.images), joinedload(Case.reads),
            lazyload(Case.tag_links), lazyload(Case.finding_links))
    ).unique().one()


def _write(attempt_id: int, case_id: int, answers: dict[str, Any],
           marks: list[dict[str, Any]], seconds: float, now: datetime,
           expected_revision: int | None) -> tuple[int, float, bool] | None:
    """One statement: the answer's next revision when the stored one is still
    ``expected_revision`` (any, when None) and not final; None when it is refused."""
    table = AttemptAnswer.__table__
    changes = {"answers": answers, "marks": marks, "revision": table.c.revision + 1,
               "seconds": table.c.seconds + seconds, "saved_at": now}
    writable = table.c.checked_at.is_(None)
    if expected_revision is not None:
        writable = writable & (table.c.revision == expected_revision)
    returned = (table.c.revision, table.c.seconds, table.c.flagged)
    if expected_revision is not None and expected_revision > 0:
        # A revision above 0 exists only as a stored row: no insert.
        statement: Any = (update(table).where(
            table.c.attempt_id == attempt_id, table.c.case_id == case_id, writable)
            .values(**changes).returning(*returned))
    else:
        # The first save, or a row made by a flag or the reading clock (revision 0).
        dialect = db.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = (insert(table).values(
            attempt_id=attempt_id, case_id=case_id, answers=answers, marks=marks, revision=1,
            seconds=seconds, saved_at=now, flagged=False)
            .on_conflict_do_update(index_elements=[table.c.attempt_id, table.c.case_id],
                                   set_=changes, where=writable)
            .returning(*returned))
    found = db.session.execute(statement).first()
    return None if found is None else (found[0], found[1], found[2])


def _refuse_write(attempt: Attempt, case_id: int, expected_revision: int | None) -> None:
    """Raise why the stored answer takes no save, if it takes none: final (its feedback was
    seen), stale (another save came first) or based on a revision that does not exist."""
    stored = db.session.scalars(
        select(AttemptAnswer)
        .where(AttemptAnswer.attempt_id == attempt.id, AttemptAnswer.case_id == case_id)
        .execution_options(populate_existing=True)
    ).first()
    if stored is not None and stored.checked_at is not None:
        raise AttemptError(N_("you have seen the feedback for this case: its answer is final"),
                           409)
    if expected_revision is not None:
        current = stored.revision if stored is not None else 0
        if current != expected_revision:
            raise StaleAnswer(stored) if stored is not None else AttemptError(
                N_("revision %(revision)s of this answer does not exist"), 409,
                revision=expected_revision)


def _answered(attempt: Attempt, case: Case, scheme: Scheme, answer: AttemptAnswer) -> bool:
    """Is the case answered as the scoring counts it (results.answered_case_ids for one
    case, from the case already loaded)?"""
    reference = reference_for(case, reference_key(attempt.exercise))
    return not unanswered(truth_for(case, reference, scheme),
                          read_for(case.id, answer, scheme))
