"""Scoring a finished attempt against the cases' reference reads (app/quizzes/scoring.py
does the arithmetic; this module turns stored reads into its inputs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import case as when
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.cases.models import Case, CaseImage
from app.cases.reads import Reference, reference_for, references_for
from app.extensions import db
from app.quizzes import standings
from app.quizzes.models import (
    ENDED_STATES,
    Attempt,
    AttemptAnswer,
    Exercise,
    ExerciseCase,
)
from app.quizzes.peer_counts import count_at_commit
from app.quizzes.scoring import (
    AttemptScore,
    CaseRead,
    CaseTruth,
    Criterion,
    Lesion,
    Mark,
    consensus_lesions,
    point_tolerance_px,
    score_attempt,
    unanswered,
)
from app.quizzes.scoring.items import (
    REVIEW_BELOW,
    Flag,
    TotalAnalysis,
    analyse,
    case_set_key,
    compact_scores,
    score_matrix,
)
from app.schemes.answers import tb_positive
from app.schemes.parts import Scheme
from app.schemes.registry import classification_item, is_image_quality, scheme_of


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


def _answered(value: Any) -> bool:
    return value not in (None, "", [])


def _decided(scheme: Scheme, answers: dict[str, Any]) -> bool:
    """Does the read give a sputum decision? Only when the scheme's classification (and a
    required decision item) is answered: a likelihood alone is a blank read, not "not TB"."""
    key = classification_item(scheme)
    if key is not None and not _answered(answers.get(key)):
        return False
    decision = scheme.tb_decision
    if decision and scheme.item(decision["item"]).required:
        return _answered(answers.get(decision["item"]))
    return True


def scoring_options(scheme: Scheme, reads: Sequence[CaseRead] | None = None) -> dict[str, Any]:
    """What score_attempt needs to know of the scheme: the compatible mark findings, the
    findings, the likelihood scale (worst ROC rating, mark ratings on 0-100) and the
    ordinal scale for weighted kappa.

    An optional likelihood (DS-3030's) that none of ``reads`` gives is a question the
    trainee chose not to answer: no ROC, rather than an AUC of 0 from worst ratings."""
    scale = scheme.item(scheme.rating) if scheme.rating else None
    if (scale is not None and not scale.required and reads is not None
            and all(read.rating is None for read in reads)):
        scale = None
    low, high = (scale.minimum, scale.maximum) if scale else (None, None)
    return {
        "compatible": scheme.compatible_findings,
        "findings_universe": [o.value for o in scheme.mark_labels or ()],
        "rating_scale": (low, high) if low is not None and high is not None else None,
        "ordinal_labels": list(range(low, high + 1))
        if low is not None and high is not None
        else None,
    }


def _point_radius(image: CaseImage | None) -> tuple[float, float] | None:
    """The 10 mm point tolerance in pixels on this image (None: an image no longer in the
    case, scored with scoring's last-resort default)."""
    if image is None:
        return None
    spacing = (
        (image.row_spacing_mm, image.column_spacing_mm)
        if image.row_spacing_mm and image.column_spacing_mm
        else None
    )
    return point_tolerance_px(spacing, image.columns)


def _quality(scheme: Scheme, answers: dict[str, Any]) -> dict[str, bool] | None:
    """Radiographer criteria answered pass/fail, by item key."""
    criteria = {i.key: answers[i.key]["pass"] for i in scheme.items
                if i.type == "criterion" and isinstance(answers.get(i.key), dict)}
    return criteria or None


def truth_for(case: Case, reference: Reference, scheme: Scheme) -> CaseTruth:
    """The reference as scoring takes it. Each expert mark is an outline with the index of
    the mark as its id; outlines of one lesion are merged into one (consensus_lesions)."""
    answers = reference.answers
    key = classification_item(scheme)
    images = {image.id: image for image in case.images}
    outlines = [
        Lesion(id=str(n), image_id=m["image_id"], finding=m["finding"], shape=m["shape"],
               geometry=m["geometry"], point_radius=_point_radius(images.get(m["image_id"])))
        for n, m in enumerate(reference.marks)
    ]
    lesions = consensus_lesions(outlines, scheme.compatible_findings)
    rating = _rating(scheme, answers)
    return CaseTruth(
        case_id=case.id, tb_positive=reference.tb_positive,
        classification=answers.get(key) if key else None,
        findings=_findings(scheme, answers), lesions=lesions,
        rating=int(rating) if rating is not None else None,
        quality=_quality(scheme, answers),
    )


class StoredAnswer(Protocol):
    """What scoring reads of an answer: an AttemptAnswer, or a row of its columns (the
    re-scoring reads them without building ORM objects)."""

    @property
    def answers(self) -> dict[str, Any]: ...
    @property
    def marks(self) -> list[dict[str, Any]]: ...
    @property
    def seconds(self) -> float: ...


def read_for(case_id: int, answer: StoredAnswer | None, scheme: Scheme) -> CaseRead:
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
        tb_positive=tb_positive(scheme, answers) if _decided(scheme, answers) else None,
        classification=answers.get(key) if key else None,
        findings=_findings(scheme, answers), rating=rating, marks=marks,
        ordinal=int(rating) if rating is not None else None,
        quality=_quality(scheme, answers),
        reading_seconds=answer.seconds if answer else None,
    )


def reference_key(exercise: Exercise) -> str | None:
    """Which of a case's reference reads an exercise scores against: an image-quality
    exercise the image-quality read, any other the case's diagnostic read (in whichever
    diagnostic scheme: scoring maps the sputum decision across schemes)."""
    return exercise.scheme_key if is_image_quality(exercise.scheme_key) else None


def _cases_with_references(case_ids: list[int], scheme_key: str | None, *,
                           with_notes: bool = False
                           ) -> tuple[dict[int, Case], dict[int, Reference]]:
    """The attempt's cases with their images and reference reads (and their teaching notes
    for the pages that show them), and each case's reference: a constant number of
    statements however many cases (one per table, and one lookup per scheme version),
    instead of a few per case."""
    loaders = [selectinload(Case.images), selectinload(Case.reads)]
    if with_notes:
        loaders.append(selectinload(Case.notes))
    query = select(Case).where(Case.id.in_(case_ids)).options(*loaders)
    cases = {case.id: case for case in db.session.scalars(query)}
    return cases, references_for(cases.values(), scheme_key)


def score(attempt: Attempt) -> tuple[AttemptScore, list[CaseFeedback]]:
    scheme = scheme_of(attempt.exercise)
    answers = {a.case_id: a for a in attempt.answers}
    cases, references = _cases_with_references(attempt.case_order,
                                               reference_key(attempt.exercise),
                                               with_notes=True)
    pairs, feedback = [], []
    for position, case_id in enumerate(attempt.case_order, 1):
        case, reference = cases[case_id], references[case_id]
        pairs.append((truth_for(case, reference, scheme),
                      read_for(case_id, answers.get(case_id), scheme)))
        feedback.append(CaseFeedback(position, case, reference, answers.get(case_id), None))
    result = _score_pairs(attempt, scheme, pairs)
    for item, case_score in zip(feedback, result.cases, strict=True):
        item.score = case_score
    return result, feedback


# Each case's reference as scoring takes it, by (scheme key, version, reference key, case
# id): kept across the attempts of one re-scoring run, whose cases are mostly the same.
TruthCache = dict[tuple[str, int, str | None, int], tuple[CaseTruth, Reference]]


def _score_with_cache(attempt: Attempt, truths: TruthCache,
                      stored: Mapping[int, StoredAnswer] | None = None
                      ) -> tuple[AttemptScore, list[Reference]]:
    """score() without the pages' feedback, the cases' references read from ``truths``
    (and added to it): an exam's 200 cases are loaded once per run, not once per attempt."""
    scheme = scheme_of(attempt.exercise)
    key = reference_key(attempt.exercise)

    def known(case_id: int) -> tuple[str, int, str | None, int]:
        return (scheme.key, scheme.version, key, case_id)

    missing = [case_id for case_id in attempt.case_order if known(case_id) not in truths]
    if missing:
        cases, references = _cases_with_references(missing, key)
        for case_id in missing:
            truths[known(case_id)] = (truth_for(cases[case_id], references[case_id], scheme),
                                      references[case_id])
    answers = stored if stored is not None else {a.case_id: a for a in attempt.answers}
    found = [truths[known(case_id)] for case_id in attempt.case_order]
    pairs = [(truth, read_for(case_id, answers.get(case_id), scheme))
             for case_id, (truth, _) in zip(attempt.case_order, found, strict=True)]
    return _score_pairs(attempt, scheme, pairs), [reference for _, reference in found]


def _score_pairs(attempt: Attempt, scheme: Scheme,
                 pairs: list[tuple[CaseTruth, CaseRead]]) -> AttemptScore:
    criteria = [Criterion(c["metric"], minimum=c["minimum"])
                for c in attempt.exercise.criteria or []]
    return score_attempt(pairs, criteria,
                         **scoring_options(scheme, [read for _, read in pairs]))


def answered_cases(attempt: Attempt, result: AttemptScore | None = None) -> int:
    """How many of the attempt's cases are answered, as the scoring counts them: a read
    that leaves the case's question open (a likelihood without a classification) is not.
    ``result``: the attempt's score, when the caller has it (its blank cases)."""
    if result is not None:
        return len(attempt.case_order) - int(result.metrics["blank_cases"])
    return len(answered_case_ids(attempt))


def answered_case_ids(attempt: Attempt, case_ids: list[int] | None = None) -> set[int]:
    """Which of the attempt's cases (or of ``case_ids`` among them) are answered, as the
    scoring counts them (scoring.unanswered): the one definition of "answered" that the
    result, the case navigator and the submission summary share."""
    wanted = attempt.case_order if case_ids is None else [
        case_id for case_id in case_ids if case_id in attempt.case_order]
    if not wanted:
        return set()
    scheme = scheme_of(attempt.exercise)
    answers = {a.case_id: a for a in attempt.answers}
    cases, references = _cases_with_references(wanted, reference_key(attempt.exercise))
    return {
        case_id for case_id in wanted
        if not unanswered(truth_for(cases[case_id], references[case_id], scheme),
                          read_for(case_id, answers.get(case_id), scheme))}


def case_feedback(attempt: Attempt, position: int) -> CaseFeedback:
    """One case scored on its own (practice feedback during the attempt)."""
    scheme = scheme_of(attempt.exercise)
    case_id = attempt.case_order[position - 1]
    case = db.session.get_one(Case, case_id)  # an attempt keeps its cases
    answer = next((a for a in attempt.answers if a.case_id == case_id), None)
    reference = reference_for(case, reference_key(attempt.exercise))
    read = read_for(case_id, answer, scheme)
    result = score_attempt([(truth_for(case, reference, scheme), read)],
                           **scoring_options(scheme, [read]))
    return CaseFeedback(position, case, reference, answer, result.cases[0])


def finalise(attempt: Attempt, *, just_ended: bool = False,
             truths: TruthCache | None = None,
             answers: Mapping[int, StoredAnswer] | None = None) -> None:
    """Fix the attempt's scores when it ends (``just_ended``) or is re-scored (the caller
    holds the attempt's row lock and commits), and the peer standings that follow.
    ``truths``: the cases' references kept across a re-scoring run; ``answers``: the
    attempt's answers by case, read by the caller (with ``truths`` only)."""
    accuracy_before = attempt.accuracy
    calls_before = None if just_ended else (attempt.metrics or {}).get("calls")
    if truths is None:
        result, feedback = score(attempt)
        references = [item.reference for item in feedback]
    else:
        result, references = _score_with_cache(attempt, truths, answers)
    data = result.stored_json()
    attempt.metrics = {
        "metrics": data["metrics"], "intervals": data["intervals"], "grades": data["grades"],
        # Per case: was the sputum decision right (1/0, None when not answered)? For the
        # trainers' case statistics (difficulty and discrimination).
        "cases": {str(c.case_id): None if c.tb_correct is None else int(c.tb_correct)
                  for c in result.cases},
        # Per case: did the trainee call it TB-suggestive (1/0, None when not answered or
        # when the reference has no sputum decision)? For the anonymous peer comparison.
        "calls": {str(c.case_id): _call(c, reference)
                  for c, reference in zip(result.cases, references, strict=True)},
    }
    attempt.case_set, attempt.case_scores = compact_scores(attempt.metrics["cases"])
    attempt.passed = result.passed
    attempt.sensitivity = data["metrics"].get("sensitivity")
    attempt.specificity = data["metrics"].get("specificity")
    attempt.accuracy = data["metrics"].get("accuracy")
    # The peer figures are shared by the exam's whole cohort: written just before the
    # transaction commits, their locks are held for the commit alone (peer_counts.py).
    count_at_commit(db.session(), exercise_id=attempt.exercise_id, user_id=attempt.user_id,
                    standing=just_ended or attempt.accuracy != accuracy_before,
                    calls_before=calls_before, calls_after=attempt.metrics["calls"])


def _call(case: Any, reference: Reference) -> int | None:
    """The trainee's sputum decision on a case (1: TB-suggestive), from its score."""
    if case.blank or case.tb_correct is None or reference.tb_positive is None:
        return None
    return int(case.tb_correct == bool(reference.tb_positive))


@dataclass(frozen=True)
class VerdictChange:
    """An ended attempt whose pass/fail verdict changed when it was re-scored."""

    attempt_id: int
    user_id: int
    exercise_id: int
    passed_before: bool | None
    passed_after: bool | None


@dataclass
class RescoreReport:
    attempts: int = 0
    changes: list[VerdictChange] = field(default_factory=list)
    # What followed from the new scores, in words, from whoever listens to
    # signals.attempts_rescored (certificates issued, listed for review, ...).
    # What followed (app.sentences.message), for the summary: worded when shown.
    consequences: list[dict[str, Any]] = field(default_factory=list)


def merge_changes(earlier: Sequence[VerdictChange],
                  later: Sequence[VerdictChange]) -> list[VerdictChange]:
    """One change per attempt across an interrupted run and the run that finished it: the
    verdict before the first, after the last; an attempt back where it was has none."""
    merged: dict[int, VerdictChange] = {}
    for change in [*earlier, *later]:
        first = merged.get(change.attempt_id)
        merged[change.attempt_id] = change if first is None else VerdictChange(
            change.attempt_id, change.user_id, change.exercise_id, first.passed_before,
            change.passed_after)
    return [c for c in sorted(merged.values(), key=lambda c: c.attempt_id)
            if c.passed_before != c.passed_after]


def peer_percentile(attempt: Attempt) -> tuple[float, int] | None:
    """(percentile, peers) of this attempt's accuracy among other trainees' latest ended
    attempts at the same exercise: anonymous, and only with at least PEERS_NEEDED peers.
    Read from the running standings (standings.py), not from the attempts."""
    mine = ((attempt.metrics or {}).get("metrics") or {}).get("accuracy")
    return standings.peer_percentile(attempt.exercise_id, attempt.user_id, mine)


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
    flag: Flag | None  # "negative" or "review" (scoring.items.REVIEW_BELOW)
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
    """Pass rate, and the item analysis of the exercise's cases (scoring/items.py), to find
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
