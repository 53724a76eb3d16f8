"""The result of an attempt in a reader's words: metric names, values in the units the
result table uses, why a figure is not computed, the pass criteria's verdicts and the
scoring notes, with no internal key, "-inf" or "nan" in them. No database; the sentences are
in the reader's language (gettext: English outside a request, byte for byte as before).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from babel.numbers import get_decimal_symbol
from flask_babel import get_locale, gettext

from app.i18n import N_
from app.quizzes.scoring.criteria import CriterionResult
from app.quizzes.scoring.grades import NOT_ANSWERED

#: How each metric is named on the result page, and its unit: "percent" (a share shown
#: as a whole percentage), "ratio" (kappa, AUC: two decimals), "seconds" or "count".
METRICS: dict[str, tuple[str, str]] = {
    "sensitivity": (N_("Sensitivity (TB-suggestive)"), "percent"),
    "specificity": (N_("Specificity"), "percent"),
    "accuracy": (N_("Accuracy of the sputum decision"), "percent"),
    "ppv": (N_("Positive predictive value"), "percent"),
    "npv": (N_("Negative predictive value"), "percent"),
    "kappa": (N_("Cohen's kappa"), "ratio"),
    "pabak": (N_("PABAK"), "ratio"),
    "weighted_kappa": (N_("Weighted kappa (ordinal rating)"), "ratio"),
    "lesion_localisation_sensitivity": (N_("Lesion localisation"), "percent"),
    "nl_per_case": (N_("False marks per case"), "ratio"),
    "afroc": (N_("AFROC figure of merit"), "ratio"),
    "wafroc": (N_("wAFROC figure of merit"), "ratio"),
    "quality_agreement": (N_("Image-quality criteria agreement"), "percent"),
    "classification_accuracy": (N_("Classification agreement"), "percent"),
    "concordance": (N_("Concordant reads (RADPEER 1)"), "percent"),
    "auc": (N_("ROC AUC"), "ratio"),
    "auc_variance": (N_("Variance of the ROC AUC"), "ratio"),
    "mean_reading_seconds": (N_("Mean reading time"), "seconds"),
    "median_reading_seconds": (N_("Median reading time"), "seconds"),
    "major_discrepancies": (N_("Major discrepancies"), "count"),
    "significant_discrepancies": (N_("Clinically significant discrepancies"), "count"),
    "blank_cases": (N_("Cases not answered"), "count"),
    "cases": (N_("Cases"), "count"),
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
    "1": N_("Grade 1: your read agrees with the reference read."),
    "2a": N_("Grade 2a: a minor discrepancy that does not change the sputum decision."),
    "2b": N_("Grade 2b: a minor discrepancy that changes the sputum decision "
             "(clinically significant)."),
    "3a": N_("Grade 3a: a major discrepancy (normal and abnormal swapped) that does not "
             "change the sputum decision."),
    "3b": N_("Grade 3b: a major discrepancy (normal and abnormal swapped) that changes the "
             "sputum decision (clinically significant)."),
    "U": N_("Grade U: not answered. An unanswered case counts as a wrong answer in every "
            "score."),
}

#: The scoring module's reasons and notes (English, tested there) as the reader reads them:
#: each pattern is the English sentence wording.py makes of one, and its message id, so
#: a sentence is translated whole, with its numbers, rather than word by word.
SCORING_SENTENCES = (
    N_("Not computed: no reference case is TB-suggestive."),
    N_("Not computed: every reference case is TB-suggestive."),
    N_("Not computed: you called no case TB-suggestive."),
    N_("Not computed: you called every case TB-suggestive."),
    N_("Not computed: no case has a reference sputum decision."),
    N_("Not computed: the reference and you gave the same single decision to every case "
       "(chance agreement is 1)."),
    N_("Not computed: no case has a reference classification."),
    N_("Not computed: the reference and you gave the same single ordinal answer to every "
       "case."),
    N_("Not computed: no case has a reference ordinal answer."),
    N_("Not computed: the reference reads have no lesion regions."),
    N_("Not computed: the attempt has no cases."),
    N_("Not computed: AFROC needs at least one normal reference case."),
    N_("%(count)s case(s) not answered count as wrong sputum decisions (false negative on a "
       "TB case, false positive on a normal case)."),
    N_("%(count)s case(s) without a likelihood rating take the worst rating for ROC (the "
       "lowest on a TB case, the highest on a normal case)."),
    N_("The DeLong variance is 0 (perfect separation or all ratings tied): the AUC interval "
       "has zero width and understates the uncertainty of a small test set."),
    N_("All likelihood ratings are tied: AUC is 0.5 by the tie rule."),
    N_("%(count)s reference ordinal answer(s) outside the scale are left out of weighted "
       "kappa."),
    N_("%(count)s ordinal answer(s) missing or outside the scale count as the category "
       "farthest from the reference."),
    N_("%(count)s abnormal reference case(s) without lesion regions are left out of "
       "AFROC/wAFROC."),
    N_("%(count)s normal case(s) not answered count as a false mark rated %(rating)s in "
       "AFROC/wAFROC."),
    N_("No marks at all: every lesion counts as unmarked (below any mark), so AFROC/wAFROC "
       "are 0.5."),
    N_("The attempt has no cases: every metric is not computed."),
    N_("%(count)s quality criterion answer(s) missing: each counts as a disagreement."),
)


@cache
def _sentence_patterns(messages: tuple[str, ...]) -> tuple[tuple[re.Pattern[str], str], ...]:
    def pattern(message: str) -> re.Pattern[str]:
        parts = re.split(r"%\((\w+)\)s", message)
        regex = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)"
                        for i, part in enumerate(parts))
        return re.compile(regex)

    return tuple((pattern(message), message) for message in messages)


def translated(english: str, messages: tuple[str, ...] | None = None) -> str:
    """A sentence of ``messages`` (SCORING_SENTENCES) in the reader's language, its values
    kept; any other as it is."""
    for regex, message in _sentence_patterns(messages or SCORING_SENTENCES):
        found = regex.fullmatch(english)
        if found:
            return gettext(message, **found.groupdict()) if found.groupdict() \
                else gettext(message)
    return english

_SNAKE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")
_ABSENT_FINDINGS = ("per-finding sensitivity is not defined for findings absent from every "
                    "reference read: ")
_NOT_DEFINED = re.compile(r"^(?P<metric>[a-z_:]+) is not defined: ")


def metric_label(name: str, findings: Mapping[str, str] | None = None) -> str:
    """The page's name of a metric, including ``finding_sensitivity:<finding>``."""
    if name in METRICS:
        return gettext(METRICS[name][0])
    kind, _, finding = name.partition(":")
    what = (findings or {}).get(finding, finding.replace("_", " "))
    if kind == "finding_sensitivity":
        return gettext("Sensitivity for %(finding)s", finding=what)
    if kind == "finding_specificity":
        return gettext("Specificity for %(finding)s", finding=what)
    return name.replace("_", " ").capitalize()


