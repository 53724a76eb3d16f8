"""Scoring an attempt: every case, the attempt-level measures and the pass criteria."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.quizzes.scoring import measures
from app.quizzes.scoring.case import CaseScore, score_case
from app.quizzes.scoring.criteria import CriterionResult, check, lookup
from app.quizzes.scoring.inputs import NORMAL_CLASSES, CaseRead, CaseTruth, Criterion
from app.quizzes.scoring.jsonsafe import finite, json_clean
from app.quizzes.scoring.localisation import Compatible


@dataclass(frozen=True)
class AttemptScore:
    """Everything about one attempt. ``metrics`` holds every scalar figure (None when not
    defined, the reason in ``undefined``); ``intervals`` the 95 % CIs of those that have
    one; ``passed`` is None when the exercise has no criteria. ``metrics["blank_cases"]``
    counts the reads left unanswered (each counted as wrong)."""

    cases: tuple[CaseScore, ...]
    metrics: dict[str, float | None]
    intervals: dict[str, tuple[float, float] | None]
    undefined: dict[str, str]
    confusion: dict[str, int]
    per_finding: dict[str, dict[str, Any]]
    quality: dict[str, dict[str, Any]]
    grades: dict[str, int]
    criteria: tuple[CriterionResult, ...]
    passed: bool | None
    notes: tuple[str, ...] = field(default=())
    # (reference TB-suggestive, likelihood) of every case in the AUC, a missing likelihood
    # as its worst rating: the points of the ROC figure.
    roc: tuple[tuple[bool, float], ...] = field(default=())

    def metric(self, name: str) -> float | None:
        """A metric by name, including ``finding_sensitivity:<finding>`` and
        ``finding_specificity:<finding>``; KeyError for an unknown name."""
        return lookup(name, self.metrics, self.per_finding)[0]

    def stored_json(self) -> dict[str, Any]:
        """What an ended attempt keeps of its score (with its per-case decisions, added by
        the caller): the metrics, their intervals and the grade tallies. The per-case
        detail is not kept (a page re-scores the attempt), so it is not built either."""
        return {
            "metrics": {k: finite(v) for k, v in self.metrics.items()},
            "intervals": {
                k: None if v is None else [finite(v[0]), finite(v[1])]
                for k, v in self.intervals.items()
            },
            "grades": dict(self.grades),
        }

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``json.dumps(..., allow_nan=False)``: no NaN, no infinity."""
        stored = self.stored_json()
        return {
            "metrics": stored["metrics"],
            "intervals": stored["intervals"],
            "undefined": dict(self.undefined),
            "confusion": dict(self.confusion),
            "per_finding": {f: json_clean(v) for f, v in self.per_finding.items()},
            "quality": {c: json_clean(v) for c, v in self.quality.items()},
            "grades": stored["grades"],
            "criteria": [c.to_json() for c in self.criteria],
            "passed": self.passed,
            "notes": list(self.notes),
            "cases": [c.to_json() for c in self.cases],
        }


def score_attempt(
    pairs: Sequence[tuple[CaseTruth, CaseRead]],
    criteria: Sequence[Criterion] = (),
    compatible: Compatible | None = None,
    *,
    findings_universe: Iterable[str] | None = None,
    ordinal_labels: Sequence[int] | None = None,
    kappa_weights: str = "linear",
    normal_classes: frozenset[str] = NORMAL_CLASSES,
    rating_scale: tuple[float, float] | None = None,
) -> AttemptScore:
    """Score every case of an attempt and the attempt as a whole, then apply ``criteria``.

    ``compatible``: the scheme's compatible mark findings (Scheme.compatible_findings).
    ``findings_universe``: the scheme's finding labels, so that per-finding specificity
    counts true negatives for findings nobody named (the union of the named ones is used
    in any case). ``ordinal_labels``: the ordinal scale for weighted kappa (default: every
    whole number from the lowest to the highest value seen). ``rating_scale``: the
    scheme's likelihood scale (low, high), for the worst ROC rating of a missing likelihood
    and for converting likelihoods to the 0-100 mark scale; without it the extremes seen
    stand in for the first and a mark without a confidence rates 50."""
    universe = list(dict.fromkeys(findings_universe or ()))
    for truth, read in pairs:
        for f in sorted(truth.findings | read.findings):
            if f not in universe:
                universe.append(f)
    cases = tuple(
        score_case(
            truth,
            read,
            compatible,
            findings_universe=universe,
            normal_classes=normal_classes,
            rating_scale=rating_scale,
        )
        for truth, read in pairs
    )
    sheet = measures.Sheet()
    sheet.metrics["cases"] = len(pairs)
    if not pairs:
        sheet.notes.append("the attempt has no cases: every metric is undefined")
    confusion = measures.decision_metrics(pairs, cases, sheet)
    measures.classification_metrics(cases, sheet)
    roc = measures.roc_metrics(pairs, cases, sheet, rating_scale)
    measures.ordinal_metrics(pairs, cases, sheet, ordinal_labels, kappa_weights)
    measures.localisation_metrics(pairs, cases, sheet, normal_classes)
    per_finding = measures.per_finding(cases, universe, sheet)
    quality = measures.quality_metrics(pairs, cases, sheet)
    grades = measures.grade_metrics(cases, sheet)
    measures.reading_time(pairs, sheet)
    results = tuple(check(c, sheet.metrics, sheet.undefined, per_finding) for c in criteria)
    passed = all(r.passed for r in results) if results else None
    notes = [
        *sheet.notes,
        *(f"{name} is not defined: {why}" for name, why in sheet.undefined.items()),
    ]
    return AttemptScore(
        cases=cases,
        metrics=sheet.metrics,
        intervals=sheet.intervals,
        undefined=sheet.undefined,
        confusion=confusion,
        per_finding=per_finding,
        quality=quality,
        grades=grades,
        criteria=results,
        passed=passed,
        notes=tuple(notes),
        roc=roc,
    )
