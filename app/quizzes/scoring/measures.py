"""The attempt-level measures, each over every case the reference answers.

Nothing is left out for being unanswered: a blank read (inputs.unanswered), or the missing
part of a partly answered one, is the wrong answer in each measure:

* sputum decision: a blank TB case is a false negative, a blank normal case a false
  positive (sensitivity, specificity, PPV, NPV, accuracy, kappa, PABAK);
* classification: a missing classification is wrong;
* ROC: a missing likelihood is the worst one (roc.worst_rating), from the scheme's scale;
* weighted kappa: a missing (or off-scale) ordinal answer is the category farthest from the
  reference (agreement.worst_category);
* image quality: an unanswered criterion disagrees with the reference;
* AFROC/wAFROC: a blank normal case counts as a false mark at the top of the mark scale;
  a blank abnormal case's lesions are all missed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from app.quizzes.scoring.agreement import cohen_kappa, pabak, weighted_kappa, worst_category
from app.quizzes.scoring.case import CaseScore
from app.quizzes.scoring.decision import decision_outcome, proportion, wilson_interval
from app.quizzes.scoring.froc import afroc_fom, wafroc_fom
from app.quizzes.scoring.grades import GRADE_UNANSWERED, GRADES, is_abnormal
from app.quizzes.scoring.inputs import CaseRead, CaseTruth
from app.quizzes.scoring.jsonsafe import finite
from app.quizzes.scoring.localisation import MARK_RATING_SCALE
from app.quizzes.scoring.roc import delong, worst_rating

Pairs = Sequence[tuple[CaseTruth, CaseRead]]


class Sheet:
    """Collects metrics, their intervals and the reason each undefined one is None."""

    def __init__(self) -> None:
        self.metrics: dict[str, float | None] = {}
        self.intervals: dict[str, tuple[float, float] | None] = {}
        self.undefined: dict[str, str] = {}
        self.notes: list[str] = []

    def put(self, name: str, value: float | None, why: str = "not defined") -> None:
        value = finite(value)
        self.metrics[name] = value
        if value is None:
            self.undefined[name] = why

    def rate(self, name: str, successes: int, n: int, why: str) -> None:
        """A proportion with its Wilson interval."""
        self.put(name, proportion(successes, n), why)
        self.intervals[name] = wilson_interval(successes, n)


def decision_metrics(pairs: Pairs, cases: Sequence[CaseScore], sheet: Sheet) -> dict[str, int]:
    """Sensitivity ... PABAK on the sputum decision, over every case the reference decides."""
    reference: list[bool] = []
    trainee: list[bool] = []
    counts: Counter[str] = Counter()
    blank = 0
    for (truth, read), case in zip(pairs, cases, strict=True):
        if truth.tb_positive is None:
            continue
        answer = None if case.blank else read.tb_positive
        blank += answer is None
        outcome = decision_outcome(truth.tb_positive, answer)
        counts[outcome] += 1
        reference.append(truth.tb_positive)
        trainee.append(outcome in ("TP", "FP"))
    if blank:
        sheet.notes.append(
            f"{blank} case(s) not answered count as wrong sputum decisions "
            "(false negative on a TB case, false positive on a normal case)"
        )
    tp, fp, fn, tn = counts["TP"], counts["FP"], counts["FN"], counts["TN"]
    none = "no case has a reference sputum decision"
    decided = bool(reference)
    sheet.rate(
        "sensitivity", tp, tp + fn, "no reference case is TB-suggestive" if decided else none
    )
    sheet.rate(
        "specificity", tn, tn + fp, "every reference case is TB-suggestive" if decided else none
    )
    sheet.rate("ppv", tp, tp + fp, "the trainee called no case TB-suggestive" if decided else none)
    sheet.rate(
        "npv", tn, tn + fn, "the trainee called every case TB-suggestive" if decided else none
    )
    sheet.rate("accuracy", tp + tn, len(reference), none)
    sheet.put(
        "kappa",
        cohen_kappa(reference, trainee),
        "the reference and the trainee gave the same single decision to every case "
        "(chance agreement is 1)"
        if decided
        else none,
    )
    sheet.put("pabak", pabak(reference, trainee), none)
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "n": len(reference), "blank": blank}


def classification_metrics(cases: Sequence[CaseScore], sheet: Sheet) -> None:
    judged = [c.classification_correct for c in cases if c.classification_correct is not None]
    sheet.rate(
        "classification_accuracy",
        sum(judged),
        len(judged),
        "no case has a reference classification",
    )


def roc_metrics(
    pairs: Pairs,
    cases: Sequence[CaseScore],
    sheet: Sheet,
    scale: tuple[float, float] | None,
) -> tuple[tuple[bool, float], ...]:
    """ROC AUC with DeLong's CI over every case the reference decides; a missing
    likelihood takes the worst rating of ``scale`` (without a scale: the extremes seen).
    Returns the (reference TB, rating) pairs it used, for the ROC figure."""
    decided = [
        (bool(t.tb_positive), _usable_rating(r, c))
        for (t, r), c in zip(pairs, cases, strict=True)
        if t.tb_positive is not None
    ]
    given = [rating for _, rating in decided if rating is not None]
    if scale is None and given:
        scale = (min(given), max(given))
    if scale is None or not decided:
        why = (
            "no case has a reference sputum decision"
            if not decided
            else "no likelihood rating was given"
        )
        sheet.put("auc", None, why)
        sheet.put("auc_variance", None, why)
        sheet.intervals["auc"] = None
        return ()
    missing = len(decided) - len(given)
    if missing:
        sheet.notes.append(
            f"{missing} case(s) without a likelihood rating take the worst rating for ROC "
            "(the lowest on a TB case, the highest on a normal case)"
        )
    truth = [t for t, _ in decided]
    ratings = [worst_rating(t, scale) if r is None else r for t, r in decided]
    m = sum(truth)
    n = len(truth) - m
    auc, variance, ci = delong(truth, ratings)
    why_auc = (
        f"ROC needs at least one TB-suggestive and one other reference case ({m} and {n} here)"
    )
    sheet.put("auc", auc, why_auc)
    why_var = (
        why_auc
        if auc is None
        else f"DeLong's variance needs at least two cases of each kind ({m} and {n} here)"
    )
    sheet.put("auc_variance", variance, why_var)
    sheet.intervals["auc"] = ci
    if variance == 0.0:
        sheet.notes.append(
            "the DeLong variance is 0 (perfect separation or all ratings tied): the AUC "
            "interval has zero width and understates the uncertainty of a small test set"
        )
    if auc is not None and len(set(ratings)) == 1:
        sheet.notes.append("all likelihood ratings are tied: AUC is 0.5 by the tie rule")
    return tuple(zip(truth, ratings, strict=True))


def _usable_rating(read: CaseRead, case: CaseScore) -> float | None:
    if case.blank or read.rating is None or not math.isfinite(read.rating):
        return None
    return float(read.rating)


def ordinal_metrics(
    pairs: Pairs,
    cases: Sequence[CaseScore],
    sheet: Sheet,
    labels: Sequence[int] | None,
    weights: str,
) -> None:
    """Weighted kappa of the ordinal answer over every case with a reference answer; a
    missing or off-scale trainee answer is the category farthest from the reference."""
    judged = [
        (t.rating, None if c.blank else r.ordinal)
        for (t, r), c in zip(pairs, cases, strict=True)
        if t.rating is not None
    ]
    if labels is None:
        values = {v for pair in judged for v in pair if v is not None}
        if values and all(float(v).is_integer() for v in values):
            labels = list(range(int(min(values)), int(max(values)) + 1))
        else:
            labels = sorted(values)
    known = set(labels)
    off_reference = [p for p in judged if p[0] not in known]
    if off_reference:
        sheet.notes.append(
            f"{len(off_reference)} reference ordinal answer(s) outside the scale are left out "
            "of weighted kappa"
        )
        judged = [p for p in judged if p[0] in known]
    worst = sum(1 for _, answer in judged if answer not in known)
    if worst:
        sheet.notes.append(
            f"{worst} ordinal answer(s) missing or outside the scale count as the category "
            "farthest from the reference"
        )
    reference = [a for a, _ in judged]
    trainee = [b if b in known else worst_category(a, labels) for a, b in judged]
    sheet.put(
        "weighted_kappa",
        weighted_kappa(reference, trainee, labels, weights) if labels else None,
        "the reference and the trainee gave the same single ordinal answer to every case"
        if judged
        else "no case has a reference ordinal answer",
    )


def localisation_metrics(
    pairs: Pairs, cases: Sequence[CaseScore], sheet: Sheet, normal_classes: frozenset[str]
) -> None:
    """LL fraction, NL per case and the AFROC / wAFROC FOMs.

    Normal cases for AFROC: no reference lesion and a normal reference read. A case read
    abnormal by the reference but without lesion regions cannot be used either way (its
    marks are neither false positives on a normal image nor lesion hits) and is left out,
    with a note. A blank normal case's highest NL rating is the top of the mark scale."""
    lesions = [lesion for c in cases for lesion in c.localisation.lesions]
    hit = sum(1 for lesion in lesions if lesion.hit)
    no_lesions = "the reference reads have no lesion regions"
    sheet.rate("lesion_localisation_sensitivity", hit, len(lesions), no_lesions)
    nl = sum(c.localisation.nl for c in cases)
    sheet.put("nl_per_case", nl / len(cases) if cases else None, "the attempt has no cases")
    nl_normal: list[list[float]] = []
    ll: list[list[float | None]] = []
    weights: list[list[float]] = []
    unusable = blank_normal = 0
    for (truth, _), score in zip(pairs, cases, strict=True):
        if truth.lesions:
            ll.append([lesion.rating for lesion in score.localisation.lesions])
            weights.append([lesion.weight for lesion in score.localisation.lesions])
        elif is_abnormal(truth.classification, truth.findings, truth.tb_positive, normal_classes):
            unusable += 1
        else:
            ratings = [m.rating for m in score.localisation.marks]
            if score.blank:
                blank_normal += 1
                ratings.append(MARK_RATING_SCALE[1])
            nl_normal.append(ratings)
    if unusable and lesions:
        sheet.notes.append(
            f"{unusable} abnormal reference case(s) without lesion regions are left out of "
            "AFROC/wAFROC"
        )
    if blank_normal and lesions:
        sheet.notes.append(
            f"{blank_normal} normal case(s) not answered count as a false mark rated "
            f"{MARK_RATING_SCALE[1]:g} in AFROC/wAFROC"
        )
    why = no_lesions if not lesions else "AFROC needs at least one normal reference case"
    sheet.put("afroc", afroc_fom(nl_normal, ll), why)
    sheet.put("wafroc", wafroc_fom(nl_normal, ll, weights), why)
    if lesions and not blank_normal and not any(c.localisation.marks for c in cases):
        sheet.notes.append("no marks at all: every lesion rates -inf, so AFROC/wAFROC are 0.5")


