"""Authoring exercises: create, edit (until the first attempt), clone, publish, close and
delete (when never attempted). Every change is audited.

What an exercise may hold is checked the same way on every path: published cases only, never
a case on the other side of the practice/exam separation (access.separation_conflicts), and
for an image-quality exercise only cases with an image-quality reference read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from flask_babel import LazyString, ngettext
from sqlalchemy import func, select

from app.audit.services import record
from app.auth.models import User
from app.auth.roles import Role
from app.cases.models import Case, CaseStatus, ReadKind
from app.cases.reads import reference_for
from app.db_types import utcnow
from app.extensions import db
from app.i18n import N_
from app.locking import lock_row
from app.quizzes.access import separation_conflicts
from app.quizzes.models import Attempt, Exercise, ExerciseCase, ExerciseKind
from app.quizzes.refusal import LocalTime, Phrase
from app.quizzes.services import CRITERIA_METRICS, AttemptError
from app.quizzes.signals import exercise_deleting
from app.schemes.errors import SchemeError
from app.schemes.parts import Scheme
from app.schemes.registry import get_scheme, is_image_quality

COPY_SUFFIX = " (copy)"


@dataclass
class _Settings:
    """An exercise's settings once checked: its columns, and its cases in order."""

    columns: dict[str, Any]
    case_ids: list[int]


def _check(
    *,
    title: str,
    kind: str,
    scheme: Scheme,
    case_ids: Iterable[int],
    time_limit_minutes: int | None,
    max_attempts: int | None,
    cooldown_hours: int,
    opens_at: datetime | None,
    closes_at: datetime | None,
    shuffle: bool,
    criteria: Iterable[tuple[str, float]],
    audience: dict[str, list[Any]] | None,
    review: dict[str, str] | None,
) -> _Settings:
    if not title.strip():
        raise AttemptError(N_("an exercise needs a title"))
    try:
        exercise_kind = ExerciseKind(kind)
    except ValueError:
        raise AttemptError(N_("unknown exercise kind %(kind)s: practice or exam"),
                           kind=repr(kind)) from None
    ids = list(dict.fromkeys(case_ids))
    if not ids:
        raise AttemptError(N_("an exercise needs at least one case"))
    # The case rows stay locked to the end of this transaction, so that a practice set, an
    # exam or an exam-bank flag being made from the same case at this moment waits for it
    # and then sees it (access.separation_conflicts).
    cases = {c.id: c for c in db.session.scalars(
        select(Case).where(Case.id.in_(ids)).with_for_update())}
    for case_id in ids:
        case = cases.get(case_id)
        if case is None or case.status != CaseStatus.PUBLISHED.value:
            raise AttemptError(N_("case %(case)s is not a published case"), case=case_id)
    if is_image_quality(scheme.key):
        _check_image_quality_cases([cases[case_id] for case_id in ids], scheme)
    conflicts = separation_conflicts(exercise_kind, ids)
    if conflicts:
        reason = conflicts[next(c for c in ids if c in conflicts)]
        raise AttemptError(N_("%(reason)s%(more)s: practice sets and exams never share a case"),
                           409, reason=reason, more=_AndMore(len(conflicts) - 1))
    if time_limit_minutes is not None and time_limit_minutes <= 0:
        raise AttemptError(N_("the time limit must be a positive number of minutes"))
    if opens_at and closes_at and closes_at <= opens_at:
        raise AttemptError(N_("the exercise must close after it opens"))
    from app.quizzes.review_rules import clean as clean_review

    try:
        review_settings = clean_review(exercise_kind.value, review)
    except ValueError as exc:
        raise AttemptError(str(exc)) from None
    if closes_at is None and "after_close" in review_settings.values():
        raise AttemptError(N_("what is shown after the exercise closes needs a closing date"))
    clean_criteria = []
    for metric, minimum in criteria:
        if metric not in CRITERIA_METRICS:
            raise AttemptError(N_("no pass criterion can use %(metric)s"), metric=repr(metric))
        if not 0 <= float(minimum) <= 1:
            raise AttemptError(N_("the minimum for %(metric)s must be between 0 and 1"),
                               metric=metric)
        clean_criteria.append({"metric": metric, "minimum": float(minimum)})
    return _Settings(
        columns={
            "title": title.strip(),
            "kind": exercise_kind.value,
            "scheme_key": scheme.key,
            "scheme_version": scheme.version,
            "time_limit_minutes": time_limit_minutes,
            "max_attempts": max_attempts,
            "cooldown_hours": cooldown_hours,
            "opens_at": opens_at,
            "closes_at": closes_at,
            "shuffle": shuffle,
            "criteria": clean_criteria,
            "audience": _clean_audience(audience or {}),
            "review": review_settings,
        },
        case_ids=ids,
    )


