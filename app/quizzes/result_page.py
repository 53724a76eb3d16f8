"""What the result page of an ended attempt shows: the score table in a reader's words, the
case list (thumbnail, outcome, review link, peers' calls) and whether the ROC figure can be
drawn. disclosure.py decides what each case may show; this module only lays it out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import url_for
from flask_babel import gettext

from app.auth.models import User
from app.cases.access import can_view_case
from app.i18n import current_language
from app.quizzes import review_rules, wording
from app.quizzes.disclosure import AttemptDisclosure, shown_notes
from app.quizzes.models import Attempt
from app.quizzes.peers import PeerCalls, peer_calls
from app.quizzes.results import CaseFeedback
from app.quizzes.scoring import AttemptScore
from app.schemes.parts import Scheme

#: The score table's rows, in order; a row whose metric the scheme never computes (None,
#: with a reason saying there is nothing of its kind) is left out rather than explained.
TABLE = ("sensitivity", "specificity", "accuracy", "ppv", "npv", "kappa", "pabak",
         "weighted_kappa", "classification_accuracy", "quality_agreement",
         "lesion_localisation_sensitivity", "afroc", "wafroc", "concordance", "auc",
         "mean_reading_seconds")

#: Measures of the sputum decision.
DECISION = {"sensitivity", "specificity", "accuracy", "ppv", "npv", "kappa", "pabak", "auc"}

#: Metrics that only make sense for some schemes: shown when computed, or when the
#: exercise could compute them (the ROC AUC of a scheme with a likelihood).
OPTIONAL = {"pabak", "weighted_kappa", "classification_accuracy", "quality_agreement",
            "afroc", "wafroc", "auc"}


def finding_labels(scheme: Scheme | None) -> dict[str, str]:
    if scheme is None:
        return {}
    # Item keys by the first part of their label ("rotation": "Rotation"), option values by
    # their label, in the reader's language.
    language = current_language()
    labels: dict[str, str] = {item.key: item.label_in(language).split(":")[0]
                              for item in scheme.items}
    for item in scheme.items:
        for option in item.options:
            labels[option.value] = option.label_in(language)
    for option in scheme.mark_labels or ():
        labels[option.value] = option.label_in(language)
    return labels


def has_likelihood(scheme: Scheme | None) -> bool:
    return scheme is not None and bool(scheme.rating)


def score_table(result: AttemptScore, scheme: Scheme) -> list[wording.Figure]:
    labels = finding_labels(scheme)
    likelihood = has_likelihood(scheme)
    rows = []
    for name in TABLE:
        value = result.metrics.get(name)
        if name in OPTIONAL and value is None and not (name == "auc" and likelihood):
            continue
        # A reading form without a sputum decision (image quality) or without lesion marks
        # has nothing to say on them: no row rather than a row explaining its absence.
        if name in DECISION and not scheme.tb_decision:
            continue
        if name == "lesion_localisation_sensitivity" and not scheme.mark_labels:
            continue
        rows.append(wording.figure(name, result.metrics, result.undefined, labels,
                                   intervals=result.intervals,
                                   scheme_has_likelihood=likelihood))
    return rows


def verdict_reasons(result: AttemptScore, scheme: Scheme) -> list[str]:
    labels = finding_labels(scheme)
    return [wording.criterion_sentence(c, result.undefined, labels,
                                       scheme_has_likelihood=has_likelihood(scheme))
            for c in result.criteria if not c.passed]


def roc_refusal(result: AttemptScore, scheme: Scheme,
                shown: AttemptDisclosure) -> tuple[int, str] | None:
    """Why the ROC figure is not drawn (HTTP status, sentence), or None when it is."""
    if not (shown.score and shown.every_case("correctness")):
        return 403, gettext("The ROC curve of this attempt is not shown.")
    if not has_likelihood(scheme):
        return 404, gettext("This exercise's reading form has no likelihood rating, so there "
                            "is no ROC curve.")
    if result.metrics.get("auc") is None:
        return 404, wording.not_computed("auc", result.undefined.get("auc"))
    return None


@dataclass(frozen=True)
class CaseRow:
    position: int
    thumbnail_url: str | None  # by image id: the library case id stays off the page
    outcome: str | None  # None when correctness is not shown
    correct: bool | None
    review_url: str | None  # None when the review rules show nothing of the case yet
    peers: PeerCalls | None
    hidden: str | None = None  # when correctness is not shown: when it will be, in words


def _outcome(item: CaseFeedback) -> tuple[str, bool]:
    score = item.score
    if score.blank:
        return gettext("Not answered (counts as wrong)"), False
    if score.tb_correct is not None:
        return (gettext("Correct sputum decision"), True) if score.tb_correct else (
            gettext("Wrong sputum decision"), False)
    agrees = score.grade == "1"
    return (gettext("Agrees with the reference read"), True) if agrees else (
        gettext("Differs from the reference read"), False)


def case_rows(attempt: Attempt, feedback: Sequence[CaseFeedback], shown: AttemptDisclosure,
              user: User) -> list[CaseRow]:
    # Peers' calls give away which way a case leans: only where its key may be shown.
    keyed = {f.case.id: bool(f.reference.tb_positive) for f in feedback
             if f.reference.tb_positive is not None
             and (shown.at(f.position).correctness or shown.at(f.position).reference)}
    peers = peer_calls(user.id, keyed)
    hidden = _hidden_note(attempt)
    rows = []
    for item in feedback:
        case_shown = shown.at(item.position)
        image = item.case.images[0] if item.case.images else None
        thumbnail = None
        if image is not None and can_view_case(user, item.case):
            thumbnail = url_for("cases.image_file", image_id=image.id, kind="thumbnail",
                                v=image.version)
        outcome, correct = _outcome(item) if case_shown.correctness else (None, None)
        review = url_for("quizzes.review", attempt_id=attempt.id,
                         position=item.position) if case_shown.anything else None
        rows.append(CaseRow(item.position, thumbnail, outcome, correct, review,
                            peers.get(item.case.id),
                            None if case_shown.correctness else hidden))
    return rows


def _hidden_note(attempt: Attempt) -> str:
    when = review_rules.setting(attempt.exercise, "correctness")
    if when == "never":
        return gettext("Not shown for this exercise")
    if when == "after_close":
        return gettext("Shown after the exercise closes")
    return gettext("Not shown yet")


def context(attempt: Attempt, result: AttemptScore, feedback: Sequence[CaseFeedback],
            shown: AttemptDisclosure, scheme: Scheme, user: User) -> dict[str, Any]:
    """What the result template needs beyond the attempt and its score."""
    labels = finding_labels(scheme)
    notes = shown_notes(result.notes, shown, [o.value for o in scheme.mark_labels or ()])
    return {
        "notes": wording.reader_notes(notes, labels),
        "table": score_table(result, scheme),
        "reasons": verdict_reasons(result, scheme),
        "rows": case_rows(attempt, feedback, shown, user),
        "roc_refusal": roc_refusal(result, scheme, shown),
        "finding_labels": labels,
    }


def review_neighbours(attempt: Attempt, shown: AttemptDisclosure,
                      position: int) -> tuple[str | None, str | None]:
    """The previous and next cases' reviews: the nearest whose review is shown (the others
    would refuse)."""
    total = len(attempt.case_order)
    before = [p for p in range(position - 1, 0, -1) if shown.at(p).anything]
    after = [p for p in range(position + 1, total + 1) if shown.at(p).anything]

    def link(at: list[int]) -> str | None:
        return url_for("quizzes.review", attempt_id=attempt.id, position=at[0]) if at else None

    return link(before), link(after)
