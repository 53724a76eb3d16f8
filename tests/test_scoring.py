"""Scoring a read against the reference read (app/quizzes/scoring.py).

Independent references: scikit-learn (AUC, kappa, weighted kappa, confusion matrix) on
random data, brute-force definitions of DeLong and (w)AFROC, pROC's DeLong figures for
aSAH, RJafroc's wAFROC for dataset04, the RJafroc book's 9-lesion example, Newcombe's
published Wilson intervals, and a small attempt worked out by hand.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score, confusion_matrix, roc_auc_score

from app.quizzes import scoring
from app.quizzes.scoring import (
    NL_FINDING,
    NL_OTHER_IMAGE,
    NL_OUTSIDE,
    NL_TAKEN,
    CaseRead,
    CaseTruth,
    Criterion,
    Lesion,
    Mark,
    afroc_fom,
    cohen_kappa,
    delong,
    discrepancy_grade,
    localise,
    mark_position,
    pabak,
    point_in_lesion,
    roc_auc,
    score_attempt,
    score_case,
    wafroc_fom,
    weighted_kappa,
    wilson_interval,
)
from app.schemes.answers import validate_marks
from app.schemes.registry import builtin_schemes
from tests.realservers import missing

REFDATA = Path(__file__).resolve().parents[2] / "shared" / "refdata"
# database=None: no .hypothesis/ folder in the repository (the examples are cheap to redo).
FAST = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
# scikit-learn warns (and returns NaN) where kappa is undefined; we compare against that NaN.
SKLEARN_UNDEFINED = pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")


def refdata(relative: str) -> Any:
    path = REFDATA / relative
    if not path.is_file():
        missing(f"reference data {path} is not there")
    return json.loads(path.read_text(encoding="utf-8"))


def assert_json_clean(value: Any) -> None:
    """Serialisable with allow_nan=False, and no float anywhere is NaN or infinite."""
    json.dumps(value, allow_nan=False)

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for item in v.values():
                walk(item)
        elif isinstance(v, list):
            for item in v:
                walk(item)
        elif isinstance(v, float):
            assert math.isfinite(v)

    walk(value)


def truth(case_id: int, tb: bool | None, cls: str | None = None, findings=(), **kw) -> CaseTruth:
    if cls is None and tb is not None:
        cls = "abnormal_tb" if tb else "normal"
    return CaseTruth(case_id, tb, cls, frozenset(findings), **kw)


def read(case_id: int, tb: bool | None, cls: str | None = None, findings=(), **kw) -> CaseRead:
    if cls is None and tb is not None:
        cls = "abnormal_tb" if tb else "normal"
    return CaseRead(case_id, tb, cls, frozenset(findings), **kw)


def ellipse(lesion_id: str, image_id: int, finding: str, cx, cy, rx, ry, weight=None) -> Lesion:
    geo = {"cx": cx, "cy": cy, "rx": rx, "ry": ry}
    return Lesion(lesion_id, image_id, finding, "ellipse", geo, weight)


def point(image_id: int, finding: str, x: float, y: float, confidence=None) -> Mark:
    return Mark(image_id, finding, "point", {"x": x, "y": y}, confidence)


# ---- published references ---------------------------------------------------------------


def test_delong_matches_proc_for_asah_ndka() -> None:
    # pROC: var(roc(aSAH$outcome, aSAH$ndka)) = 0.0031908105493913 and
    # ci.auc(..., method = "delong") = 0.5012450 - 0.7226710 (AUC 0.6119580).
    data = refdata("proc/aSAH.json")["columns"]
    poor = [outcome == "Poor" for outcome in data["outcome"]]
    auc, variance, ci = delong(poor, data["ndka"])
    assert auc == pytest.approx(0.6119580, abs=1e-6)
    assert variance == pytest.approx(0.0031908105493913, abs=1e-12)
    assert ci is not None
    assert ci[0] == pytest.approx(0.5012450, abs=1e-6)
    assert ci[1] == pytest.approx(0.7226710, abs=1e-6)
    assert roc_auc(poor, data["ndka"]) == pytest.approx(auc, abs=1e-15)
    assert roc_auc_score(poor, data["ndka"]) == pytest.approx(auc, abs=1e-12)


def test_wafroc_matches_rjafroc_for_dataset04() -> None:
    # RJafroc book: UtilFigureOfMerit(dataset04, FOM = "wAFROC"), trt1 rdr1 = 0.7792667.
    data = refdata("rjafroc/dataset04.json")
    first = data["readings"][0]
    assert (first["modality"], first["reader"]) == (data["modalityID"][0], data["readerID"][0])
    fom = wafroc_fom(first["nl_normal"], first["ll_abnormal"], data["weights"])
    assert fom == pytest.approx(0.7792667, abs=1e-6)
    # The weights are equal within a case, so leaving them out changes nothing.
    assert wafroc_fom(first["nl_normal"], first["ll_abnormal"]) == pytest.approx(fom, abs=1e-12)


def test_rjafroc_book_nine_lesion_example() -> None:
    # RJafroc FROC book ("Empirical plots from FROC data", section "AFROC vs. wAFROC"):
    # K1 = 4 normal and K2 = 5 abnormal cases, lesions per case 1, 1, 2, 2, 3 (L = 9).
    # Highest NL rating on each normal case: -inf (no mark), 0.5, max(0.7, 0.6) = 0.7, -0.3.
    # Lesion ratings (None = unmarked = -inf) and weights:
    #   case 1: 0.9 (w 1)   case 2: -0.2 (w 1)   case 3: 1.6 (0.1), unmarked (0.9)
    #   case 4: 3 (0.9), 2 (0.1)                 case 5: 1 (0.3), 2.5 (0.4), 1 (0.3)
    # The NL mark rated 1.5 on abnormal case 1 does not enter either FOM.
    # psi summed over the 4 normal cases (FP = -inf, -0.3, 0.5, 0.7) per lesion:
    #   0.9 -> 4; -0.2 -> 2 (above -inf and -0.3); 1.6 -> 4; -inf -> 0.5 (tie with -inf);
    #   3, 2, 1, 2.5, 1 -> 4 each.
    # AFROC = (4 + 2 + 4 + 0.5 + 5 * 4) / (K1 * L) = 30.5 / 36.
    # wAFROC = (1*4 + 1*2 + (0.1*4 + 0.9*0.5) + (0.9*4 + 0.1*4) + (0.3+0.4+0.3)*4) / (K1*K2)
    #        = (4 + 2 + 0.85 + 4 + 4) / 20 = 14.85 / 20.
    nl_normal = [[], [0.5], [0.7, 0.6], [-0.3]]
    ll = [[0.9], [-0.2], [1.6, None], [3.0, 2.0], [1.0, 2.5, 1.0]]
    weights = [[1.0], [1.0], [0.1, 0.9], [0.9, 0.1], [0.3, 0.4, 0.3]]
    assert afroc_fom(nl_normal, ll) == pytest.approx(30.5 / 36, abs=1e-12)
    assert wafroc_fom(nl_normal, ll, weights) == pytest.approx(14.85 / 20, abs=1e-12)


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [  # Newcombe, Stat Med 1998;17:857-872, Table I, method 3 (Wilson score)
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        (29, 29, 0.8830, 1.0),
    ],
)
def test_wilson_interval_matches_newcombe(successes: int, n: int, low: float, high: float) -> None:
    interval = wilson_interval(successes, n)
    assert interval is not None
    assert interval[0] == pytest.approx(low, abs=5e-5)
    assert interval[1] == pytest.approx(high, abs=5e-5)


def test_wilson_interval_without_cases_is_none() -> None:
    assert wilson_interval(0, 0) is None


# ---- random data against scikit-learn and brute force -------------------------------------


@st.composite
def labelled_ratings(draw: st.DrawFn, min_size: int = 2) -> tuple[list[bool], list[float]]:
    """Truth with at least one of each class; ratings from a small set so ties are common."""
    n = draw(st.integers(min_size, 40))
    truth = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    truth[0], truth[1] = True, False
    pool = draw(st.sampled_from([[1, 2, 3, 4, 5], [0.0, 0.5], [1, 1], list(range(100))]))
    ratings = draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n))
    return truth, [float(r) for r in ratings]


@FAST
@given(labelled_ratings())
def test_roc_auc_equals_sklearn(data: tuple[list[bool], list[float]]) -> None:
    truth, ratings = data
    assert roc_auc(truth, ratings) == pytest.approx(roc_auc_score(truth, ratings), abs=1e-12)


def brute_force_delong(truth: list[bool], ratings: list[float]) -> tuple[float, float]:
    """DeLong et al. 1988 straight from the definition: psi over every pair."""
    pos = [r for t, r in zip(truth, ratings, strict=True) if t]
    neg = [r for t, r in zip(truth, ratings, strict=True) if not t]

    def psi(x: float, y: float) -> float:  # y = positive, x = negative
        return 1.0 if y > x else 0.5 if y == x else 0.0

    v10 = [sum(psi(x, y) for x in neg) / len(neg) for y in pos]
    v01 = [sum(psi(x, y) for y in pos) / len(pos) for x in neg]
    auc = sum(v10) / len(pos)
    s10 = sum((v - auc) ** 2 for v in v10) / (len(pos) - 1)
    s01 = sum((v - auc) ** 2 for v in v01) / (len(neg) - 1)
    return auc, s10 / len(pos) + s01 / len(neg)


@FAST
@given(labelled_ratings(min_size=4))
def test_delong_equals_brute_force(data: tuple[list[bool], list[float]]) -> None:
    truth, ratings = data
    truth[2], truth[3] = True, False  # two of each class: the variance is defined
    auc, variance, ci = delong(truth, ratings)
    expected_auc, expected_var = brute_force_delong(truth, ratings)
    assert auc == pytest.approx(expected_auc, abs=1e-12)
    assert variance == pytest.approx(expected_var, abs=1e-12)
    assert ci is not None and 0.0 <= ci[0] <= auc <= ci[1] <= 1.0


@SKLEARN_UNDEFINED
@FAST
@given(st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from("abc")), max_size=30))
def test_cohen_kappa_equals_sklearn(pairs: list[tuple[str, str]]) -> None:
    a = [x for x, _ in pairs]
    b = [y for _, y in pairs]
    ours = cohen_kappa(a, b)
    if not pairs:
        assert ours is None
        return
    with np.errstate(all="ignore"):
        reference = cohen_kappa_score(a, b, labels=["a", "b", "c"])
    if math.isnan(reference):
        assert ours is None
    else:
        assert ours == pytest.approx(reference, abs=1e-12)


@SKLEARN_UNDEFINED
@FAST
@given(
    st.lists(st.tuples(st.integers(1, 5), st.integers(1, 5)), min_size=1, max_size=30),
    st.sampled_from(["linear", "quadratic"]),
)
def test_weighted_kappa_equals_sklearn(pairs: list[tuple[int, int]], weights: str) -> None:
    a = [x for x, _ in pairs]
    b = [y for _, y in pairs]
    labels = [1, 2, 3, 4, 5]
    ours = weighted_kappa(a, b, labels, weights)
    with np.errstate(all="ignore"):
        reference = cohen_kappa_score(a, b, labels=labels, weights=weights)
    if math.isnan(reference):
        assert ours is None
    else:
        assert ours == pytest.approx(reference, abs=1e-12)


@SKLEARN_UNDEFINED
@FAST
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=40))
def test_decision_metrics_equal_sklearn_confusion_matrix(pairs: list[tuple[bool, bool]]) -> None:
    attempt = score_attempt([(truth(i, t), read(i, r)) for i, (t, r) in enumerate(pairs)])
    y_true = [t for t, _ in pairs]
    y_read = [r for _, r in pairs]
    tn, fp, fn, tp = confusion_matrix(y_true, y_read, labels=[False, True]).ravel()
    assert attempt.confusion == {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "n": len(pairs),
                                 "blank": 0}
    m = attempt.metrics
    assert m["sensitivity"] == (tp / (tp + fn) if tp + fn else None)
    assert m["specificity"] == (tn / (tn + fp) if tn + fp else None)
    assert m["ppv"] == (tp / (tp + fp) if tp + fp else None)
    assert m["npv"] == (tn / (tn + fn) if tn + fn else None)
    assert m["accuracy"] == pytest.approx((tp + tn) / len(pairs))
    assert m["pabak"] == pytest.approx(2 * (tp + tn) / len(pairs) - 1)
    with np.errstate(all="ignore"):
        kappa = cohen_kappa_score(y_true, y_read, labels=[False, True])
    assert m["kappa"] is None if math.isnan(kappa) else m["kappa"] == pytest.approx(kappa)
    assert_json_clean(attempt.to_json())


def brute_force_fom(nl_normal, ll, weights) -> tuple[float, float]:
    """The RJafroc sums written out as loops over k1, k2 and l."""

    def psi(x: float, y: float) -> float:
        return 1.0 if y > x else 0.5 if y == x else 0.0

    fp = [max(case) if case else -math.inf for case in nl_normal]
    k1, k2 = len(fp), len(ll)
    total_lesions = sum(len(case) for case in ll)
    afroc = wafroc = 0.0
    for x in fp:
        for k, case in enumerate(ll):
            for lesion, rating in enumerate(case):
                y = -math.inf if rating is None else rating
                afroc += psi(x, y)
                wafroc += weights[k][lesion] * psi(x, y)
    return afroc / (k1 * total_lesions), wafroc / (k1 * k2)


rating_or_none = st.one_of(st.none(), st.sampled_from([1.0, 2.0, 3.0, 4.0, 5.0]))


@FAST
@given(
    st.lists(
        st.lists(st.sampled_from([1.0, 2.0, 3.0, 4.0, 5.0]), max_size=3), min_size=1, max_size=8
    ),
    st.lists(st.lists(rating_or_none, min_size=1, max_size=3), min_size=1, max_size=8),
    st.randoms(use_true_random=False),
)
def test_afroc_and_wafroc_equal_brute_force(nl_normal, ll, rnd) -> None:
    raw = [[rnd.uniform(0.1, 1.0) for _ in case] for case in ll]
    weights = [[w / sum(case) for w in case] for case in raw]
    expected_afroc, expected_wafroc = brute_force_fom(nl_normal, ll, weights)
    assert afroc_fom(nl_normal, ll) == pytest.approx(expected_afroc, abs=1e-12)
    assert wafroc_fom(nl_normal, ll, weights) == pytest.approx(expected_wafroc, abs=1e-12)


# ---- a small attempt worked out by hand ---------------------------------------------------


def hand_attempt() -> list[tuple[CaseTruth, CaseRead]]:
    """Six cases, tb_screening scheme; case k shows image 10k + 1.

    case  reference                    trainee                         rating  ordinal
    1     TB {infiltrate}, lesion L1   TB {infiltrate}, mark on L1 90     5       5 (ref 5)
    2     TB {cavitary, infiltrate},   TB {cavitary}, mark on L2a 70      4       4 (ref 5)
          L2a (w .75), L2b (w .25)
    3     TB {nodule}, lesion L3       normal, no marks                   2       2 (ref 4)
    4     TB {nodule}, lesion L4       TB {nodule}, marks 50 then 80,     3       3 (ref 4)
                                       both on L4
    5     normal                       TB {nodule}, mark 60               4       4 (ref 1)
    6     normal                       normal, no marks                   1       1 (ref 1)
    """
    lesion_l1 = ellipse("L1", 11, "infiltrate", 100, 100, 20, 20)
    l2a = Lesion(
        "L2a",
        21,
        "cavitary_lesion",
        "rectangle",
        {"x": 50, "y": 50, "width": 40, "height": 40},
        0.75,
    )
    l2b = Lesion(
        "L2b", 21, "infiltrate", "polygon", {"points": [[200, 200], [260, 200], [230, 260]]}, 0.25
    )
    l3 = ellipse("L3", 31, "nodule", 150, 150, 10, 10)
    l4 = ellipse("L4", 41, "nodule", 300, 300, 30, 15)
    square_on_l4 = Mark(
        41, "nodule", "polygon", {"points": [[295, 295], [305, 295], [305, 305], [295, 305]]}, 80
    )
    return [
        (
            truth(1, True, findings={"infiltrate"}, lesions=(lesion_l1,), rating=5),
            read(
                1,
                True,
                findings={"infiltrate"},
                rating=5,
                ordinal=5,
                reading_seconds=30,
                marks=(point(11, "infiltrate", 105, 100, 90),),
            ),
        ),
        (
            truth(
                2, True, findings={"cavitary_lesion", "infiltrate"}, lesions=(l2a, l2b), rating=5
            ),
            read(
                2,
                True,
                findings={"cavitary_lesion"},
                rating=4,
                ordinal=4,
                reading_seconds=45,
                marks=(
                    Mark(
                        21,
                        "cavitary_lesion",
                        "rectangle",
                        {"x": 60, "y": 60, "width": 20, "height": 20},
                        70,
                    ),
                ),
            ),
        ),
        (
            truth(3, True, findings={"nodule"}, lesions=(l3,), rating=4),
            read(3, False, rating=2, ordinal=2, reading_seconds=20),
        ),
        (
            truth(4, True, findings={"nodule"}, lesions=(l4,), rating=4),
            read(
                4,
                True,
                findings={"nodule"},
                rating=3,
                ordinal=3,
                reading_seconds=60,
                marks=(point(41, "nodule", 310, 305, 50), square_on_l4),
            ),
        ),
        (
            truth(5, False, rating=1),
            read(
                5,
                True,
                findings={"nodule"},
                rating=4,
                ordinal=4,
                reading_seconds=25,
                marks=(point(51, "nodule", 80, 80, 60),),
            ),
        ),
        (truth(6, False, rating=1), read(6, False, rating=1, ordinal=1, reading_seconds=40)),
    ]


def test_hand_worked_attempt() -> None:
    attempt = score_attempt(
        hand_attempt(),
        criteria=[
            Criterion("sensitivity", 0.9),
            Criterion("specificity", 0.5),
            Criterion("kappa", 0.2),
            Criterion("major_discrepancies", maximum=0),
            Criterion("finding_sensitivity:infiltrate", 0.5),
        ],
        ordinal_labels=[1, 2, 3, 4, 5],
    )
    m = attempt.metrics
    # Sputum decision: reference + = cases 1-4, trainee + = 1, 2, 4, 5.
    # TP = 3 (1, 2, 4), FN = 1 (3), FP = 1 (5), TN = 1 (6).
    assert attempt.confusion == {"tp": 3, "fp": 1, "fn": 1, "tn": 1, "n": 6, "blank": 0}
    assert m["sensitivity"] == 3 / 4
    assert m["specificity"] == 1 / 2
    assert m["ppv"] == 3 / 4
    assert m["npv"] == 1 / 2
    assert m["accuracy"] == 4 / 6
    # po = 4/6; reference + 4/6, trainee + 4/6: pe = (4/6)^2 + (2/6)^2 = 20/36 = 5/9;
    # kappa = (2/3 - 5/9) / (1 - 5/9) = (1/9) / (4/9) = 1/4. PABAK = 2 * 4/6 - 1 = 1/3.
    assert m["kappa"] == pytest.approx(1 / 4)
    assert m["pabak"] == pytest.approx(1 / 3)
    # Wilson 95 % for 3/4: centre (0.75 + z^2/8) / (1 + z^2/4) = 0.62752,
    # half z sqrt(0.75*0.25/4 + z^2/64) / (1 + z^2/4) = 0.32688 -> (0.3006, 0.9544).
    assert attempt.intervals["sensitivity"] == pytest.approx((0.3006, 0.9544), abs=5e-5)
    # Classification right on cases 1, 2, 4, 6 -> 4/6.
    assert m["classification_accuracy"] == 4 / 6
    # ROC: positives rated 5, 4, 2, 3; negatives 4, 1. Pairs won (positive, negative):
    # 5: 1 + 1; 4: 0.5 (tie) + 1; 2: 0 + 1; 3: 0 + 1 -> 5.5 / 8 = 0.6875.
    assert m["auc"] == 0.6875
    # DeLong: V10 = (1, 0.75, 0.5, 0.5), mean 0.6875, sum of squares 0.171875,
    # S10 = 0.171875 / 3 = 11/192; V01 = (0.375, 1): S01 = 2 * 0.3125^2 / 1 = 25/128.
    # var = S10/4 + S01/2 = 11/768 + 75/768 = 43/384 = 0.111979...
    assert m["auc_variance"] == pytest.approx(43 / 384, abs=1e-15)
    # CI: 0.6875 -/+ 1.959964 * sqrt(43/384) = 0.6875 -/+ 0.655868 -> (0.031632, 1 clipped).
    assert attempt.intervals["auc"] == pytest.approx((0.0316316, 1.0), abs=1e-6)
    # Weighted kappa (linear) of reference 5 5 4 4 1 1 vs trainee 5 4 2 3 4 1 on 1..5:
    # sum |i-j| O = 0 + 1 + 2 + 1 + 3 + 0 = 7. Marginals: reference {1: 2, 4: 2, 5: 2},
    # trainee {1, 2, 3, 5: 1 each, 4: 2}; sum_i sum_j r_i c_j |i-j| = 2*13 + 2*7 + 2*11 = 62,
    # so sum |i-j| E = 62/6 and kappa_w = 1 - 7 / (62/6) = 20/62 = 10/31.
    assert m["weighted_kappa"] == pytest.approx(10 / 31)
    # Lesions: L1 hit (90), L2a hit (70), L2b missed, L3 missed, L4 hit (80, the 50 mark is an
    # NL because L4 was taken). LL fraction 3/5; NLs: case 4 one, case 5 one -> 2/6 per case.
    assert m["lesion_localisation_sensitivity"] == 3 / 5
    assert m["nl_per_case"] == pytest.approx(2 / 6)
    # AFROC: normal cases 5 (max NL 60) and 6 (no mark, -inf). psi sums per lesion:
    # L1 90 -> 2, L2a 70 -> 2, L2b -inf -> 0 + 0.5 (tie with case 6), L3 -> 0.5, L4 80 -> 2.
    # AFROC = 7 / (2 * 5) = 0.7.
    # wAFROC weights L1 1, L2a .75, L2b .25, L3 1, L4 1; K2 = 4:
    # (2 + .75*2 + .25*.5 + 1*.5 + 2) / (2 * 4) = 6.125 / 8 = 0.765625.
    assert m["afroc"] == pytest.approx(0.7)
    assert m["wafroc"] == pytest.approx(0.765625)
    # Per finding (universe: cavitary_lesion, infiltrate, nodule):
    # infiltrate: reference on 1, 2, trainee on 1 -> TP 1 FN 1 TN 4: sens .5, spec 1.
    # nodule: reference on 3, 4, trainee on 4, 5 -> TP 1 FN 1 FP 1 TN 3: sens .5, spec .75.
    infiltrate, nodule = attempt.per_finding["infiltrate"], attempt.per_finding["nodule"]
    assert (infiltrate["tp"], infiltrate["fn"], infiltrate["fp"], infiltrate["tn"]) == (1, 1, 0, 4)
    assert (infiltrate["sensitivity"], infiltrate["specificity"]) == (0.5, 1.0)
    assert (nodule["tp"], nodule["fn"], nodule["fp"], nodule["tn"]) == (1, 1, 1, 3)
    assert (nodule["sensitivity"], nodule["specificity"]) == (0.5, 0.75)
    assert attempt.per_finding["cavitary_lesion"]["sensitivity"] == 1.0
    # Grades: 1 concur; 2 missed infiltrate -> 2a; 3 TB read normal -> 3b; 4 concur;
    # 5 normal read TB -> 3b; 6 concur.
    assert [c.grade for c in attempt.cases] == ["1", "2a", "3b", "1", "3b", "1"]
    assert attempt.grades == {"1": 3, "2a": 1, "2b": 0, "3a": 0, "3b": 2, "U": 0}
    assert m["concordance"] == 0.5
    assert m["major_discrepancies"] == 2
    # Reading time: (30 + 45 + 20 + 60 + 25 + 40) / 6 = 36.67; median (30 + 40) / 2 = 35.
    assert m["mean_reading_seconds"] == pytest.approx(220 / 6)
    assert m["median_reading_seconds"] == 35.0
    # No radiographer criteria in this set.
    assert m["quality_agreement"] is None
    assert "quality_agreement" in attempt.undefined
    # Pass/fail: sensitivity 0.75 < 0.9 fails, major discrepancies 2 > 0 fails, others pass.
    assert attempt.passed is False
    outcome = {c.metric: (c.passed, c.reason) for c in attempt.criteria}
    assert outcome["sensitivity"] == (False, "sensitivity 0.750 is below the minimum 0.9")
    assert outcome["specificity"] == (True, None)
    assert outcome["kappa"] == (True, None)
    assert outcome["major_discrepancies"] == (
        False,
        "major_discrepancies 2 is above the maximum 0",
    )
    assert outcome["finding_sensitivity:infiltrate"] == (True, None)
    assert attempt.metric("finding_specificity:nodule") == 0.75
    assert_json_clean(attempt.to_json())


def test_hand_worked_attempt_weighted_kappa_agrees_with_sklearn() -> None:
    pairs = hand_attempt()
    reference = [t.rating for t, _ in pairs]
    trainee = [r.ordinal for _, r in pairs]
    expected = cohen_kappa_score(reference, trainee, labels=[1, 2, 3, 4, 5], weights="linear")
    assert expected == pytest.approx(10 / 31)
    # Without explicit labels the scale is every whole number from the lowest to the highest.
    assert score_attempt(pairs).metrics["weighted_kappa"] == pytest.approx(10 / 31)


def test_hand_worked_case_details() -> None:
    pairs = hand_attempt()
    case4 = score_case(*pairs[3])
    marks = case4.localisation.marks
    # The 80 square (second in the read) is taken first and credits L4; the 50 point is an NL.
    assert (marks[0].status, marks[0].reason) == ("NL", NL_TAKEN)
    assert (marks[1].status, marks[1].lesion_id, marks[1].rating) == ("LL", "L4", 80.0)
    lesion = case4.localisation.lesions[0]
    assert (lesion.hit, lesion.mark_index, lesion.rating) == (True, 1, 80.0)
    case2 = score_case(*pairs[1])
    assert [les.hit for les in case2.localisation.lesions] == [True, False]
    assert [les.weight for les in case2.localisation.lesions] == [0.75, 0.25]
    assert case2.findings == {"cavitary_lesion": "TP", "infiltrate": "FN"}
    assert case2.grade_reasons == ("finding(s) missed: infiltrate",)
    assert_json_clean(case2.to_json())


# ---- pass/fail ---------------------------------------------------------------------------


def test_criteria_fail_with_reasons() -> None:
    attempt = score_attempt(
        hand_attempt(),
        criteria=[
            Criterion("quality_agreement", 0.8),
            Criterion("no_such_metric", 1),
            Criterion("finding_sensitivity:miliary", 0.5),
            Criterion("specificity", 0.5),
        ],
        findings_universe=["miliary"],
    )
    reasons = {c.metric: c.reason for c in attempt.criteria}
    assert reasons["quality_agreement"] == (
        "not defined: no case has image-quality criteria to compare"
    )
    assert reasons["no_such_metric"] == "unknown metric 'no_such_metric'"
    assert reasons["finding_sensitivity:miliary"] == "not defined: no reference case has 'miliary'"
    assert reasons["specificity"] is None
    assert attempt.passed is False


def test_all_criteria_met_passes_and_no_criteria_is_not_graded() -> None:
    pairs = [
        (truth(i, i % 2 == 0), read(i, i % 2 == 0, rating=float(i % 2 == 0))) for i in range(6)
    ]
    attempt = score_attempt(
        pairs,
        [Criterion("sensitivity", 0.9), Criterion("specificity", 0.8), Criterion("kappa", 0.6)],
    )
    assert attempt.passed is True
    assert all(c.reason is None for c in attempt.criteria)
    assert score_attempt(pairs).passed is None


def test_minimum_is_met_despite_rounding() -> None:
    # 9/10 computed in floating point equals 0.9 here, but a sum like 0.1 * 3 may not:
    # criteria compare with a 1e-9 tolerance.
    pairs = [(truth(i, True), read(i, i < 9)) for i in range(10)]
    attempt = score_attempt(pairs, [Criterion("sensitivity", 0.9)])
    assert attempt.passed is True


# ---- degenerate attempts -----------------------------------------------------------------


def test_all_positive_attempt() -> None:
    pairs = [(truth(i, True), read(i, i != 0, rating=float(i))) for i in range(5)]
    attempt = score_attempt(pairs, [Criterion("specificity", 0.8)])
    m = attempt.metrics
    assert m["sensitivity"] == 4 / 5
    assert m["specificity"] is None and m["npv"] == 0.0
    assert attempt.intervals["specificity"] is None
    assert m["auc"] is None and m["auc_variance"] is None and attempt.intervals["auc"] is None
    assert "every reference case is TB-suggestive" in attempt.undefined["specificity"]
    assert any(note.startswith("specificity is not defined") for note in attempt.notes)
    assert attempt.criteria[0].reason == "not defined: every reference case is TB-suggestive"
    # Reference all positive, trainee mixed: pe = po, so kappa is 0 (defined).
    assert m["kappa"] == 0.0
    assert_json_clean(attempt.to_json())


def test_all_negative_attempt() -> None:
    pairs = [(truth(i, False), read(i, False, rating=1.0)) for i in range(4)]
    attempt = score_attempt(pairs)
    m = attempt.metrics
    assert m["specificity"] == 1.0 and m["npv"] == 1.0
    assert m["sensitivity"] is None and m["ppv"] is None
    # Both always said "no": pe = 1, kappa is 0/0 -> None; PABAK is 1.
    assert m["kappa"] is None and m["pabak"] == 1.0
    assert "chance agreement is 1" in attempt.undefined["kappa"]
    assert m["auc"] is None
    assert_json_clean(attempt.to_json())


def test_all_ratings_tied() -> None:
    pairs = [(truth(i, i < 3), read(i, True, rating=3.0)) for i in range(6)]
    attempt = score_attempt(pairs)
    assert attempt.metrics["auc"] == 0.5
    assert attempt.metrics["auc_variance"] == 0.0
    assert attempt.intervals["auc"] == (0.5, 0.5)
    assert any("all likelihood ratings are tied" in note for note in attempt.notes)
    assert any("zero width" in note for note in attempt.notes)
    assert_json_clean(attempt.to_json())


def test_single_case_attempt() -> None:
    lesion = ellipse("L", 1, "nodule", 10, 10, 5, 5)
    pairs = [(truth(1, True, findings={"nodule"}, lesions=(lesion,)), read(1, True, rating=5))]
    attempt = score_attempt(pairs, [Criterion("auc", 0.7)])
    m = attempt.metrics
    assert m["sensitivity"] == 1.0 and m["specificity"] is None
    assert m["auc"] is None and "(1 and 0 here)" in attempt.undefined["auc"]
    assert m["afroc"] is None and m["wafroc"] is None
    assert attempt.undefined["afroc"] == "AFROC needs at least one normal reference case"
    assert attempt.passed is False
    assert_json_clean(attempt.to_json())


def test_delong_with_one_case_of_a_kind_reports_auc_without_variance() -> None:
    assert delong([True, False, False], [3, 1, 2]) == (1.0, None, None)
    assert delong([True, True], [1, 2]) == (None, None, None)
    assert roc_auc([False], [1.0]) is None
    pairs = [(truth(i, i == 0), read(i, i == 0, rating=float(i == 0))) for i in range(3)]
    attempt = score_attempt(pairs)
    assert attempt.metrics["auc"] == 1.0
    assert attempt.metrics["auc_variance"] is None
    assert "at least two cases of each kind (1 and 2 here)" in attempt.undefined["auc_variance"]


def test_no_marks_at_all() -> None:
    lesions = (ellipse("A", 1, "nodule", 10, 10, 5, 5), ellipse("B", 1, "nodule", 50, 50, 5, 5))
    pairs = [
        (truth(1, True, findings={"nodule"}, lesions=lesions), read(1, True, rating=4)),
        (truth(2, False), read(2, False, rating=1)),
    ]
    attempt = score_attempt(pairs)
    m = attempt.metrics
    # Every lesion -inf, the normal case's max NL -inf: every comparison is a tie worth 1/2.
    assert m["afroc"] == 0.5 and m["wafroc"] == 0.5
    assert m["lesion_localisation_sensitivity"] == 0.0 and m["nl_per_case"] == 0.0
    assert any("no marks at all" in note for note in attempt.notes)
    assert_json_clean(attempt.to_json())


def test_no_lesions_in_the_reference() -> None:
    attempt = score_attempt([(truth(1, False), read(1, False)), (truth(2, True), read(2, True))])
    assert attempt.metrics["lesion_localisation_sensitivity"] is None
    assert attempt.metrics["afroc"] is None
    assert attempt.undefined["afroc"] == "the reference reads have no lesion regions"


def test_empty_attempt() -> None:
    attempt = score_attempt([], [Criterion("accuracy", 0.5)])
    m = attempt.metrics
    assert m["cases"] == 0
    defined = {k for k, v in m.items() if v is not None}
    assert defined == {"cases", "major_discrepancies", "significant_discrepancies",
                       "blank_cases"}
    assert attempt.passed is False
    assert attempt.criteria[0].reason.startswith("not defined: ")
    assert "the attempt has no cases: every metric is undefined" in attempt.notes
    assert_json_clean(attempt.to_json())
    assert score_attempt([]).passed is None


def test_scheme_without_decision_or_ratings_radiographer_set() -> None:
    reference = [
        {"inclusion": True, "rotation": False, "exposure": True},
        {"inclusion": True, "rotation": True, "exposure": False},
        {"inclusion": False, "rotation": True, "exposure": True},
    ]
    trainee = [
        {"inclusion": True, "rotation": False, "exposure": False},
        {"inclusion": True, "rotation": True, "exposure": False},
        {"inclusion": False, "rotation": False},  # exposure left unanswered
    ]
    pairs = [
        (
            CaseTruth(i, None, str(i % 3 + 1), frozenset(), quality=q, rating=i % 3 + 1),
            CaseRead(i, None, str(i % 3 + 1), frozenset(), quality=a, ordinal=i % 3 + 1),
        )
        for i, (q, a) in enumerate(zip(reference, trainee, strict=True))
    ]
    attempt = score_attempt(pairs, [Criterion("quality_agreement", 0.6)])
    # 9 judgements, 6 agree: the unanswered one counts as a disagreement.
    assert attempt.metrics["quality_agreement"] == 6 / 9
    assert attempt.quality["rotation"]["agree"] == 2 and attempt.quality["rotation"]["n"] == 3
    assert attempt.quality["exposure"]["n"] == 3 and attempt.quality["exposure"]["agree"] == 1
    assert attempt.metrics["weighted_kappa"] == 1.0
    assert attempt.metrics["sensitivity"] is None and attempt.metrics["auc"] is None
    assert attempt.passed is True
    assert [c.grade for c in attempt.cases] == ["2a", "1", "2a"]
    assert any("missing" in note for note in attempt.notes)
    assert_json_clean(attempt.to_json())


def test_non_finite_inputs_never_reach_the_output() -> None:
    pairs = [
        (truth(1, True), read(1, True, rating=math.inf, reading_seconds=math.nan)),
        (truth(2, False), read(2, False, rating=1.0, reading_seconds=12.0)),
    ]
    attempt = score_attempt(pairs)
    # The infinite rating counts as missing: the TB case takes the worst rating seen (1.0),
    # tying the normal case.
    assert attempt.metrics["auc"] == 0.5
    assert attempt.metrics["mean_reading_seconds"] == 12.0
    assert_json_clean(attempt.to_json())


# ---- localisation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lesion", "inside", "edge", "outside"),
    [
        (ellipse("e", 1, "f", 100, 50, 20, 10), (110, 52), (120, 50), (119, 58)),
        (
            Lesion("r", 1, "f", "rectangle", {"x": 10, "y": 20, "width": 30, "height": 40}),
            (25, 40),
            (40, 60),  # the far corner
            (41, 40),
        ),
        (
            Lesion("p", 1, "f", "polygon", {"points": [[0, 0], [10, 0], [10, 10], [0, 10]]}),
            (5, 5),
            (10, 3),
            (10.001, 3),
        ),
        (
            # concave "L": the notch (7, 7) is outside although inside the bounding box
            Lesion(
                "L",
                1,
                "f",
                "polygon",
                {"points": [[0, 0], [10, 0], [10, 4], [4, 4], [4, 10], [0, 10]]},
            ),
            (2, 8),
            (4, 7),  # on the inner edge
            (7, 7),
        ),
        (Lesion("pt", 1, "f", "point", {"x": 50, "y": 50}), (55, 55), (60, 50), (57.1, 57.1)),
        (Lesion("pr", 1, "f", "point", {"x": 50, "y": 50, "r": 3}), (51, 51), (53, 50), (54, 50)),
    ],
)
def test_point_in_lesion(lesion: Lesion, inside, edge, outside) -> None:
    assert point_in_lesion(lesion, *inside)
    assert point_in_lesion(lesion, *edge)
    assert not point_in_lesion(lesion, *outside)


def test_polygon_vertices_count_as_inside() -> None:
    triangle = Lesion("t", 1, "f", "polygon", {"points": [[0, 0], [10, 0], [5, 8]]})
    assert all(point_in_lesion(triangle, x, y) for x, y in [(0, 0), (10, 0), (5, 8), (2.5, 4)])


@pytest.mark.parametrize(
    ("mark", "position"),
    [
        (point(1, "f", 3, 4), (3.0, 4.0)),
        (Mark(1, "f", "ellipse", {"cx": 7, "cy": 8, "rx": 2, "ry": 3}), (7.0, 8.0)),
        (Mark(1, "f", "rectangle", {"x": 10, "y": 20, "width": 4, "height": 6}), (12.0, 23.0)),
        # area centroid, not the vertex mean: the extra vertex on an edge does not pull it
        (Mark(1, "f", "polygon", {"points": [[0, 0], [2, 0], [4, 0], [4, 4], [0, 4]]}), (2.0, 2.0)),
        (Mark(1, "f", "polygon", {"points": [[0, 0], [6, 0], [0, 6]]}), (2.0, 2.0)),
        (Mark(1, "f", "polygon", {"points": [[0, 0], [1, 1], [2, 2]]}), (1.0, 1.0)),  # degenerate
    ],
)
def test_mark_position(mark: Mark, position: tuple[float, float]) -> None:
    assert mark_position(mark) == pytest.approx(position)


@pytest.mark.parametrize(
    "mark",
    [
        point(7, "nodule", 100, 100),
        Mark(7, "nodule", "ellipse", {"cx": 100, "cy": 100, "rx": 50, "ry": 50}),
        Mark(7, "nodule", "rectangle", {"x": 80, "y": 90, "width": 40, "height": 20}),
        Mark(7, "nodule", "polygon", {"points": [[90, 90], [110, 90], [100, 120]]}),
    ],
)
def test_each_mark_shape_localises_by_its_centre(mark: Mark) -> None:
    lesion = ellipse("L", 7, "nodule", 100, 103, 8, 8)
    result = localise(truth(1, True, lesions=(lesion,)), read(1, True, marks=(mark,)))
    assert result.marks[0].status == "LL"
    assert result.lesions[0].hit


def test_mark_on_the_edge_is_a_lesion_localisation() -> None:
    lesion = ellipse("L", 1, "nodule", 100, 100, 20, 10)
    result = localise(
        truth(1, True, lesions=(lesion,)), read(1, True, marks=(point(1, "nodule", 100, 110),))
    )
    assert result.marks[0].status == "LL"


def test_mark_on_the_wrong_image_is_an_nl() -> None:
    lesion = ellipse("L", 1, "nodule", 100, 100, 20, 20)
    result = localise(
        truth(1, True, lesions=(lesion,)), read(1, True, marks=(point(2, "nodule", 100, 100),))
    )
    assert (result.marks[0].status, result.marks[0].reason) == ("NL", NL_OTHER_IMAGE)
    assert not result.lesions[0].hit and result.lesions[0].rating is None


def test_mark_outside_the_lesion_is_an_nl() -> None:
    lesion = ellipse("L", 1, "nodule", 100, 100, 20, 20)
    result = localise(
        truth(1, True, lesions=(lesion,)), read(1, True, marks=(point(1, "nodule", 130, 100),))
    )
    assert (result.marks[0].status, result.marks[0].reason) == ("NL", NL_OUTSIDE)


def test_incompatible_finding_is_an_nl_and_compatible_one_is_an_ll() -> None:
    lesion = ellipse("L", 1, "infiltrate", 100, 100, 20, 20)
    case_truth = truth(1, True, lesions=(lesion,))
    wrong = read(1, True, marks=(point(1, "pleural_effusion", 100, 100),))
    result = localise(case_truth, wrong)
    assert (result.marks[0].status, result.marks[0].reason) == ("NL", NL_FINDING)
    generic = read(1, True, marks=(point(1, "tb_lesion", 100, 100),))
    assert localise(case_truth, generic).marks[0].status == "NL"
    compatible = {"tb_lesion": {"infiltrate", "cavitary_lesion", "nodule"}}
    assert localise(case_truth, generic, compatible).marks[0].status == "LL"
    # The relation is symmetric: a reference "tb_lesion" accepts an "infiltrate" mark.
    generic_lesion = ellipse("G", 1, "tb_lesion", 100, 100, 20, 20)
    specific = read(1, True, marks=(point(1, "infiltrate", 100, 100),))
    assert localise(truth(1, True, lesions=(generic_lesion,)), specific, compatible).ll == 1


def test_two_marks_on_one_lesion_give_one_ll_and_one_nl() -> None:
    lesion = ellipse("L", 1, "nodule", 100, 100, 20, 20)
    marks = (point(1, "nodule", 95, 100, 40), point(1, "nodule", 105, 100, 40))
    result = localise(truth(1, True, lesions=(lesion,)), read(1, True, marks=marks))
    # Equal confidence: the tie goes by content (the leftmost mark), not by the read's order.
    assert [m.status for m in result.marks] == ["LL", "NL"]
    assert result.marks[1].reason == NL_TAKEN
    assert (result.ll, result.nl) == (1, 1)
    swapped = localise(truth(1, True, lesions=(lesion,)), read(1, True, marks=marks[::-1]))
    assert [m.status for m in swapped.marks] == ["NL", "LL"]


def test_the_higher_rated_mark_is_credited() -> None:
    lesion = ellipse("L", 1, "nodule", 100, 100, 20, 20)
    marks = (point(1, "nodule", 95, 100, 30), point(1, "nodule", 105, 100, 90))
    result = localise(truth(1, True, lesions=(lesion,)), read(1, True, marks=marks))
    assert [m.status for m in result.marks] == ["NL", "LL"]
    assert result.lesions[0].rating == 90.0 and result.lesions[0].mark_index == 1


def test_mark_without_confidence_takes_the_converted_likelihood_then_the_middle() -> None:
    lesion = ellipse("L", 1, "nodule", 100, 100, 20, 20)
    case_truth = truth(1, True, lesions=(lesion,))
    with_rating = localise(
        case_truth, read(1, True, rating=4, marks=(point(1, "nodule", 100, 100),)),
        rating_scale=(1, 5),
    )
    assert with_rating.lesions[0].rating == 75.0
    without = localise(case_truth, read(1, True, marks=(point(1, "nodule", 100, 100),)))
    assert without.lesions[0].rating == 50.0


def test_overlapping_lesions_each_credited_once() -> None:
    a = ellipse("A", 1, "nodule", 100, 100, 30, 30)
    b = ellipse("B", 1, "nodule", 110, 100, 30, 30)
    marks = (point(1, "nodule", 105, 100, 90), point(1, "nodule", 106, 100, 80))
    result = localise(truth(1, True, lesions=(a, b)), read(1, True, marks=marks))
    assert [m.lesion_id for m in result.marks] == ["A", "B"]
    assert all(lesion.hit for lesion in result.lesions)


def test_marks_from_validate_marks_can_be_scored() -> None:
    scheme = builtin_schemes()["tb_screening"]
    clean = validate_marks(
        scheme,
        [
            {
                "finding": "nodule",
                "shape": "ellipse",
                "geometry": {"cx": 100, "cy": 100, "rx": 5, "ry": 5},
                "confidence": 70,
            }
        ],
        columns=512,
        rows=512,
    )
    marks = tuple(Mark.from_dict({**m, "image_id": 3}) for m in clean)
    lesion = ellipse("L", 3, "nodule", 102, 101, 10, 10)
    assert localise(truth(1, True, lesions=(lesion,)), read(1, True, marks=marks)).ll == 1


def test_bad_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match="shape"):
        Mark(1, "nodule", "circle", {"x": 1, "y": 1})


def test_round_trip_through_dicts() -> None:
    for case_truth, case_read in hand_attempt():
        assert CaseTruth.from_dict(json.loads(json.dumps(case_truth.to_dict()))) == case_truth
        assert CaseRead.from_dict(json.loads(json.dumps(case_read.to_dict()))) == case_read
    assert Criterion.from_dict(Criterion("kappa", 0.6).to_dict()) == Criterion("kappa", 0.6)


# ---- discrepancy grades ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "trainee", "grade"),
    [
        # concur
        (truth(1, True, findings={"infiltrate"}), read(1, True, findings={"infiltrate"}), "1"),
        (truth(1, False), read(1, False), "1"),
        # TB-suggestive case read normal: missed abnormality, sputum decision changes
        (truth(1, True, findings={"cavitary_lesion"}), read(1, False), "3b"),
        # normal case read TB-suggestive
        (truth(1, False), read(1, True, findings={"nodule"}), "3b"),
        # abnormal, not TB (cardiac) read normal: missed, but no sputum consequence
        (truth(1, False, "abnormal_not_tb", {"other"}), read(1, False), "3a"),
        # normal read abnormal-not-TB
        (truth(1, False), read(1, False, "abnormal_not_tb", {"calcified_nodule"}), "3a"),
        # abnormality seen but judged not TB-suggestive: minor kind, clinically significant
        (
            truth(1, True, findings={"fibrosis"}),
            read(1, False, "abnormal_not_tb", {"fibrosis"}),
            "2b",
        ),
        (
            truth(1, False, "abnormal_not_tb", {"calcified_nodule"}),
            read(1, True, findings={"nodule"}),
            "2b",
        ),
        # right decision, a second TB finding missed / an extra finding added
        (
            truth(1, True, findings={"infiltrate", "cavitary_lesion"}),
            read(1, True, findings={"infiltrate"}),
            "2a",
        ),
        (
            truth(1, True, findings={"infiltrate"}),
            read(1, True, findings={"infiltrate", "hilar_adenopathy"}),
            "2a",
        ),
        # DS-3030: "abnormal" both, but the findings put the sputum decision apart
        (
            CaseTruth(1, True, "abnormal", frozenset({"fibrosis"})),
            CaseRead(1, False, "abnormal", frozenset({"calcified_nodule"})),
            "2b",
        ),
        # no classification at all: findings decide normal/abnormal
        (
            CaseTruth(1, True, None, frozenset({"miliary"})),
            CaseRead(1, False, None, frozenset()),
            "3b",
        ),
        # trainee gave no sputum decision: the read is blank, graded U (not answered)
        (truth(1, True, findings={"nodule"}), read(1, None, "normal"), "U"),
    ],
)
def test_discrepancy_grade(reference: CaseTruth, trainee: CaseRead, grade: str) -> None:
    got, reasons = discrepancy_grade(reference, trainee)
    assert got == grade
    assert bool(reasons) == (grade != "1")


def test_discrepancy_reasons_are_readable() -> None:
    grade, reasons = discrepancy_grade(truth(1, True, findings={"nodule"}), read(1, False))
    assert grade == "3b"
    assert reasons == (
        "abnormal image read as normal",
        "sputum decision differs: reference needs smears and cultures",
        "classification 'normal', reference 'abnormal_tb'",
        "finding(s) missed: nodule",
    )


def test_pabak_and_kappa_small_cases() -> None:
    assert pabak([True, False], [True, True]) == 0.0
    assert pabak([], []) is None
    assert cohen_kappa([], []) is None
    assert cohen_kappa([1, 1, 1], [1, 1, 1]) is None
    assert weighted_kappa([3, 3], [3, 3], [1, 2, 3, 4, 5]) is None
    with pytest.raises(ValueError, match="labels"):
        weighted_kappa([1], [9], [1, 2, 3])


PURE_IMPORTS = {
    "__future__", "math", "json", "hashlib", "collections", "dataclasses", "typing", "numpy",
    "scipy",
    "app.schemes.answers",
}


def test_every_module_of_the_package_is_pure() -> None:
    """No Flask, no database: the standard library, numpy, scipy, the schemes' definitions
    and the package's own modules."""
    package = Path(scoring.__file__).parent
    assert Path(scoring.__file__).name == "__init__.py"
    modules = sorted(package.glob("*.py"))
    assert len(modules) >= 10
    for module in modules:
        assert len(module.read_text(encoding="utf-8").splitlines()) < 500, module.name
        tree = ast.parse(module.read_text(encoding="utf-8"))
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                name = node.module
                if name.startswith("app.quizzes.scoring"):
                    continue
                imported.add(name if name.startswith("app") else name.split(".")[0])
        assert imported <= PURE_IMPORTS, (module.name, imported - PURE_IMPORTS)


