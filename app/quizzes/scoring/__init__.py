"""Scoring a trainee's read against the reference read, per case and per attempt.

Pure package: no Flask or database imports; the standard library, numpy and scipy. Every
input is a frozen dataclass (built from stored JSON with ``from_dict``), every output is a
frozen dataclass with ``to_json()`` returning plain JSON-serialisable data.

Modules, along the seams of the domain (DOMAIN.md, "Scoring a read against the reference
read"):

* ``inputs``       CaseTruth, CaseRead, Lesion, Outline, Mark, Criterion; ``unanswered``
* ``decision``     the sputum decision: TP/FP/FN/TN, proportions and Wilson intervals
* ``roc``          ROC AUC (Wilcoxon-Mann-Whitney) and DeLong's variance and CI
* ``agreement``    Cohen's kappa, PABAK, weighted kappa
* ``grades``       RADPEER-style discrepancy grades (1, 2a, 2b, 3a, 3b, U)
* ``geometry``     regions, centres, the physical point tolerance
* ``localisation`` LL/NL of each mark, the 0-100 FROC rating scale
* ``matching``     crediting marks to lesions by a maximum matching
* ``consensus``    several experts' outlines of one lesion as one lesion
* ``froc``         AFROC and wAFROC figures of merit (RJafroc)
* ``case``, ``measures``, ``criteria``, ``attempt``   assembly: score_case, score_attempt
* ``items``        item analysis of an exercise's cases (Moodle's quiz statistics)

Rules a trainee and an examiner can rely on:

* **Unanswered counts as wrong.** A read is blank when it does not answer the case's
  question (no sputum decision; a likelihood alone is blank). A blank read, or the missing
  part of a partly answered one, is the wrong answer in every measure: a blank TB case is
  a false negative, a blank normal case a false positive; a missing likelihood is the
  worst rating of the scale for ROC (lowest on a TB case, highest on a normal case); a
  missing ordinal answer is the category farthest from the reference; an unanswered
  quality criterion disagrees; a blank normal case counts as a false mark rated 100 in
  AFROC/wAFROC. A blank read is graded **U** (not answered), tallied apart, and counted
  as discordant, as a major and as a significant discrepancy. ``metrics["blank_cases"]``
  says how many reads were blank.
* **One FROC rating scale, 0-100**: a mark's confidence; a mark without one takes the
  read's likelihood converted linearly from the scheme's scale (lowest -> 0, highest ->
  100), else 50 (``localisation.likelihood_to_mark_rating``).
* **Point tolerance**: a reference point counts as found within 10 mm, from the image's
  pixel spacing (ImagerPixelSpacing, else PixelSpacing, stored on CaseImage); an image
  without a spacing is taken to be 43 cm wide (10 mm = 2.3 % of its width)
  (``geometry.point_tolerance_px``).
* **Consensus lesions**: outlines on one image with the same or compatible findings are
  one lesion when the centre of either lies inside the other (a point: within its
  tolerance); lesions are the connected groups (``consensus``).
* **Crediting**: each mark to at most one lesion and each lesion once, by a maximum
  matching - the most lesions, then the highest total rating - never by storage order
  (``matching``). A mark may localise a lesion when its centre is inside one of the
  lesion's outlines and its finding matches (or is compatible with) one of theirs.

Degenerate-case conventions (why a value is None rather than a number):

* Nothing here returns NaN or infinity. A figure that is not defined is ``None``; at the
  attempt level the reason is in ``AttemptScore.undefined[metric]`` and in ``notes``.
* A proportion with a zero denominator is None, and so is its interval (Wilson needs n > 0):
  every reference case TB-suggestive -> specificity None; none -> sensitivity None; the
  trainee never / always calls TB-suggestive -> PPV / NPV None. The rest is still scored.
* Cases without a reference sputum decision are not in the decision metrics or ROC. ROC is
  not defined when no likelihood was given and no scale is known (a scheme without one).
* ROC AUC needs at least one positive and one negative case; all ratings tied gives 0.5
  (every pair is a tie, worth 1/2), which is the Wilcoxon value, not an error.
* DeLong's variance needs at least two positive and two negative cases (its components
  are sample variances with n - 1 denominators); with fewer the AUC is reported and the
  variance and CI are None. A variance of exactly 0 (perfect separation, or all ratings
  tied) is reported as 0 with a zero-width CI, and a note says the CI understates the
  uncertainty.
* Cohen's kappa is None when chance agreement pe = 1 (both raters gave one and the same
  answer to every case: 0/0). Weighted kappa is None when the weighted expected
  disagreement is 0 (same situation on the ordinal scale). Both are None for no pairs.
* AFROC/wAFROC need at least one normal case (K1 > 0) and one lesion (K2 > 0). A normal
  case without marks has max NL = -inf, an unmarked lesion rates -inf, and -inf vs -inf
  counts 1/2, so a reader who marks nothing scores exactly 0.5 (RJafroc convention).
* An attempt with no criteria has ``passed = None`` (practice, not graded). A criterion
  whose metric is None fails with the reason "not defined: ...".
"""