def _check_image_quality_cases(cases: list[Case], scheme: Scheme) -> None:
    """An image-quality exercise is scored against each case's image-quality reference read:
    a case without one cannot go in."""
    missing = [case.id for case in cases
               if not any(r.scheme_key == scheme.key and r.kind == ReadKind.EXPERT.value
                          for r in case.current_reads)]
    if missing:
        more = _AndMore(len(missing) - 1)
        raise AttemptError(N_(
            "case %(case)s%(more)s has no image-quality reference read: an image-quality "
            "exercise takes only cases whose reference read follows the image-quality scheme"),
            case=missing[0], more=more)
    tied = [case.id for case in cases if reference_for(case, scheme.key).open_ties]
    if tied:
        raise AttemptError(N_("the image-quality reads of case %(case)s are tied: adjudicate "
                              "them on the case's page first"), case=tied[0])


def _clean_audience(audience: dict[str, list[Any]]) -> dict[str, list[Any]]:
    roles = sorted({str(r) for r in audience.get("roles") or []})
    for role in roles:
        try:
            Role(role)
        except ValueError:
            raise AttemptError(N_("unknown role %(role)s"), role=repr(role)) from None
    cleaned: dict[str, list[Any]] = {
        "roles": roles,
        "clinic_ids": sorted({int(c) for c in audience.get("clinic_ids") or []}),
        "countries": sorted({str(c).upper() for c in audience.get("countries") or []}),
    }
    # A practice set assigned to named readers (a QC flag's targeted practice set).
    user_ids = sorted({int(u) for u in audience.get("user_ids") or []})
    if user_ids:
        cleaned["user_ids"] = user_ids
    return cleaned


def _scheme(scheme_key: str) -> Scheme:
    try:
        return get_scheme(scheme_key)
    except SchemeError as exc:
        raise AttemptError(exc.message, **exc.params) from None


def create_exercise(
    *,
    title: str,
    kind: str,
    scheme_key: str,
    case_ids: Iterable[int],
    actor: User | None,
    time_limit_minutes: int | None = None,
    max_attempts: int | None = None,
    cooldown_hours: int = 0,
    opens_at: datetime | None = None,
    closes_at: datetime | None = None,
    shuffle: bool = True,
    published: bool = True,
    criteria: Iterable[tuple[str, float]] = (),
    audience: dict[str, list[Any]] | None = None,
    review: dict[str, str] | None = None,
) -> Exercise:
    settings = _check(
        title=title, kind=kind, scheme=_scheme(scheme_key), case_ids=case_ids,
        time_limit_minutes=time_limit_minutes, max_attempts=max_attempts,
        cooldown_hours=cooldown_hours, opens_at=opens_at, closes_at=closes_at,
        shuffle=shuffle, criteria=criteria, audience=audience, review=review,
    )
    exercise = Exercise(
        **settings.columns,
        published=published,
        created_by_id=actor.id if actor else None,
        cases=[ExerciseCase(case_id=cid, position=n) for n, cid in enumerate(settings.case_ids)],
    )
    db.session.add(exercise)
    db.session.flush()
    record(
        "exercise.create",
        actor=actor,
        object_type="exercise",
        object_id=exercise.id,
        kind=exercise.kind,
        cases=len(settings.case_ids),
    )
    db.session.commit()
    return exercise


