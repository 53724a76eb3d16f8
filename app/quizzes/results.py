"""Scoring a finished attempt against the cases' reference reads (app/quizzes/scoring.py
does the arithmetic; this module turns stored reads into its inputs)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import case as when
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.cases.models import Case
from app.cases.reads import Reference, reference_for
from app.extensions import db
from app.quizzes import tallies
from app.quizzes.item_analysis import (
    REVIEW_BELOW,
    Flag,
    TotalAnalysis,
    analyse,
    case_set_key,
    compact_scores,
    score_matrix,
)
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


def review_payload(item: CaseFeedback) -> dict[str, Any]:
    """The viewer's data for reviewing one case: marks with their outcome."""
    from app.viewer.services import image_json

    scheme_labels = []
    if item.reference.scheme is not None and item.reference.scheme.mark_labels:
        scheme_labels = [{"value": o.value, "label": o.label}
                         for o in item.reference.scheme.mark_labels]
    own = list(item.answer.marks) if item.answer else []
    outcomes = item.score.localisation
    marks = [{**mark, "status": "hit" if outcomes.marks[n].status == "LL" else "false"}
             for n, mark in enumerate(own)]
    hit = {lesion.lesion_id for lesion in outcomes.lesions if lesion.hit}
    reference = [{**mark, "status": "reference" if str(n) in hit else "miss"}
                 for n, mark in enumerate(item.reference.marks)]
    return {
        "case": {"id": item.case.id, "title": f"Case {item.position}"},
        "images": [image_json(image) for image in item.case.images],
        "labels": scheme_labels, "marks": marks, "reference_marks": reference,
        "editable": False, "review": True,
    }


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
    attempt.case_set, attempt.case_scores = compact_scores(attempt.metrics["cases"])
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


class Population(StrEnum):
    """Which ended attempts the case statistics are computed on."""

    FIRST = "first"  # each trainee's first ended attempt: no one weighs more for retaking
    ALL = "all"  # every ended attempt


@dataclass(frozen=True)
class CaseStatistic:
    case: Case
    attempts: int
    share_correct: float | None  # facility index: the share of attempts that got it right
    sd: float | None
    discrimination: float | None  # correlation with the score on the rest of the exercise
    efficiency: float | None  # discriminative efficiency: covariance over its maximum
    flag: Flag | None  # "negative" or "review" (item_analysis.REVIEW_BELOW)
    note: str | None  # why a figure is missing


@dataclass(frozen=True)
class ExerciseStatistics:
    summary: dict[str, Any]  # attempts, trainees, pass_rate: over every ended attempt
    population: Population
    analysed: int  # attempts the case statistics are computed on
    left_out: int  # attempts of the population without a score for every current case
    total: TotalAnalysis
    cases: list[CaseStatistic]
    review_below: float = REVIEW_BELOW  # the flag's threshold, stated on the page


@dataclass(frozen=True)
class _Scores:
    summary: dict[str, Any]
    scores: str  # compact scores of the analysed attempts, laid end to end
    in_population: int
    analysed: int


def _attempt_aggregates(exercise_id: int, population: Population, case_set: str) -> _Scores:
    """The pass-rate counts over every ended attempt and the compact scores of the
    analysed ones, in one pass over the exercise's attempts (one query, whatever their
    number). Attempts at another set of cases than the exercise's current one (taken
    before its cases changed) are left out: their scores do not line up with the current
    cases."""
    ended = (Attempt.exercise_id == exercise_id, Attempt.state.in_(ENDED_STATES),
             Attempt.metrics.is_not(None))
    # Only what the counts need, narrow: the first-attempt ranking sorts these rows, and a
    # sort that outgrows the server's work memory goes to disk.
    columns = [Attempt.user_id, Attempt.passed,
               when((Attempt.case_set == case_set, Attempt.case_scores)).label("scores")]
    if population is Population.FIRST:
        # Each trainee's first ENDED attempt by attempt number (an abandoned attempt before
        # it has no scores and does not count).
        rank = func.row_number().over(partition_by=Attempt.user_id,
                                      order_by=(Attempt.number, Attempt.id))
        rows = select(*columns, rank.label("rank")).where(*ended).subquery()
        in_population: Any = rows.c.rank == 1
    else:
        rows = select(*columns).where(*ended).subquery()
        in_population = rows.c.user_id.is_not(None)
    analysed = when((in_population, rows.c.scores))
    (attempts, trainees, graded, passed, population_size, scores,
     analysed_count) = db.session.execute(select(
         func.count(), func.count(rows.c.user_id.distinct()), func.count(rows.c.passed),
         func.sum(when((rows.c.passed.is_(True), 1), else_=0)),
         func.count(when((in_population, 1))),
         func.aggregate_strings(analysed, ""), func.count(analysed),
     )).one()
    summary = {
        "attempts": attempts,
        "trainees": trainees,
        "pass_rate": (passed or 0) / graded if graded else None,
    }
    return _Scores(summary, scores or "", population_size, analysed_count)


def exercise_statistics(exercise_id: int,
                        population: Population = Population.FIRST) -> ExerciseStatistics:
    """Pass rate, and the item analysis of the exercise's cases (item_analysis.py), to find
    cases that do not measure what they should. The same three queries whatever the number
    of attempts: the exercise and its cases, and one pass over its attempts for the pass
    rate and the compact per-case scores of the analysed attempts."""
    exercise = db.session.scalar(select(Exercise).where(Exercise.id == exercise_id).options(
        selectinload(Exercise.cases).joinedload(ExerciseCase.case)))
    links = list(exercise.cases) if exercise else []
    case_ids = sorted(link.case_id for link in links)
    found = _attempt_aggregates(exercise_id, population, case_set_key(case_ids))
    analysis = analyse(score_matrix(found.scores, len(case_ids)))
    by_case = dict(zip(case_ids, analysis.cases, strict=True))
    rows = []
    for link in links:  # in the exercise's order, not the compact scores' case id order
        item = by_case[link.case_id]
        rows.append(CaseStatistic(link.case, item.attempts, item.facility, item.sd,
                                  item.discrimination, item.efficiency, item.flag, item.note))
    return ExerciseStatistics(found.summary, population, found.analysed,
                              found.in_population - found.analysed, analysis.total, rows)
