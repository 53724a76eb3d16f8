"""Scoring one case: the decision, the classification, each finding, each mark and the grade."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from app.quizzes.scoring.decision import OUTCOME
from app.quizzes.scoring.grades import discrepancy_grade
from app.quizzes.scoring.inputs import NORMAL_CLASSES, CaseRead, CaseTruth, unanswered
from app.quizzes.scoring.jsonsafe import finite
from app.quizzes.scoring.localisation import (
    Compatible,
    Localisation,
    localise,
    unscored_localisation,
)


@dataclass(frozen=True, slots=True)
class CaseScore:
    case_id: int
    classification_correct: bool | None  # None: the reference has no classification
    tb_correct: bool | None  # None: the reference has no sputum decision
    findings: Mapping[str, str]  # finding -> "TP" | "FP" | "FN" | "TN"
    localisation: Localisation
    grade: str  # "1", "2a", "2b", "3a", "3b" or "U" (not answered)
    grade_reasons: tuple[str, ...]
    reading_seconds: float | None = None
    blank: bool = False  # the read leaves the case unanswered (inputs.unanswered)

    def to_json(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "classification_correct": self.classification_correct,
            "tb_correct": self.tb_correct,
            # Only what was named by either side: a finding of the attempt's universe that
            # is not listed is a TN (keeps a stored 200-case result small).
            "findings": {f: o for f, o in self.findings.items() if o != "TN"},
            "localisation": self.localisation.to_json(),
            "grade": self.grade,
            "grade_reasons": list(self.grade_reasons),
            "reading_seconds": finite(self.reading_seconds),
            "blank": self.blank,
        }


def finding_outcomes(
    truth: Iterable[str],
    read: Iterable[str],
    universe: Iterable[str] | None = None,
    *,
    blank: bool = False,
) -> dict[str, str]:
    """TP/FP/FN/TN per finding label (exact labels; compatibility applies to marks only).

    Without a ``universe`` only findings named by either side are listed, so TN needs the
    scheme's full list of findings passed as ``universe``. A ``blank`` read is wrong on
    every finding: FN where the reference has it, FP elsewhere."""
    t, r = set(truth), set(read)
    if blank:
        r = set()
    labels = sorted(t | r) if universe is None else list(dict.fromkeys([*universe, *t, *r]))
    if blank:
        return {f: "FN" if f in t else "FP" for f in labels}
    return {f: OUTCOME[(f in t, f in r)] for f in labels}


def score_case(
    truth: CaseTruth,
    read: CaseRead,
    compatible: Compatible | None = None,
    *,
    findings_universe: Iterable[str] | None = None,
    normal_classes: frozenset[str] = NORMAL_CLASSES,
    rating_scale: tuple[float, float] | None = None,
) -> CaseScore:
    """Score one case: correctness of the classification and the sputum decision,
    TP/FP/FN/TN per finding, LL/NL per mark and the discrepancy grade. A blank read is
    wrong throughout and its marks are not credited."""
    blank = unanswered(truth, read)
    grade, reasons = discrepancy_grade(truth, read, normal_classes)
    return CaseScore(
        case_id=truth.case_id,
        classification_correct=_correct(truth.classification, read.classification, blank),
        tb_correct=_correct(truth.tb_positive, read.tb_positive, blank),
        findings=finding_outcomes(truth.findings, read.findings, findings_universe, blank=blank),
        localisation=(
            unscored_localisation(truth, read, rating_scale)
            if blank
            else localise(truth, read, compatible, rating_scale=rating_scale)
        ),
        grade=grade,
        grade_reasons=reasons,
        reading_seconds=read.reading_seconds,
        blank=blank,
    )


def _correct(reference: Any, answer: Any, blank: bool) -> bool | None:
    """None when the reference has no answer; a missing answer is wrong."""
    if reference is None:
        return None
    return not blank and answer is not None and answer == reference