from __future__ import annotations

from app.quizzes.scoring.agreement import cohen_kappa, pabak, weighted_kappa, worst_category
from app.quizzes.scoring.attempt import AttemptScore, score_attempt
from app.quizzes.scoring.case import CaseScore, finding_outcomes, score_case
from app.quizzes.scoring.consensus import consensus_lesions, outlines_overlap
from app.quizzes.scoring.criteria import CriterionResult
from app.quizzes.scoring.decision import (
    Z95,
    decision_outcome,
    proportion,
    wilson_interval,
)
from app.quizzes.scoring.froc import afroc_fom, wafroc_fom
from app.quizzes.scoring.geometry import (
    DETECTOR_WIDTH_MM,
    EDGE_TOLERANCE,
    POINT_LESION_RADIUS,
    POINT_TOLERANCE_MM,
    in_region,
    point_tolerance_px,
    region_centre,
)
from app.quizzes.scoring.grades import (
    GRADE_UNANSWERED,
    GRADES,
    discrepancy_grade,
    is_abnormal,
)
from app.quizzes.scoring.inputs import (
    NORMAL_CLASSES,
    CaseRead,
    CaseTruth,
    Criterion,
    Lesion,
    Mark,
    Outline,
    unanswered,
)
from app.quizzes.scoring.localisation import (
    MARK_RATING_SCALE,
    MID_MARK_RATING,
    NL_BLANK,
    NL_FINDING,
    NL_OTHER_IMAGE,
    NL_OUTSIDE,
    NL_TAKEN,
    LesionOutcome,
    Localisation,
    MarkOutcome,
    findings_match,
    lesion_weights,
    likelihood_to_mark_rating,
    localise,
    mark_position,
    mark_rating,
    point_in_lesion,
)
from app.quizzes.scoring.matching import credit_marks
from app.quizzes.scoring.roc import delong, roc_auc, worst_rating

__all__ = [
    "DETECTOR_WIDTH_MM",
    "EDGE_TOLERANCE",
    "GRADES",
    "GRADE_UNANSWERED",
    "MARK_RATING_SCALE",
    "MID_MARK_RATING",
    "NL_BLANK",
    "NL_FINDING",
    "NL_OTHER_IMAGE",
    "NL_OUTSIDE",
    "NL_TAKEN",
    "NORMAL_CLASSES",
    "POINT_LESION_RADIUS",
    "POINT_TOLERANCE_MM",
    "Z95",
    "AttemptScore",
    "CaseRead",
    "CaseScore",
    "CaseTruth",
    "Criterion",
    "CriterionResult",
    "Lesion",
    "LesionOutcome",
    "Localisation",
    "Mark",
    "MarkOutcome",
    "Outline",
    "afroc_fom",
    "cohen_kappa",
    "consensus_lesions",
    "credit_marks",
    "decision_outcome",
    "delong",
    "discrepancy_grade",
    "finding_outcomes",
    "findings_match",
    "in_region",
    "is_abnormal",
    "lesion_weights",
    "likelihood_to_mark_rating",
    "localise",
    "mark_position",
    "mark_rating",
    "outlines_overlap",
    "pabak",
    "point_in_lesion",
    "point_tolerance_px",
    "proportion",
    "region_centre",
    "roc_auc",
    "score_attempt",
    "score_case",
    "unanswered",
    "wafroc_fom",
    "weighted_kappa",
    "wilson_interval",
    "worst_category",
    "worst_rating",
]