def per_finding(
    cases: Sequence[CaseScore], universe: Sequence[str], sheet: Sheet
) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    no_positive: list[str] = []
    for f in universe:
        counts = Counter(c.findings[f] for c in cases)
        tp, fp, fn, tn = counts["TP"], counts["FP"], counts["FN"], counts["TN"]
        table[f] = {
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "tn": tn,
            "sensitivity": proportion(tp, tp + fn),
            "sensitivity_ci": wilson_interval(tp, tp + fn),
            "specificity": proportion(tn, tn + fp),
            "specificity_ci": wilson_interval(tn, tn + fp),
        }
        if tp + fn == 0:
            no_positive.append(f)
    if no_positive and cases:
        sheet.notes.append(
            "per-finding sensitivity is not defined for findings absent from every reference "
            "read: " + ", ".join(no_positive)
        )
    return table


def quality_metrics(
    pairs: Pairs, cases: Sequence[CaseScore], sheet: Sheet
) -> dict[str, dict[str, Any]]:
    """Agreement on radiographer criteria (pass/fail), overall and per criterion, with
    Cohen's kappa per criterion. An unanswered criterion disagrees with the reference."""
    judgements: dict[str, list[tuple[bool, bool]]] = {}
    unanswered = 0
    for (truth, read), case in zip(pairs, cases, strict=True):
        if not truth.quality:
            continue
        given = {} if case.blank or read.quality is None else read.quality
        for key, verdict in truth.quality.items():
            if key in given:
                answer = bool(given[key])
            else:
                unanswered += 1
                answer = not verdict
            judgements.setdefault(key, []).append((bool(verdict), answer))
    if unanswered:
        sheet.notes.append(
            f"{unanswered} quality criterion answer(s) missing: each counts as a disagreement"
        )
    table: dict[str, dict[str, Any]] = {}
    for key, pairs_ in judgements.items():
        agree = sum(1 for a, b in pairs_ if a == b)
        table[key] = {
            "n": len(pairs_),
            "agree": agree,
            "agreement": proportion(agree, len(pairs_)),
            "agreement_ci": wilson_interval(agree, len(pairs_)),
            "kappa": cohen_kappa([a for a, _ in pairs_], [b for _, b in pairs_]),
        }
    total = sum(v["n"] for v in table.values())
    agreed = sum(v["agree"] for v in table.values())
    sheet.rate("quality_agreement", agreed, total, "no case has image-quality criteria to compare")
    return table


def grade_metrics(cases: Sequence[CaseScore], sheet: Sheet) -> dict[str, int]:
    """Grade tallies; a blank read (U) is discordant, and a major and a significant
    discrepancy (its sputum decision is wrong)."""
    grades = dict.fromkeys(GRADES, 0)
    for case in cases:
        grades[case.grade] += 1
    blank = grades[GRADE_UNANSWERED]
    sheet.rate("concordance", grades["1"], len(cases), "the attempt has no cases")
    sheet.put("major_discrepancies", grades["3a"] + grades["3b"] + blank)
    sheet.put("significant_discrepancies", grades["2b"] + grades["3b"] + blank)
    sheet.put("blank_cases", blank)
    return grades


def reading_time(pairs: Pairs, sheet: Sheet) -> None:
    import numpy as np
    times = [
        float(r.reading_seconds)
        for _, r in pairs
        if r.reading_seconds is not None and math.isfinite(r.reading_seconds)
    ]
    why = "no reading time was recorded"
    sheet.put("mean_reading_seconds", sum(times) / len(times) if times else None, why)
    sheet.put("median_reading_seconds", float(np.median(times)) if times else None, why)
