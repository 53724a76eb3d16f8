"""Discrepancy grades of a read against the reference (RADPEER-style), per case."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from app.quizzes.scoring.inputs import NORMAL_CLASSES, CaseRead, CaseTruth, unanswered

#: The grade of a blank read. It is tallied apart from the others and counts as discordant,
#: as a major and as a clinically significant discrepancy (its sputum decision is wrong).
GRADE_UNANSWERED = "U"

GRADES = ("1", "2a", "2b", "3a", "3b", GRADE_UNANSWERED)

#: Shown as the reason of grade U.
NOT_ANSWERED = (
    "not answered: an unanswered case counts as a wrong answer in every measure "
    "(its sputum decision is taken as wrong)"
)


def is_abnormal(
    classification: str | None,
    findings: Iterable[str],
    tb_positive: bool | None,
    normal_classes: frozenset[str] = NORMAL_CLASSES,
) -> bool:
    """The overall normal/abnormal call: from the classification when there is one,
    otherwise abnormal when any finding is listed or the sputum decision is positive."""
    if classification is not None:
        return classification not in normal_classes
    return bool(tb_positive) or any(True for _ in findings)


def discrepancy_grade(
    truth: CaseTruth, read: CaseRead, normal_classes: frozenset[str] = NORMAL_CLASSES
) -> tuple[str, tuple[str, ...]]:
    """RADPEER-style grade of a read against the reference, with the reasons.

    The number says what kind of discrepancy (RADPEER: how far the read is from what a
    reader should report), the letter says whether it matters clinically. Our rule:

    * **U (not answered)**: the read is blank (``inputs.unanswered``): no sputum decision
      where the reference has one (a likelihood alone is blank). Never 1, and never a
      letter grade that would pass a blank normal read as concordant.
    * **3 (major)**: the overall normal/abnormal call differs - an abnormality missed
      entirely, or one reported on a normal image (``is_abnormal``).
    * **2 (minor)**: the normal/abnormal call agrees but something else differs: the sputum
      decision (an abnormality seen but judged TB-suggestive or not wrongly), the
      classification, a finding missed or added, or a radiographer quality criterion
      (a criterion left unanswered differs).
    * **1 (concur)**: decision, classification, findings and criteria all agree.
    * Suffix **b** (clinically significant) when both reads give a sputum decision and they
      differ (DOMAIN.md), **a** otherwise. Grade 1 has no suffix.
    * A scheme with no "normal" class (radiographer grades) never gives 3: disagreeing on
      the grade or a criterion is 2a.

    So a TB-suggestive case read normal is 3b; a cardiac-only case read normal is 3a; a
    TB-suggestive case read "abnormal, not suggestive of TB" is 2b; a missed second TB
    finding with the right decision is 2a. Marks and ratings do not enter the grade: they
    are scored by localisation and ROC/AFROC."""
    if unanswered(truth, read):
        return GRADE_UNANSWERED, (NOT_ANSWERED,)
    reasons: list[str] = []
    t_abn = is_abnormal(truth.classification, truth.findings, truth.tb_positive, normal_classes)
    r_abn = is_abnormal(read.classification, read.findings, read.tb_positive, normal_classes)
    major = t_abn != r_abn
    if major:
        reasons.append(
            "abnormal image read as normal" if t_abn else "normal image read as abnormal"
        )
    significant = (
        truth.tb_positive is not None
        and read.tb_positive is not None
        and truth.tb_positive != read.tb_positive
    )
    if significant:
        reasons.append(
            "sputum decision differs: reference "
            f"{'needs' if truth.tb_positive else 'does not need'} smears and cultures"
        )
    if truth.classification is not None and truth.classification != read.classification:
        reasons.append(
            f"classification {read.classification!r}, reference {truth.classification!r}"
            if read.classification is not None
            else "classification not answered"
        )
    missed = sorted(truth.findings - read.findings)
    added = sorted(read.findings - truth.findings)
    if missed:
        reasons.append("finding(s) missed: " + ", ".join(missed))
    if added:
        reasons.append("finding(s) not in the reference: " + ", ".join(added))
    reasons.extend(_quality_differences(truth.quality, read.quality))
    if not reasons:
        return "1", ()
    return ("3" if major else "2") + ("b" if significant else "a"), tuple(reasons)


def _quality_differences(
    truth: Mapping[str, bool] | None, read: Mapping[str, bool] | None
) -> list[str]:
    if not truth:
        return []
    given = read or {}
    return [
        f"criterion {key!r}: not answered"
        if key not in given
        else f"criterion {key!r}: {'pass' if given[key] else 'fail'}, reference "
        f"{'pass' if truth[key] else 'fail'}"
        for key in truth
        if key not in given or bool(given[key]) != bool(truth[key])
    ]
