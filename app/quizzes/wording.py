"""The result of an attempt in a reader's words: metric names, values in the units the
result table uses, why a figure is not computed, the pass criteria's verdicts and the
scoring notes, with no internal key, "-inf" or "nan" in them. Pure: no Flask, no database.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from app.quizzes.scoring.criteria import CriterionResult

#: How each metric is named on the result page, and its unit: "percent" (a share shown
#: as a whole percentage), "ratio" (kappa, AUC: two decimals), "seconds" or "count".
METRICS: dict[str, tuple[str, str]] = {
    "sensitivity": ("Sensitivity (TB-suggestive)", "percent"),
    "specificity": ("Specificity", "percent"),
    "accuracy": ("Accuracy of the sputum decision", "percent"),
    "ppv": ("Positive predictive value", "percent"),
    "npv": ("Negative predictive value", "percent"),
    "kappa": ("Cohen's kappa", "ratio"),
    "pabak": ("PABAK", "ratio"),
    "weighted_kappa": ("Weighted kappa (ordinal rating)", "ratio"),
    "lesion_localisation_sensitivity": ("Lesion localisation", "percent"),
    "nl_per_case": ("False marks per case", "ratio"),
    "afroc": ("AFROC figure of merit", "ratio"),
    "wafroc": ("wAFROC figure of merit", "ratio"),
    "quality_agreement": ("Image-quality criteria agreement", "percent"),
    "classification_accuracy": ("Classification agreement", "percent"),
    "concordance": ("Concordant reads (RADPEER 1)", "percent"),
    "auc": ("ROC AUC", "ratio"),
    "auc_variance": ("Variance of the ROC AUC", "ratio"),
    "mean_reading_seconds": ("Mean reading time", "seconds"),
    "median_reading_seconds": ("Median reading time", "seconds"),
    "major_discrepancies": ("Major discrepancies", "count"),
    "significant_discrepancies": ("Clinically significant discrepancies", "count"),
    "blank_cases": ("Cases not answered", "count"),
    "cases": ("Cases", "count"),
}

#: The glossary entry (app/help/glossary.py) that defines each metric the table shows.
METRIC_TERMS: dict[str, str] = {
    "sensitivity": "sensitivity", "specificity": "specificity", "ppv": "ppv-npv",
    "npv": "ppv-npv", "kappa": "kappa", "pabak": "pabak", "weighted_kappa": "weighted-kappa",
    "auc": "roc-auc", "afroc": "afroc", "wafroc": "afroc",
    "lesion_localisation_sensitivity": "localisation", "concordance": "discrepancy-grade",
    "major_discrepancies": "discrepancy-grade", "significant_discrepancies": "discrepancy-grade",
    "blank_cases": "unanswered",
}

#: RADPEER-style discrepancy grades (DOMAIN.md) said in a sentence.
GRADE_MEANINGS: dict[str, str] = {
    "1": "Grade 1: your read agrees with the reference read.",
    "2a": "Grade 2a: a minor discrepancy that does not change the sputum decision.",
    "2b": "Grade 2b: a minor discrepancy that changes the sputum decision "
          "(clinically significant).",
    "3a": "Grade 3a: a major discrepancy (normal and abnormal swapped) that does not change "
          "the sputum decision.",
    "3b": "Grade 3b: a major discrepancy (normal and abnormal swapped) that changes the "
          "sputum decision (clinically significant).",
    "U": "Grade U: not answered. An unanswered case counts as a wrong answer in every score.",
}

_SNAKE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")
_ABSENT_FINDINGS = ("per-finding sensitivity is not defined for findings absent from every "
                    "reference read: ")
_NOT_DEFINED = re.compile(r"^(?P<metric>[a-z_:]+) is not defined: ")


def metric_label(name: str, findings: Mapping[str, str] | None = None) -> str:
    """The page's name of a metric, including ``finding_sensitivity:<finding>``."""
    if name in METRICS:
        return METRICS[name][0]
    kind, _, finding = name.partition(":")
    what = (findings or {}).get(finding, finding.replace("_", " "))
    if kind == "finding_sensitivity":
        return f"Sensitivity for {what}"
    if kind == "finding_specificity":
        return f"Specificity for {what}"
    return name.replace("_", " ").capitalize()


def unit_of(name: str) -> str:
    if name in METRICS:
        return METRICS[name][1]
    return "percent" if name.startswith(("finding_sensitivity:", "finding_specificity:")) \
        else "ratio"


def format_value(name: str, value: float | None) -> str | None:
    """A metric's value in its unit ("90 %", "0.62", "41 s"); None when not computed
    (None, NaN or infinite)."""
    if value is None or not math.isfinite(value):
        return None
    unit = unit_of(name)
    if unit == "percent":
        return f"{value * 100:.0f} %"
    if unit == "seconds":
        return f"{value:.0f} s"
    if unit == "count":
        return f"{value:.0f}"
    return f"{value:.2f}"