def attempt_count(exercise: Exercise) -> int:
    """Every attempt at the exercise, in any state (an abandoned one was still taken)."""
    return db.session.scalar(
        select(func.count()).select_from(Attempt).where(Attempt.exercise_id == exercise.id)
    ) or 0


def attempt_counts() -> dict[int, int]:
    """Attempts per exercise, for the trainers' list (one statement)."""
    rows = db.session.execute(
        select(Attempt.exercise_id, func.count()).group_by(Attempt.exercise_id))
    return {exercise_id: count for exercise_id, count in rows}


def edit_refusal(attempts: int) -> LazyString | None:
    """Why an exercise with ``attempts`` attempts cannot be edited, or None."""
    if not attempts:
        return None
    # Lazy: English in a refusal's message, the reader's language on the page.
    return LazyString(lambda: ngettext(
        "it has been attempted (%(num)s attempt): changing it would score trainees on "
        "different terms; clone it to make a changed version",
        "it has been attempted (%(num)s attempts): changing it would score trainees on "
        "different terms; clone it to make a changed version", attempts))


def delete_refusal(attempts: int) -> LazyString | None:
    if not attempts:
        return None
    return LazyString(lambda: ngettext(
        "it has been attempted (%(num)s attempt): its results are kept; close it instead",
        "it has been attempted (%(num)s attempts): its results are kept; close it instead",
        attempts))


def edit_exercise(
    exercise: Exercise,
    *,
    actor: User | None,
    title: str,
    kind: str,
    scheme_key: str,
    case_ids: Iterable[int],
    time_limit_minutes: int | None = None,
    max_attempts: int | None = None,
    cooldown_hours: int = 0,
    opens_at: datetime | None = None,
    closes_at: datetime | None = None,
    shuffle: bool = True,
    criteria: Iterable[tuple[str, float]] = (),
    audience: dict[str, list[Any]] | None = None,
    review: dict[str, str] | None = None,
) -> Exercise:
    """Change an exercise that nobody has attempted yet (refused, with the reason, after)."""
    lock_row(Exercise, exercise.id)
    refusal = edit_refusal(attempt_count(exercise))
    if refusal:
        raise AttemptError(N_("%(title)s cannot be edited: %(reason)s"), 409,
                           title=repr(exercise.title), reason=refusal)
    # The exercise's own cases do not count against it in the separation rules: a practice
    # set keeps its cases when it is edited (only other exercises may conflict).
    if audience is not None and "user_ids" not in audience and (exercise.audience or {}).get(
            "user_ids"):
        # The trainers' form does not show the named readers: they stay as they are.
        audience = {**audience, "user_ids": exercise.audience["user_ids"]}
    before = [link.case_id for link in exercise.cases]
    exercise.cases = []
    db.session.flush()
    try:
        settings = _check(
            title=title, kind=kind, scheme=_scheme(scheme_key), case_ids=case_ids,
            time_limit_minutes=time_limit_minutes, max_attempts=max_attempts,
            cooldown_hours=cooldown_hours, opens_at=opens_at, closes_at=closes_at,
            shuffle=shuffle, criteria=criteria, audience=audience, review=review,
        )
    except AttemptError:
        db.session.rollback()
        raise
    for column, value in settings.columns.items():
        setattr(exercise, column, value)
    exercise.cases = [ExerciseCase(case_id=cid, position=n)
                      for n, cid in enumerate(settings.case_ids)]
    db.session.flush()
    record("exercise.edit", actor=actor, object_type="exercise", object_id=exercise.id,
           kind=exercise.kind, cases=len(settings.case_ids),
           cases_before=len(before))
    db.session.commit()
    return exercise