def test_the_package_exports_every_name_used_elsewhere() -> None:
    used = set()
    root = Path(__file__).resolve().parents[1]
    for folder in ("app", "tests", "bench"):
        for path in (root / folder).rglob("*.py"):
            if "scoring" in path.parts and path.parent.name == "scoring":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module == "app.quizzes.scoring":
                    used |= {alias.name for alias in node.names}
    assert used
    assert used <= set(scoring.__all__)
    assert all(hasattr(scoring, name) for name in scoring.__all__)


def test_ordinal_answers_outside_the_scale_count_as_the_worst() -> None:
    pairs = [
        (truth(1, True, rating=5), read(1, True, ordinal=5)),
        (truth(2, False, rating=1), read(2, False, ordinal=1)),
        (truth(3, False, rating=1), read(3, False, ordinal=9)),  # counts as 5
        (truth(4, False, rating=9), read(4, False, ordinal=1)),  # reference off the scale
    ]
    attempt = score_attempt(pairs, ordinal_labels=[1, 2, 3, 4, 5])
    expected = cohen_kappa_score([5, 1, 1], [5, 1, 5], labels=[1, 2, 3, 4, 5], weights="linear")
    assert attempt.metrics["weighted_kappa"] == pytest.approx(expected)
    assert any("outside the scale count as the category farthest" in n for n in attempt.notes)
    assert any("reference ordinal answer(s) outside the scale" in n for n in attempt.notes)


