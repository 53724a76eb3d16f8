"""Skipping never pays: an unanswered (blank) read, or the missing part of a partly answered
one, counts as a wrong answer in every measure (DOMAIN.md, "Unanswered cases count as
wrong"), and a blank read gets a grade that says so."""

from __future__ import annotations

import pytest
from sklearn.metrics import cohen_kappa_score, roc_auc_score

from app.quizzes.scoring import (
    GRADE_UNANSWERED,
    CaseRead,
    CaseTruth,
    Criterion,
    discrepancy_grade,
    score_attempt,
    score_case,
)
from tests.test_scoring import ellipse, point, read, truth

SCALE = (1, 5)


def blank(case_id: int, **kw) -> CaseRead:
    """Nothing answered: no sputum decision, no classification."""
    return read(case_id, None, None, **kw)


def test_five_blank_tb_cases_halve_sensitivity_and_fail_the_exam() -> None:
    # 5 TP + 5 blank TB + 5 TN: dropping the blanks gave sensitivity 1.0 and a pass.
    pairs = [(truth(i, True), read(i, True, rating=5)) for i in range(5)]
    pairs += [(truth(i, True), blank(i)) for i in range(5, 10)]
    pairs += [(truth(i, False), read(i, False, rating=1)) for i in range(10, 15)]
    attempt = score_attempt(pairs, [Criterion("sensitivity", 0.9)], rating_scale=SCALE)
    m = attempt.metrics
    assert m["sensitivity"] == 0.5
    assert m["specificity"] == 1.0
    assert m["accuracy"] == 10 / 15
    assert attempt.confusion == {"tp": 5, "fp": 0, "fn": 5, "tn": 5, "n": 15, "blank": 5}
    assert m["blank_cases"] == 5
    assert attempt.passed is False
    assert attempt.criteria[0].reason == "sensitivity 0.500 is below the minimum 0.9"


def test_a_blank_normal_case_is_a_false_positive() -> None:
    pairs = [(truth(1, True), read(1, True)), (truth(2, False), blank(2)),
             (truth(3, False), read(3, False))]
    attempt = score_attempt(pairs, [Criterion("specificity", 0.8)])
    assert attempt.confusion["fp"] == 1 and attempt.confusion["tn"] == 1
    assert attempt.metrics["specificity"] == 0.5
    assert attempt.metrics["ppv"] == 0.5
    assert attempt.passed is False


def test_blanks_count_as_disagreement_in_kappa_pabak_and_accuracy() -> None:
    reference = [True, True, False, False, True, False]
    trainee = [True, None, False, None, True, True]
    both = zip(reference, trainee, strict=True)
    pairs = [(truth(i, t), read(i, r)) for i, (t, r) in enumerate(both)]
    attempt = score_attempt(pairs)
    answered_as = [(not t) if r is None else r for t, r in zip(reference, trainee, strict=True)]
    assert attempt.metrics["kappa"] == pytest.approx(cohen_kappa_score(reference, answered_as))
    agree = sum(a == b for a, b in zip(reference, answered_as, strict=True)) / len(reference)
    assert attempt.metrics["accuracy"] == pytest.approx(agree)
    assert attempt.metrics["pabak"] == pytest.approx(2 * agree - 1)


def test_a_missing_rating_is_the_worst_rating_of_the_scale_for_roc() -> None:
    # TB cases 1-3, normal cases 4-6. Case 3 (TB) has a decision but no rating: it rates 1,
    # the lowest of the scale; case 6 (normal) is blank: it rates 5, the highest.
    pairs = [
        (truth(1, True), read(1, True, rating=4)),
        (truth(2, True), read(2, True, rating=5)),
        (truth(3, True), read(3, True)),
        (truth(4, False), read(4, False, rating=1)),
        (truth(5, False), read(5, False, rating=2)),
        (truth(6, False), blank(6, rating=1)),  # a blank read's likelihood is not used
    ]
    attempt = score_attempt(pairs, rating_scale=SCALE)
    expected = roc_auc_score([1, 1, 1, 0, 0, 0], [4, 5, 1, 1, 2, 5])
    assert attempt.metrics["auc"] == pytest.approx(expected)
    # The ROC figure plots the same points.
    assert attempt.roc == ((True, 4.0), (True, 5.0), (True, 1.0), (False, 1.0), (False, 2.0),
                           (False, 5.0))
    assert not any("left out of ROC" in note for note in attempt.notes)


def test_without_a_scale_the_worst_rating_is_the_extreme_seen() -> None:
    pairs = [(truth(1, True), read(1, True, rating=30)), (truth(2, True), blank(2)),
             (truth(3, False), read(3, False, rating=10)), (truth(4, False), read(4, False))]
    # Case 2 rates 10 (lowest seen), case 4 rates 30 (highest seen).
    attempt = score_attempt(pairs)
    expected = roc_auc_score([1, 1, 0, 0], [30, 10, 10, 30])
    assert attempt.metrics["auc"] == pytest.approx(expected)