def unit_of(name: str) -> str:
    if name in METRICS:
        return METRICS[name][1]
    return "percent" if name.startswith(("finding_sensitivity:", "finding_specificity:")) \
        else "ratio"


def local_number(text: str) -> str:
    """A number Python wrote ("0.62") with the reader's decimal sign ("0,62" in French and
    Spanish). Python rounds it, so English stays as the tests and exports have it."""
    locale = get_locale()
    if locale is None or locale.language == "en":
        return text
    return text.replace(".", get_decimal_symbol(locale))


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
    return local_number(f"{value:.2f}")


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
            return gettext("ROC AUC needs a likelihood rating, and this exercise's reading "
                           "form does not ask for one.")
        if reason and reason.startswith("no likelihood rating was given"):
            # The form asks for a likelihood but leaves it optional: nobody rated any case.
            return gettext("ROC AUC needs TB likelihood ratings, and none was given in this "
                           "attempt.")
        if name == "auc_variance" and reason and "two cases of each kind" in reason:
            return gettext("The ROC AUC's confidence interval needs at least two abnormal "
                           "and two normal cases.")
        return gettext("ROC AUC needs at least one abnormal and one normal case with a "
                       "likelihood rating.")
    if not reason or reason == "not defined":
        return gettext("Not computed for this attempt.")
    return translated(sentence(f"Not computed: {plain(reason, findings)}"))