def plain(text: str, findings: Mapping[str, str] | None = None) -> str:
    """A scoring phrase for a reader: internal keys become names, infinities words."""
    text = text.replace("the trainee", "you").replace("The trainee", "You")
    text = text.replace("is not defined", "is not computed").replace("undefined", "not computed")
    text = text.replace("rates -inf", "counts as unmarked (below any mark)")
    text = re.sub(r"-?\binf(inity)?\b", "unmarked", text)
    text = re.sub(r"\bnan\b", "not a number", text, flags=re.IGNORECASE)
    labels = findings or {}

    def name(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in labels:
            return labels[token]
        if token in METRICS:
            return METRICS[token][0]
        return token.replace("_", " ")

    # A quoted option key ('normal', 'abnormal_tb') is named by its label.
    text = re.sub(r"'([a-z0-9_]+)'", lambda m: f"'{labels.get(m.group(1), m.group(1))}'", text)
    return _SNAKE.sub(name, text)


def sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def not_computed(name: str, reason: str | None, findings: Mapping[str, str] | None = None,
                 *, scheme_has_likelihood: bool = True) -> str:
    """Why a metric is not computed, in one short sentence."""
    if name in ("auc", "auc_variance"):
        if not scheme_has_likelihood:
            return ("ROC AUC needs a likelihood rating, and this exercise's reading form "
                    "does not ask for one.")
        if reason and reason.startswith("no likelihood rating was given"):
            # The form asks for a likelihood but leaves it optional: nobody rated any case.
            return "ROC AUC needs TB likelihood ratings, and none was given in this attempt."
        if name == "auc_variance" and reason and "two cases of each kind" in reason:
            return ("The ROC AUC's confidence interval needs at least two abnormal and two "
                    "normal cases.")
        return ("ROC AUC needs at least one abnormal and one normal case with a likelihood "
                "rating.")
    if not reason or reason == "not defined":
        return "Not computed for this attempt."
    return sentence(f"Not computed: {plain(reason, findings)}")


def criterion_sentence(result: CriterionResult, undefined: Mapping[str, str],
                       findings: Mapping[str, str] | None = None, *,
                       scheme_has_likelihood: bool = True) -> str:
    """A pass criterion's verdict in the units of the result table."""
    label = metric_label(result.metric, findings)
    value = format_value(result.metric, result.value)
    if result.metric not in METRICS and ":" not in result.metric:
        return f"{label}: this exercise asks for a measure the portal does not compute."
    if value is None:
        why = not_computed(result.metric, undefined.get(result.metric), findings,
                           scheme_has_likelihood=scheme_has_likelihood)
        return f"{label} could not be computed, so it cannot pass. {why}"
    if result.minimum is not None:
        wanted = format_value(result.metric, result.minimum)
        if result.passed:
            return f"{label} {value} meets the required {wanted}."
        return f"{label} {value} is below the required {wanted}."
    if result.maximum is not None:
        limit = format_value(result.metric, result.maximum)
        if result.passed:
            return f"{label} {value} is within the allowed {limit}."
        return f"{label} {value} is above the allowed {limit}."
    return f"{label} {value}."


def reader_notes(notes: list[str], findings: Mapping[str, str] | None = None) -> list[str]:
    """The scoring notes worth reading, in plain words. "<metric> is not defined: ..." notes
    are left out: the table says why beside each figure."""
    out: list[str] = []
    labels = findings or {}
    for note in notes:
        if _NOT_DEFINED.match(note):
            continue
        if note.startswith(_ABSENT_FINDINGS):
            names = [labels.get(f.strip(), f.strip().replace("_", " "))
                     for f in note.removeprefix(_ABSENT_FINDINGS).split(",")]
            out.append("Per-finding sensitivity is left out for findings that no reference "
                       f"read names: {'; '.join(names)}.")
            continue
        out.append(sentence(plain(note, findings)))
    return out


@dataclass(frozen=True)
class Figure:
    """A metric as the table shows it: its value, or why it is not computed."""

    label: str
    value: str | None
    why: str | None
    interval: str | None = None  # "95 % CI 40 to 80 %"
    term: str | None = None  # its glossary entry


def interval_text(name: str, interval: Sequence[float] | None) -> str | None:
    if not interval or len(interval) != 2:
        return None
    low, high = (format_value(name, bound) for bound in interval)
    if low is None or high is None:
        return None
    if unit_of(name) == "percent":
        return f"95 % CI {low.removesuffix(' %')} to {high}"
    return f"95 % CI {low} to {high}"


def figure(name: str, metrics: Mapping[str, float | None], undefined: Mapping[str, str],
           findings: Mapping[str, str] | None = None, *,
           intervals: Mapping[str, Sequence[float] | None] | None = None,
           scheme_has_likelihood: bool = True) -> Figure:
    value = format_value(name, metrics.get(name))
    why = None if value is not None else not_computed(
        name, undefined.get(name), findings, scheme_has_likelihood=scheme_has_likelihood)
    interval = interval_text(name, (intervals or {}).get(name)) if value is not None else None
    return Figure(metric_label(name, findings), value, why, interval, METRIC_TERMS.get(name))


def grade_meaning(grade: str) -> str:
    return GRADE_MEANINGS.get(grade, f"Grade {grade}.")


def _normal(value: object) -> object:
    if value in (None, "", []):
        return None
    if isinstance(value, list):
        return sorted(map(str, value))
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if v not in (None, "")}
    return value


def same_answer(mine: object, reference: object) -> bool:
    """Do two answers to one item agree (order of a multiple choice aside; an empty reason
    of a criterion is no reason)?"""
    return _normal(mine) == _normal(reference)
