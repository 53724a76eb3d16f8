"""What of the answer key a trainee sees of an attempt, case by case.

review_rules.py says when an exercise shows each item (score, correctness, reference read,
teaching notes). On top of it a case's key is withheld:

- in a practice set, when the case is in an exam or the exam bank. The two never share a
  case now (access.py), but data from before that rule, or two exercises built from one
  case at the same moment, must still not hand out an exam's key;
- while the trainee has another exam attempt open that holds the case (exams may share
  cases: a resit, a renewal exam).

Every page, figure and JSON that shows anything of the key asks here, and so does starting
an exam: nobody starts an exam whose key they have seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_babel import gettext
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.auth.models import User
from app.db_types import utcnow
from app.extensions import db
from app.quizzes import review_rules
from app.quizzes.access import separation_conflicts
from app.quizzes.models import Attempt, AttemptState, Exercise, ExerciseKind

# The items that tell a trainee a case's answer (the score is a summary over the cases).
KEY_ITEMS = ("correctness", "reference", "teaching_notes")


@dataclass(frozen=True)
class CaseDisclosure:
    correctness: bool = False
    reference: bool = False
    teaching_notes: bool = False

    @property
    def anything(self) -> bool:
        return self.correctness or self.reference or self.teaching_notes


@dataclass(frozen=True)
class AttemptDisclosure:
    score: bool
    cases: tuple[CaseDisclosure, ...]  # in the attempt's case order

    def at(self, position: int) -> CaseDisclosure:
        """The case at 1-based ``position``."""
        return self.cases[position - 1]

    def every_case(self, item: str) -> bool:
        """Summaries over the cases that show each case's outcome (the per-finding table,
        the ROC curve's steps) need ``item`` shown for every case."""
        return bool(self.cases) and all(getattr(c, item) for c in self.cases)


def withheld_cases(attempt: Attempt) -> set[int]:
    """The attempt's cases whose key is withheld whatever its review rules say."""
    ids = set(attempt.case_order)
    withheld: set[int] = set()
    if attempt.exercise.kind == ExerciseKind.PRACTICE.value:
        withheld |= set(separation_conflicts(ExerciseKind.PRACTICE, ids))
    others = db.session.scalars(
        select(Attempt).join(Exercise, Exercise.id == Attempt.exercise_id).where(
            Attempt.user_id == attempt.user_id,
            Attempt.state == AttemptState.IN_PROGRESS.value,
            Attempt.id != attempt.id,
            Exercise.kind == ExerciseKind.EXAM.value,
        ))
    for other in others:
        withheld |= ids & set(other.case_order)
    return withheld


def _checked(attempt: Attempt) -> set[int]:
    return {a.case_id for a in attempt.answers if a.checked_at is not None}


def of_attempt(attempt: Attempt, now: datetime | None = None) -> AttemptDisclosure:
    now = now or utcnow()
    withheld = withheld_cases(attempt)
    checked = _checked(attempt)
    cases = tuple(
        CaseDisclosure(**{
            item: case_id not in withheld and review_rules.visible(
                attempt, item, case_checked=case_id in checked, now=now)
            for item in KEY_ITEMS
        })
        for case_id in attempt.case_order
    )
    return AttemptDisclosure(score=review_rules.visible(attempt, "score", now=now), cases=cases)


def of_case(attempt: Attempt, position: int, now: datetime | None = None) -> CaseDisclosure:
    return of_attempt(attempt, now).at(position)


def seen_keys(user: User, case_ids: Iterable[int],
              now: datetime | None = None) -> dict[int, Attempt]:
    """Which of ``case_ids`` have had their key shown to ``user`` (by an attempt's review
    rules, whatever it withholds now: what was shown once cannot be unseen), each with the
    attempt that showed it."""
    now = now or utcnow()
    wanted = set(case_ids)
    seen: dict[int, Attempt] = {}
    # Each attempt's answers and exercise in one statement each, however many attempts.
    attempts: Sequence[Attempt] = db.session.scalars(
        select(Attempt).where(Attempt.user_id == user.id).order_by(Attempt.id)
        .options(selectinload(Attempt.answers), selectinload(Attempt.exercise))).all()
    for attempt in attempts:
        unseen = wanted.intersection(attempt.case_order) - set(seen)
        if not unseen:
            continue
        checked = _checked(attempt)
        for case_id in unseen:
            if any(review_rules.visible(attempt, item, case_checked=case_id in checked, now=now)
                   for item in KEY_ITEMS):
                seen[case_id] = attempt
    return seen


def shown_notes(notes: Iterable[str], disclosure: AttemptDisclosure,
                findings: Iterable[str]) -> list[str]:
    """The scoring notes a trainee may read: a note about the per-finding table names the
    findings absent from every reference read, so it goes with that table."""
    if disclosure.every_case("correctness"):
        return list(notes)
    names = [f for f in findings if f]
    return [n for n in notes if not n.startswith("per-finding")
            and not any(name in n for name in names)]


def review_payload(item: Any, shown: CaseDisclosure) -> dict[str, Any]:
    """The viewer's data for reviewing one case (``item``: a results.CaseFeedback): the
    trainee's marks, with their outcome when correctness is shown, and the reference marks
    when the reference is shown. Nothing more leaves the server."""
    from app.schemes.display import mark_labels_json
    from app.viewer.services import image_json

    reference = item.reference
    labels = []
    if reference.scheme is not None and reference.scheme.mark_labels:
        labels = mark_labels_json(reference.scheme)
    outcomes = item.score.localisation
    own = list(item.answer.marks) if item.answer else []
    if shown.correctness:
        own = [{**mark, "status": "hit" if outcomes.marks[n].status == "LL" else "false"}
               for n, mark in enumerate(own)]
    payload: dict[str, Any] = {
        "case": {"position": item.position,
                 "title": gettext("Case %(number)s", number=item.position)},
        "images": [image_json(image) for image in item.case.images],
        "labels": labels, "marks": own, "editable": False, "review": True,
    }
    if shown.reference:
        # Each expert's outline takes the outcome of the (merged) lesion it belongs to.
        found = {source: lesion.hit for lesion in outcomes.lesions
                 for source in lesion.outlines}
        payload["reference_marks"] = [
            {**mark, "status": "miss" if shown.correctness and not found.get(str(n))
             else "reference"}
            for n, mark in enumerate(reference.marks)]
    return payload