def criterion_sentence(result: CriterionResult, undefined: Mapping[str, str],
                       findings: Mapping[str, str] | None = None, *,
                       scheme_has_likelihood: bool = True) -> str:
    """A pass criterion's verdict in the units of the result table."""
    label = metric_label(result.metric, findings)
    value = format_value(result.metric, result.value)
    if result.metric not in METRICS and ":" not in result.metric:
        return gettext("%(measure)s: this exercise asks for a measure the portal does not "
                       "compute.", measure=label)
    if value is None:
        why = not_computed(result.metric, undefined.get(result.metric), findings,
                           scheme_has_likelihood=scheme_has_likelihood)
        return gettext("%(measure)s could not be computed, so it cannot pass. %(why)s",
                       measure=label, why=why)
    if result.minimum is not None:
        wanted = format_value(result.metric, result.minimum)
        if result.passed:
            return gettext("%(measure)s %(value)s meets the required %(wanted)s.",
                           measure=label, value=value, wanted=wanted)
        return gettext("%(measure)s %(value)s is below the required %(wanted)s.",
                       measure=label, value=value, wanted=wanted)
    if result.maximum is not None:
        limit = format_value(result.metric, result.maximum)
        if result.passed:
            return gettext("%(measure)s %(value)s is within the allowed %(limit)s.",
                           measure=label, value=value, limit=limit)
        return gettext("%(measure)s %(value)s is above the allowed %(limit)s.",
                       measure=label, value=value, limit=limit)
    return gettext("%(measure)s %(value)s.", measure=label, value=value)


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
            out.append(gettext("Per-finding sensitivity is left out for findings that no "
                               "reference read names: %(findings)s.",
                               findings="; ".join(names)))
            continue
        out.append(translated(sentence(plain(note, findings))))
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
        low = low.removesuffix(" %")
    return gettext("95 %% CI %(low)s to %(high)s", low=low, high=high)


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
    if grade in GRADE_MEANINGS:
        return gettext(GRADE_MEANINGS[grade])
    return gettext("Grade %(grade)s.", grade=grade)


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


#: The item analysis' notes (scoring/items.py) on the statistics page.
STATISTICS_NOTES = (
    N_("not enough data: no ended attempts"),
    N_("not enough data: fewer than %(count)s attempts"),
    N_("not enough data: every attempt got this case right"),
    N_("not enough data: every attempt got this case wrong (or left it blank)"),
    N_("not enough data: every attempt got this case the same"),
    N_("not enough data: the exercise has no other case to compare with"),
    N_("not enough data: every attempt scored the same on the other cases"),
    N_("not enough data: internal consistency needs at least two cases"),
    N_("not enough data: every attempt had the same total"),
)


def statistics_note(note: str | None) -> str:
    return translated(note, STATISTICS_NOTES) if note else ""


#: The grade reasons of app.quizzes.scoring.grades (stored English, with each attempt's
#: scores) as a reader reads them: the fixed ones by their message, the ones that name
#: options or findings by a pattern whose keys become the scheme's labels.
_GRADE_REASONS: dict[str, str] = {
    NOT_ANSWERED: N_("not answered: an unanswered case counts as a wrong answer in every "
                     "measure (its sputum decision is taken as wrong)"),
    "abnormal image read as normal": N_("abnormal image read as normal"),
    "normal image read as abnormal": N_("normal image read as abnormal"),
    "sputum decision differs: reference needs smears and cultures":
        N_("sputum decision differs: reference needs smears and cultures"),
    "sputum decision differs: reference does not need smears and cultures":
        N_("sputum decision differs: reference does not need smears and cultures"),
    "classification not answered": N_("classification not answered"),
}
_GRADE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"classification '(?P<yours>[^']*)', reference '(?P<reference>[^']*)'"),
     N_("classification '%(yours)s', reference '%(reference)s'")),
    (re.compile(r"finding\(s\) missed: (?P<findings>.+)"),
     N_("finding(s) missed: %(findings)s")),
    (re.compile(r"finding\(s\) not in the reference: (?P<findings>.+)"),
     N_("finding(s) not in the reference: %(findings)s")),
    (re.compile(r"criterion '(?P<criterion>[^']*)': not answered"),
     N_("criterion '%(criterion)s': not answered")),
    (re.compile(r"criterion '(?P<criterion>[^']*)': (?P<yours>pass|fail), "
                r"reference (?P<reference>pass|fail)"),
     N_("criterion '%(criterion)s': %(yours)s, reference %(reference)s")),
)
_PASS_FAIL = {"pass": N_("pass"), "fail": N_("fail")}


def grade_reason(english: str, labels: Mapping[str, str] | None = None) -> str:
    """A discrepancy grade's reason in the reader's language, option and finding keys named
    by the scheme's labels (in the reader's language); an unknown one in plain words. The
    English is the scoring module's, with keys named, as the page has always shown it."""
    names = labels or {}
    if english in _GRADE_REASONS:
        return gettext(_GRADE_REASONS[english])
    for regex, message in _GRADE_PATTERNS:
        found = regex.fullmatch(english)
        if found is None:
            continue
        values = dict(found.groupdict())
        for key in ("yours", "reference"):
            if key in values:
                word = values[key]
                values[key] = (gettext(_PASS_FAIL[word]) if word in _PASS_FAIL
                               else names.get(word, word.replace("_", " ")))
        if "criterion" in values:
            values["criterion"] = names.get(values["criterion"],
                                            values["criterion"].replace("_", " "))
        if "findings" in values:
            values["findings"] = ", ".join(names.get(key, key.replace("_", " "))
                                           for key in values["findings"].split(", "))
        return gettext(message, **values)
    return plain(english, labels)