@st.composite
def random_pairs(draw: st.DrawFn) -> list[tuple[CaseTruth, CaseRead]]:
    """Any mix of decisions, missing answers, tied ratings, lesions and marks."""
    pairs = []
    for case_id in range(draw(st.integers(0, 8))):
        lesions = tuple(
            ellipse(
                f"{case_id}-{n}", case_id, draw(st.sampled_from(["a", "b"])), 50 * n, 50, 20, 20
            )
            for n in range(draw(st.integers(0, 2)))
        )
        marks = tuple(
            point(
                draw(st.sampled_from([case_id, case_id + 100])),
                draw(st.sampled_from(["a", "b"])),
                draw(st.sampled_from([0.0, 10.0, 50.0, 60.0])),
                50.0,
                draw(st.one_of(st.none(), st.sampled_from([10.0, 50.0]))),
            )
            for _ in range(draw(st.integers(0, 3)))
        )
        tb_truth = draw(st.one_of(st.none(), st.booleans()))
        pairs.append(
            (
                truth(case_id, tb_truth, findings=draw(st.sets(st.sampled_from("ab"))),
                      lesions=lesions, rating=draw(st.one_of(st.none(), st.integers(1, 3)))),
                read(case_id, draw(st.one_of(st.none(), st.booleans())),
                     findings=draw(st.sets(st.sampled_from("abc"))), marks=marks,
                     rating=draw(st.one_of(st.none(), st.sampled_from([1.0, 3.0]))),
                     ordinal=draw(st.one_of(st.none(), st.integers(1, 3))),
                     reading_seconds=draw(st.one_of(st.none(), st.floats(0, 600)))),
            )
        )  # fmt: skip
    return pairs


NOT_FRACTIONS = {
    "cases",
    "blank_cases",
    "nl_per_case",
    "major_discrepancies",
    "significant_discrepancies",
    "mean_reading_seconds",
    "median_reading_seconds",
    "auc_variance",
}


@settings(max_examples=80, deadline=None, database=None)
@given(random_pairs())
def test_any_attempt_scores_without_error_nan_or_out_of_range(pairs) -> None:
    attempt = score_attempt(pairs, [Criterion("sensitivity", 0.5), Criterion("wafroc", 0.5)])
    assert_json_clean(attempt.to_json())
    for name, value in attempt.metrics.items():
        if value is None:
            assert name in attempt.undefined
        elif name in ("kappa", "pabak", "weighted_kappa"):
            assert -1.0 - 1e-12 <= value <= 1.0 + 1e-12
        elif name not in NOT_FRACTIONS:
            assert 0.0 <= value <= 1.0, name
    assert attempt.passed in (True, False)
    assert all(c.passed or c.reason for c in attempt.criteria)