def test_a_missing_ordinal_answer_is_the_worst_category_for_weighted_kappa() -> None:
    labels = [1, 2, 3, 4, 5]
    pairs = [
        (truth(1, True, rating=5), read(1, True, ordinal=5)),
        (truth(2, True, rating=4), read(2, True)),  # missing: 1 is farthest from 4
        (truth(3, False, rating=1), read(3, False, ordinal=2)),
        (truth(4, False, rating=2), blank(4, ordinal=2)),  # blank: 5 is farthest from 2
        (truth(5, False, rating=3), read(5, False, ordinal=9)),  # off the scale: worst (1)
    ]
    attempt = score_attempt(pairs, ordinal_labels=labels)
    expected = cohen_kappa_score([5, 4, 1, 2, 3], [5, 1, 2, 5, 1], labels=labels,
                                 weights="linear")
    assert attempt.metrics["weighted_kappa"] == pytest.approx(expected)


def test_unanswered_quality_criteria_count_as_disagreement() -> None:
    reference = {"inclusion": True, "rotation": False, "exposure": True}
    pairs = [
        (CaseTruth(1, None, "1", frozenset(), quality=reference),
         CaseRead(1, None, "1", frozenset(), quality={"inclusion": True, "rotation": False})),
        (CaseTruth(2, None, "2", frozenset(), quality=reference),
         CaseRead(2, None, None, frozenset())),  # blank: every criterion disagrees
    ]
    attempt = score_attempt(pairs, [Criterion("quality_agreement", 0.5)])
    assert attempt.metrics["quality_agreement"] == 2 / 6
    assert (attempt.quality["exposure"]["n"], attempt.quality["exposure"]["agree"]) == (2, 0)
    assert (attempt.quality["rotation"]["n"], attempt.quality["rotation"]["agree"]) == (2, 1)
    assert attempt.passed is False
    assert [c.grade for c in attempt.cases] == ["2a", GRADE_UNANSWERED]


@pytest.mark.parametrize("tb", [True, False])
def test_a_blank_read_is_graded_unanswered(tb: bool) -> None:
    grade, reasons = discrepancy_grade(truth(1, tb, findings={"nodule"} if tb else ()),
                                       blank(1))
    assert grade == GRADE_UNANSWERED == "U"
    assert reasons and reasons[0].startswith("not answered")


def test_a_likelihood_alone_is_a_blank_read() -> None:
    grade, _ = discrepancy_grade(truth(1, False), blank(1, rating=1, ordinal=1))
    assert grade == "U"
    case = score_case(truth(1, False), blank(1, rating=1))
    assert case.tb_correct is False and case.classification_correct is False


def test_blank_grades_are_tallied_apart_and_count_as_discordant() -> None:
    pairs = [(truth(1, True), read(1, True)), (truth(2, True), blank(2)),
             (truth(3, False), blank(3)), (truth(4, False), read(4, False))]
    attempt = score_attempt(pairs, [Criterion("major_discrepancies", maximum=0)])
    assert attempt.grades == {"1": 2, "2a": 0, "2b": 0, "3a": 0, "3b": 0, "U": 2}
    assert attempt.metrics["concordance"] == 0.5
    # A blank read's sputum decision is wrong: it counts as a major, significant discrepancy.
    assert attempt.metrics["major_discrepancies"] == 2
    assert attempt.metrics["significant_discrepancies"] == 2
    assert attempt.passed is False
    assert [c.tb_correct for c in attempt.cases] == [True, False, False, True]


def test_a_blank_reads_marks_and_findings_earn_nothing() -> None:
    lesion = ellipse("L", 1, "nodule", 100, 100, 20, 20)
    pairs = [
        (truth(1, True, findings={"nodule"}, lesions=(lesion,)),
         blank(1, findings={"nodule"}, marks=(point(1, "nodule", 100, 100, 90),))),
        (truth(2, False), read(2, False)),
    ]
    attempt = score_attempt(pairs, findings_universe=["nodule", "cavitary_lesion"])
    assert attempt.metrics["lesion_localisation_sensitivity"] == 0.0
    case = attempt.cases[0]
    assert case.localisation.marks[0].status == "NL"
    assert case.localisation.marks[0].reason.startswith("the read is not answered")
    # Per finding: the blank case is wrong for every finding (FN where present, else FP).
    assert case.findings == {"nodule": "FN", "cavitary_lesion": "FP"}
    assert attempt.per_finding["cavitary_lesion"]["specificity"] == 0.5


def test_a_blank_normal_case_is_the_worst_normal_case_for_afroc() -> None:
    # The lesion is marked at 90. A normal case answered without marks ranks below it;
    # a blank normal case counts as a false mark at the top of the scale (100).
    lesion = ellipse("L", 1, "nodule", 100, 100, 20, 20)
    tb_case = (truth(1, True, findings={"nodule"}, lesions=(lesion,)),
               read(1, True, marks=(point(1, "nodule", 100, 100, 90),)))
    answered = score_attempt([tb_case, (truth(2, False), read(2, False))])
    skipped = score_attempt([tb_case, (truth(2, False), blank(2))])
    assert answered.metrics["afroc"] == 1.0 and answered.metrics["wafroc"] == 1.0
    assert skipped.metrics["afroc"] == 0.0 and skipped.metrics["wafroc"] == 0.0


def test_classification_left_out_counts_as_wrong() -> None:
    pairs = [(truth(1, True), read(1, True)),
             (truth(2, False, "abnormal_not_tb"), CaseRead(2, False, None, frozenset()))]
    assert score_attempt(pairs).metrics["classification_accuracy"] == 0.5