def clone_exercise(exercise: Exercise, *, actor: User | None) -> Exercise:
    """A copy as a new, unpublished exercise ("… (copy)") that can be edited before it is
    published. Its cases are checked again: one may have been retired or joined the exam
    bank since."""
    settings = _check(
        title=exercise.title[:200 - len(COPY_SUFFIX)] + COPY_SUFFIX,
        kind=exercise.kind,
        scheme=get_scheme(exercise.scheme_key, exercise.scheme_version),
        case_ids=[link.case_id for link in exercise.cases],
        time_limit_minutes=exercise.time_limit_minutes, max_attempts=exercise.max_attempts,
        cooldown_hours=exercise.cooldown_hours, opens_at=exercise.opens_at,
        closes_at=exercise.closes_at, shuffle=exercise.shuffle,
        criteria=[(c["metric"], c["minimum"]) for c in exercise.criteria or []],
        audience=exercise.audience, review=exercise.review,
    )
    copy = Exercise(
        **settings.columns,
        description=exercise.description,
        published=False,
        created_by_id=actor.id if actor else None,
        cases=[ExerciseCase(case_id=cid, position=n) for n, cid in enumerate(settings.case_ids)],
    )
    db.session.add(copy)
    db.session.flush()
    record("exercise.clone", actor=actor, object_type="exercise", object_id=copy.id,
           source=exercise.id)
    db.session.commit()
    return copy


def publish_exercise(exercise: Exercise, *, actor: User | None) -> Exercise:
    """Trainees (its audience) can see and start it from now, within its dates."""
    if exercise.published:
        raise AttemptError(f"{exercise.title!r} is already published", 409)
    exercise.published = True
    record("exercise.publish", actor=actor, object_type="exercise", object_id=exercise.id)
    db.session.commit()
    return exercise


def close_exercise(exercise: Exercise, *, actor: User | None,
                   now: datetime | None = None) -> Exercise:
    """Close it now: its closing date becomes now, so no attempt can start (as at any
    closing date); attempts in progress may still be finished, within their own time."""
    now = now or utcnow()
    if exercise.closes_at is not None and exercise.closes_at <= now:
        raise AttemptError(N_("%(title)s closed on %(time)s already"), 409,
                           title=repr(exercise.title), time=LocalTime(exercise.closes_at))
    if exercise.opens_at is not None and exercise.opens_at > now:
        # A closing date before the opening one would be refused by the form: it never opens.
        exercise.opens_at = now
    was = exercise.closes_at
    exercise.closes_at = now
    record("exercise.close", actor=actor, object_type="exercise", object_id=exercise.id,
           planned_close=was.isoformat() if was else None)
    db.session.commit()
    return exercise


def delete_exercise(exercise: Exercise, *, actor: User | None) -> None:
    """Delete an exercise nobody has attempted (refused, with the reason, after)."""
    lock_row(Exercise, exercise.id)
    refusal = delete_refusal(attempt_count(exercise))
    if refusal:
        raise AttemptError(N_("%(title)s cannot be deleted: %(reason)s"), 409,
                           title=repr(exercise.title), reason=refusal)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    objections = [reason for _, reason in exercise_deleting.send(app, exercise=exercise)
                  if reason]
    if objections:
        raise AttemptError(N_("%(title)s cannot be deleted: %(reason)s"), 409,
                           title=repr(exercise.title), reason=objections[0])
    title, exercise_id = exercise.title, exercise.id
    db.session.delete(exercise)
    record("exercise.delete", actor=actor, object_type="exercise", object_id=exercise_id,
           title=title)
    db.session.commit()


def _AndMore(count: int) -> Phrase | str:
    """" (and 3 more)" after a case number in a refusal, in the reader's language."""
    return Phrase(N_(" (and %(count)s more)"), count=count) if count > 0 else ""
