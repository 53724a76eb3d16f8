"""Scoring a finished attempt against the cases' reference reads (app/quizzes/scoring.py
does the arithmetic; this module turns stored reads into its inputs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import case as when
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.cases.models import Case
from app.cases.reads import Reference, reference_for
from app.extensions import db
from app.quizzes import tallies
from app.quizzes.models import (
    ENDED_STATES,
    Attempt,
    AttemptAnswer,
    Exercise,
    ExerciseCase,
)
from app.quizzes.scoring import (
    AttemptScore,
    CaseRead,
    CaseTruth,
    Criterion,
    Lesion,
    Mark,
    score_attempt,
)
from app.schemes.definitions import Scheme, tb_positive
from app.schemes.registry import classification_item, scheme_of


@dataclass
class CaseFeedback:
    position: int
    case: Case
    reference: Reference
    answer: AttemptAnswer | None
    score: Any  # scoring.CaseScore


def _findings(scheme: Scheme, answers: dict[str, Any]) -> frozenset[str]:
    item = scheme.definition.get("mark_labels")
    value = answers.get(item) if item else None
    return frozenset(value if isinstance(value, list) else [value] if value else [])


def _rating(scheme: Scheme, answers: dict[str, Any]) -> float | None:
    value = answers.get(scheme.rating) if scheme.rating else None
    return float(value) if value is not None else None


def _quality(scheme: Scheme, answers: dict[str, Any]) -> dict[str, bool] | None:
    """Radiographer criteria answered pass/fail, by item key."""
    criteria = {i.key: answers[i.key]["pass"] for i in scheme.items
                if i.type == "criterion" and isinstance(answers.get(i.key), dict)}
    return criteria or None


def truth_for(case: Case, reference: Reference, scheme: Scheme) -> CaseTruth:
    answers = reference.answers
    key = classification_item(scheme)
    lesions = tuple(
        Lesion(id=str(n), image_id=m["image_id"], finding=m["finding"], shape=m["shape"],
               geometry=m["geometry"])
        for n, m in enumerate(reference.marks)
    )
    rating = _rating(scheme, answers)
    return CaseTruth(
        case_id=case.id, tb_positive=reference.tb_positive,
        classification=answers.get(key) if key else None,
        findings=_findings(scheme, answers), lesions=lesions,
        rating=int(rating) if rating is not None else None,
        quality=_quality(scheme, answers),
    )


def read_for(case_id: int, answer: AttemptAnswer | None, scheme: Scheme) -> CaseRead:
    answers = answer.answers if answer else {}
    key = classification_item(scheme)
    rating = _rating(scheme, answers)
    marks = tuple(
        Mark(image_id=m["image_id"], finding=m["finding"], shape=m["shape"],
             geometry=m["geometry"], confidence=m.get("confidence"))
        for m in (answer.marks if answer else [])
    )
    return CaseRead(
        case_id=case_id,
        tb_positive=tb_positive(scheme, answers) if answers else None,
        classification=answers.get(key) if key else None,
        findings=_findings(scheme, answers), rating=rating, marks=marks,
        ordinal=int(rating) if rating is not None else None,
        quality=_quality(scheme, answers),
        reading_seconds=answer.seconds if answer else None,
    )


def score(attempt: Attempt) -> tuple[AttemptScore, list[CaseFeedback]]:
    scheme = scheme_of(attempt.exercise)
    answers = {a.case_id: a for a in attempt.answers}
    pairs, feedback = [], []
    for position, case_id in enumerate(attempt.case_order, 1):
        case = db.session.get(Case, case_id)
        reference = reference_for(case)
        pairs.append((truth_for(case, reference, scheme),
                      read_for(case_id, answers.get(case_id), scheme)))
        feedback.append(CaseFeedback(position, case, reference, answers.get(case_id), None))
    universe = [o.value for o in scheme.mark_labels or ()]
    criteria = [Criterion(c["metric"], minimum=c["minimum"])
                for c in attempt.exercise.criteria or []]
    result = score_attempt(pairs, criteria, findings_universe=universe)
    for item, case_score in zip(feedback, result.cases, strict=True):
        item.score = case_score
    return result, feedback


def case_feedback(attempt: Attempt, position: int) -> CaseFeedback:
    """One case scored on its own (practice feedback during the attempt)."""
    scheme = scheme_of(attempt.exercise)
    case_id = attempt.case_order[position - 1]
    case = db.session.get(Case, case_id)
    answer = next((a for a in attempt.answers if a.case_id == case_id), None)
    reference = reference_for(case)
    universe = [o.value for o in scheme.mark_labels or ()]
    result = score_attempt([(truth_for(case, reference, scheme),
                             read_for(case_id, answer, scheme))], findings_universe=universe)
    return CaseFeedback(position, case, reference, answer, result.cases[0])


def finalise(attempt: Attempt) -> None:
    """Fix the attempt's scores when it ends (the caller commits)."""
    result, _ = score(attempt)
    data = result.to_json()
    old_metrics = attempt.metrics
    attempt.metrics = {
        "metrics": data["metrics"], "intervals": data.get("intervals", {}),
        "grades": data.get("grades", {}),
        # Per case: was the sputum decision right (1/0, None when not answered)? For the
        # trainers' case statistics (difficulty and discrimination).
        "cases": {str(c.case_id): None if c.tb_correct is None else int(c.tb_correct)
                  for c in result.cases},
    }
    attempt.passed = result.passed
    attempt.sensitivity = data["metrics"].get("sensitivity")
    attempt.specificity = data["metrics"].get("specificity")
    tallies.record_scores(attempt, old_metrics)


