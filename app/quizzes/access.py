"""The attempts' side of who sees which case, and which cases may go into which exercise.

- An open attempt lets its own trainee see its own cases (the images: the answer key
  follows the attempt's review rules, see disclosure.py), until it ends or its deadline
  passes; an exam-bank case only through an exam attempt.
- Exams and practice sets never share a case: a case in any exam, or in the exam bank,
  never goes into a practice set, and a case in a practice set never goes into an exam or
  joins the exam bank. Practice feedback is immediate and retakes are unlimited, so a
  shared case would hand out the exam's answer key.

The case library asks through the signals of app/cases/access.py; ``connect`` answers them
(at app set-up, when the quizzes blueprint is registered).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app.auth.models import User
from app.cases import image_grants
from app.cases.access import case_access_requested, exam_bank_requested
from app.cases.models import Case
from app.db_types import utcnow
from app.extensions import db
from app.i18n import N_
from app.quizzes.models import Attempt, AttemptState, Exercise, ExerciseCase, ExerciseKind
from app.quizzes.refusal import Phrase


def _exercises_holding(case_ids: Iterable[int], kind: ExerciseKind) -> dict[int, list[str]]:
    """Titles of the exercises of ``kind`` that hold each of ``case_ids``."""
    rows = db.session.execute(
        select(ExerciseCase.case_id, Exercise.title)
        .join(Exercise, Exercise.id == ExerciseCase.exercise_id)
        .where(Exercise.kind == kind.value, ExerciseCase.case_id.in_(list(case_ids)))
        .order_by(Exercise.id)
    )
    held: dict[int, list[str]] = {}
    for case_id, title in rows:
        held.setdefault(case_id, []).append(title)
    return held


def separation_conflicts(kind: ExerciseKind, case_ids: Iterable[int]) -> dict[int, Phrase]:
    """The cases that cannot go into an exercise of ``kind``, each with the reason."""
    ids = list(dict.fromkeys(case_ids))
    if kind is ExerciseKind.PRACTICE:
        conflicts = {case_id: Phrase(N_("case %(case)s is in the exam bank"), case=case_id)
                     for case_id in
                     db.session.scalars(select(Case.id).where(Case.id.in_(ids), Case.exam_bank))}
        for case_id, titles in _exercises_holding(ids, ExerciseKind.EXAM).items():
            conflicts.setdefault(case_id, Phrase(N_("case %(case)s is in the exam %(title)s"),
                                                 case=case_id, title=repr(titles[0])))
        return conflicts
    return {case_id: Phrase(N_("case %(case)s is in the practice set %(title)s"),
                            case=case_id, title=repr(titles[0]))
            for case_id, titles in _exercises_holding(ids, ExerciseKind.PRACTICE).items()}


def barred_case_ids(kind: ExerciseKind) -> set[int]:
    """Every case that cannot go into an exercise of ``kind`` (for drawing cases by rule)."""
    other = ExerciseKind.EXAM if kind is ExerciseKind.PRACTICE else ExerciseKind.PRACTICE
    barred = set(db.session.scalars(
        select(ExerciseCase.case_id).join(Exercise, Exercise.id == ExerciseCase.exercise_id)
        .where(Exercise.kind == other.value)))
    if kind is ExerciseKind.PRACTICE:
        barred |= set(db.session.scalars(select(Case.id).where(Case.exam_bank)))
    return barred


def kinds_by_case() -> dict[int, set[str]]:
    """The kinds of exercise ("practice", "exam") each case is in: shown to trainers
    choosing cases, since the two never mix."""
    kinds: dict[int, set[str]] = {}
    for case_id, kind in db.session.execute(
            select(ExerciseCase.case_id, Exercise.kind).distinct()
            .join(Exercise, Exercise.id == ExerciseCase.exercise_id)):
        kinds.setdefault(case_id, set()).add(kind)
    return kinds


def open_attempt_grants(user: User, case: Case, now: datetime | None = None) -> bool:
    """Does one of ``user``'s own open attempts hold ``case`` (and may it show it)?"""
    now = now or utcnow()
    # With their exercises in the same statement: asked on every image request of an exam.
    attempts = db.session.scalars(select(Attempt).where(
        Attempt.user_id == user.id, Attempt.state == AttemptState.IN_PROGRESS.value)
        .options(joinedload(Attempt.exercise)))
    for attempt in attempts:
        if attempt.deadline_at is not None and now >= attempt.deadline_at:
            continue  # over, whether or not anything has ended it yet
        if case.id not in attempt.case_order:
            continue
        if case.exam_bank and attempt.exercise.kind != ExerciseKind.EXAM.value:
            continue  # data from before the separation rule: an exam-bank case in a practice set
        return True
    return False


def remember_attempt_images(attempt: Attempt, cases: Iterable[Case | None],
                            seconds: float) -> None:
    """Its trainee may fetch the images of ``cases`` of ``attempt``, just found open and
    theirs (its case page): remembered for ``seconds`` (image_grants), so that the browser's
    fetches right after the page, the viewed case's and the prefetched next one's, skip the
    access check that would grant them the same way (open_attempt_grants)."""
    for case in cases:
        if case is None or case.id not in attempt.case_order:
            continue
        if case.exam_bank and attempt.exercise.kind != ExerciseKind.EXAM.value:
            continue  # as open_attempt_grants: not through a practice set
        for image in case.images:
            image_grants.remember(attempt.user_id, image.id, image.storage_key, image.etag,
                                  image.version, seconds)


def _grant(sender: User, *, case: Case, **_: object) -> bool:
    return open_attempt_grants(sender, case)


def _exam_bank_objection(sender: Case, **_: object) -> Phrase | None:
    titles = _exercises_holding([sender.id], ExerciseKind.PRACTICE).get(sender.id)
    if not titles:
        return None
    return Phrase(N_("it is in the practice set %(titles)s"),
                  titles=", ".join(repr(t) for t in titles))


def connect(_state: object = None) -> None:
    """Answer the case library's questions (idempotent: connecting twice is once)."""
    case_access_requested.connect(_grant, weak=False)
    exam_bank_requested.connect(_exam_bank_objection, weak=False)
