"""Attempt scores equal an independent computation on random attempts with blank and partly
answered reads: numpy counts for the decision metrics, scikit-learn for kappa, weighted
kappa and ROC AUC after mapping every missing answer to the worst one."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, roc_auc_score

from app.quizzes.scoring import CaseRead, CaseTruth, Criterion, score_attempt

LABELS = [1, 2, 3, 4, 5]
SKLEARN_UNDEFINED = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.UndefinedMetricWarning", "ignore::RuntimeWarning"
)


def random_attempt(rng: np.random.Generator) -> list[tuple[CaseTruth, CaseRead]]:
    """Each read is complete, blank (nothing, or a likelihood alone), or partly answered
    (a decision without a likelihood)."""
    pairs = []
    for case_id in range(int(rng.integers(1, 40))):
        tb = bool(rng.random() < 0.5)
        reference_rating = int(rng.integers(3, 6) if tb else rng.integers(1, 4))
        kind = rng.choice(["complete", "complete", "complete", "blank", "likelihood", "partial"])
        decision = None if kind in ("blank", "likelihood") else bool(rng.random() < 0.6)
        if kind == "complete":
            decision = tb if rng.random() < 0.7 else not tb
        rating = None if kind in ("blank", "partial") else int(rng.integers(1, 6))
        classification = None if decision is None else ("abnormal_tb" if decision else "normal")
        pairs.append((
            CaseTruth(case_id, tb, "abnormal_tb" if tb else "normal", frozenset(),
                      rating=reference_rating),
            CaseRead(case_id, decision, classification, frozenset(),
                     rating=None if rating is None else float(rating), ordinal=rating),
        ))
    return pairs


def worst_ordinal(reference: int) -> int:
    """The label farthest from the reference answer (the lowest on a tie)."""
    return max(LABELS, key=lambda label: (abs(label - reference), -label))


def independent(pairs: list[tuple[CaseTruth, CaseRead]]) -> dict[str, float | None]:
    y_true = np.array([t.tb_positive for t, _ in pairs], dtype=bool)
    blank = np.array([r.tb_positive is None for _, r in pairs], dtype=bool)
    # A blank read answers the opposite of the reference: FN on TB, FP on normal.
    y_read = np.where(blank, ~y_true, np.array([bool(r.tb_positive) for _, r in pairs]))
    tp = int(np.sum(y_true & y_read))
    fn = int(np.sum(y_true & ~y_read))
    tn = int(np.sum(~y_true & ~y_read))
    fp = int(np.sum(~y_true & y_read))
    n = len(pairs)
    # The worst ROC rating: the lowest of the scale on a TB case, the highest on a normal one.
    scores = [
        (1 if t.tb_positive else 5) if r.tb_positive is None or r.rating is None else r.rating
        for t, r in pairs
    ]
    ordinal = [
        worst_ordinal(t.rating) if r.tb_positive is None or r.ordinal is None else r.ordinal
        for t, r in pairs
    ]
    reference = [t.rating for t, _ in pairs]
    with np.errstate(all="ignore"):
        kappa = cohen_kappa_score(y_true, y_read, labels=[False, True])
        weighted = cohen_kappa_score(reference, ordinal, labels=LABELS, weights="linear")
    both = 0 < y_true.sum() < n
    return {
        "sensitivity": tp / (tp + fn) if tp + fn else None,
        "specificity": tn / (tn + fp) if tn + fp else None,
        "ppv": tp / (tp + fp) if tp + fp else None,
        "npv": tn / (tn + fn) if tn + fn else None,
        "accuracy": (tp + tn) / n,
        "pabak": 2 * (tp + tn) / n - 1,
        "kappa": None if math.isnan(kappa) else float(kappa),
        "weighted_kappa": None if math.isnan(weighted) else float(weighted),
        "auc": float(roc_auc_score(y_true, scores)) if both else None,
        "blank_cases": int(blank.sum()),
    }


@SKLEARN_UNDEFINED
@pytest.mark.parametrize("seed", range(150))
def test_attempt_scores_equal_an_independent_computation(seed: int) -> None:
    pairs = random_attempt(np.random.default_rng(seed))
    attempt = score_attempt(pairs, [Criterion("sensitivity", 0.8)], rating_scale=(1, 5),
                            ordinal_labels=LABELS)
    expected = independent(pairs)
    for name, value in expected.items():
        got = attempt.metrics[name]
        if value is None:
            assert got is None, name
        else:
            assert got == pytest.approx(value, abs=1e-12), name
    sensitivity = expected["sensitivity"]
    assert attempt.passed is (sensitivity is not None and sensitivity >= 0.8 - 1e-9)