def rescore(exercise_id: int | None = None) -> int:
    """Re-score ended attempts (after reference reads changed); returns how many."""
    query = select(Attempt).where(Attempt.state.in_(ENDED_STATES))
    if exercise_id is not None:
        query = query.where(Attempt.exercise_id == exercise_id)
    count = 0
    for attempt in db.session.scalars(query):
        finalise(attempt)  # also corrects the attempt's share of the case tallies
        count += 1
    db.session.commit()
    return count


PEERS_NEEDED = 5


def peer_percentile(attempt: Attempt, metric: str = "accuracy") -> tuple[float, int] | None:
    """(percentile, peers) of this attempt's metric among other trainees' latest ended
    attempts at the same exercise: anonymous, and only with at least PEERS_NEEDED peers."""
    mine = ((attempt.metrics or {}).get("metrics") or {}).get(metric)
    if mine is None:
        return None
    latest: dict[int, Attempt] = {}
    for other in db.session.scalars(select(Attempt).where(
            Attempt.exercise_id == attempt.exercise_id, Attempt.user_id != attempt.user_id,
            Attempt.state.in_(ENDED_STATES)).order_by(Attempt.number)):
        latest[other.user_id] = other
    values = [v for a in latest.values()
              if (v := ((a.metrics or {}).get("metrics") or {}).get(metric)) is not None]
    if len(values) < PEERS_NEEDED:
        return None
    below = sum(1 for v in values if v < mine) + 0.5 * sum(1 for v in values if v == mine)
    return 100.0 * below / len(values), len(values)


def learning_curve(attempt: Attempt, metric: str = "accuracy") -> list[tuple[int, float]]:
    """(attempt number, metric) of this trainee's ended attempts at the exercise."""
    attempts = db.session.scalars(select(Attempt).where(
        Attempt.exercise_id == attempt.exercise_id, Attempt.user_id == attempt.user_id,
        Attempt.state.in_(ENDED_STATES)).order_by(Attempt.number))
    return [(a.number, v) for a in attempts
            if (v := ((a.metrics or {}).get("metrics") or {}).get(metric)) is not None]


@dataclass
class CaseStatistic:
    case: Case
    answered: int
    share_correct: float | None  # "difficulty": the share of trainees who got it right
    discrimination: float | None  # correlation of getting it right with the total score


def exercise_statistics(exercise_id: int) -> tuple[dict[str, Any], list[CaseStatistic]]:
    """Pass rate and per-case difficulty and discrimination, to find cases that do not
    measure what they should. Three queries: aggregates over the attempts, the exercise's
    cases, and the running sums per case (tallies.py)."""
    attempts, trainees, graded, passed = db.session.execute(
        select(func.count(Attempt.id), func.count(Attempt.user_id.distinct()),
               func.count(Attempt.passed), func.sum(when((Attempt.passed.is_(True), 1), else_=0)))
        .where(Attempt.exercise_id == exercise_id, Attempt.state.in_(ENDED_STATES),
               Attempt.metrics.is_not(None))
    ).one()
    summary = {
        "attempts": attempts,
        "trainees": trainees,
        "pass_rate": (passed or 0) / graded if graded else None,
    }
    exercise = db.session.scalar(select(Exercise).where(Exercise.id == exercise_id).options(
        selectinload(Exercise.cases).joinedload(ExerciseCase.case)))
    sums = tallies.tallies(exercise_id)
    rows = []
    for link in exercise.cases if exercise else []:
        t = sums.get(link.case_id) or tallies.tally(None)
        rows.append(CaseStatistic(link.case, t.answered, t.share_correct, t.discrimination))
    return summary, rows
