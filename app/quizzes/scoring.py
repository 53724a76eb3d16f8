"""Scoring a trainee's read against the reference read, per case and per attempt.

Pure module: no Flask or database imports, only the standard library and numpy. Every
input is a frozen dataclass (built from stored JSON with ``from_dict``), every output is a
frozen dataclass with ``to_json()`` returning plain JSON-serialisable data.

Definitions follow the project's domain notes (DOMAIN.md, "Scoring a read against the
reference read"):

* Binary decision: TB-suggestive (sputum needed) = positive.
* Sensitivity TP/(TP+FN), specificity TN/(TN+FP), PPV TP/(TP+FP), NPV TN/(TN+FN),
  accuracy (TP+TN)/n, each with a 95 % Wilson score interval.
* Cohen's kappa (po - pe)/(1 - pe); PABAK 2 po - 1; weighted kappa (linear or quadratic).
* ROC AUC by Wilcoxon-Mann-Whitney (ties count 1/2), 95 % CI by DeLong's variance
  (fast midrank algorithm of Sun & Xu 2014) and the normal approximation, clipped to
  [0, 1], as pROC's ``ci.auc(method = "delong")`` does.
* Lesion localisation (LL/NL), AFROC and wAFROC figures of merit as RJafroc defines them.

Degenerate-case conventions (why a value is None rather than a number):

* Nothing here returns NaN or infinity. A figure that is not defined is ``None``; at the
  attempt level the reason is in ``AttemptScore.undefined[metric]`` and in ``notes``.
* A proportion with a zero denominator is None, and so is its interval (Wilson needs n > 0):
  every reference case TB-suggestive -> specificity None; none -> sensitivity None; the
  trainee never / always calls TB-suggestive -> PPV / NPV None. The rest is still scored.
* Cases where either side gives no sputum decision are left out of the decision metrics
  (with a note); cases without a finite likelihood rating are left out of ROC.
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

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.schemes.definitions import MARK_SHAPES

#: Two-sided 95 % standard normal quantile, qnorm(0.975) (kept as a constant so that
#: importing this module does not need scipy).
Z95 = 1.959963984540054

#: A reference lesion given as a point (rather than a region) counts as a disc of this
#: radius in image pixels, unless its geometry carries its own "r".
POINT_LESION_RADIUS = 10.0

#: Tolerance, in pixels, for "on the edge counts as inside" with float coordinates.
EDGE_TOLERANCE = 1e-6

#: Classification values that mean "normal" (both built-in radiologist schemes use it).
NORMAL_CLASSES: frozenset[str] = frozenset({"normal"})

GRADES = ("1", "2a", "2b", "3a", "3b")

_OUTCOME = {(True, True): "TP", (False, True): "FP", (True, False): "FN", (False, False): "TN"}

# Reasons a mark is a non-lesion localisation, in the order they are tested.
NL_OTHER_IMAGE = "no reference lesion on this image"
NL_OUTSIDE = "outside every reference lesion"
NL_FINDING = "the finding does not match the lesion it lies in"
NL_TAKEN = "the lesion was already credited to a higher-rated mark"


# ---- inputs -----------------------------------------------------------------------------


def _check_shape(shape: str, geometry: Any, what: str) -> None:
    if shape not in MARK_SHAPES:
        raise ValueError(f"{what}: shape must be one of {', '.join(MARK_SHAPES)}")
    if not isinstance(geometry, Mapping):
        raise ValueError(f"{what}: geometry must be a mapping")


@dataclass(frozen=True, slots=True)
class Lesion:
    """One reference lesion: a region on one image with its finding label.

    ``weight`` is the lesion's clinical importance for wAFROC. The weights of a case are
    normalised to sum to 1; when any is None (or they sum to 0) all are equal."""

    id: str
    image_id: int
    finding: str
    shape: str
    geometry: Mapping[str, Any]
    weight: float | None = None

    def __post_init__(self) -> None:
        _check_shape(self.shape, self.geometry, f"lesion {self.id}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "image_id": self.image_id,
            "finding": self.finding,
            "shape": self.shape,
            "geometry": dict(self.geometry),
            "weight": self.weight,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Lesion:
        return cls(
            id=str(data["id"]),
            image_id=int(data["image_id"]),
            finding=data["finding"],
            shape=data["shape"],
            geometry=data["geometry"],
            weight=data.get("weight"),
        )


@dataclass(frozen=True, slots=True)
class Mark:
    """One trainee mark, as ``validate_marks`` stores it plus the image it is on."""

    image_id: int
    finding: str
    shape: str
    geometry: Mapping[str, Any]
    confidence: float | None = None

    def __post_init__(self) -> None:
        _check_shape(self.shape, self.geometry, "mark")

    def to_dict(self) -> dict[str, Any]:
        data = {
            "image_id": self.image_id,
            "finding": self.finding,
            "shape": self.shape,
            "geometry": dict(self.geometry),
        }
        if self.confidence is not None:
            data["confidence"] = self.confidence
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Mark:
        return cls(
            image_id=int(data["image_id"]),
            finding=data["finding"],
            shape=data["shape"],
            geometry=data["geometry"],
            confidence=data.get("confidence"),
        )


@dataclass(frozen=True, slots=True)
class CaseTruth:
    """The reference read of one case."""

    case_id: int
    tb_positive: bool | None  # the reference sputum decision (None: the scheme has none)
    classification: str | None
    findings: frozenset[str]
    lesions: tuple[Lesion, ...] = ()
    rating: int | None = None  # reference ordinal answer (TB likelihood, quality grade)
    quality: Mapping[str, bool] | None = None  # radiographer criteria: pass (True) / fail

    def to_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "tb_positive": self.tb_positive,
            "classification": self.classification,
            "findings": sorted(self.findings),
            "lesions": [lesion.to_dict() for lesion in self.lesions],
            "rating": self.rating,
            "quality": dict(self.quality) if self.quality is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CaseTruth:
        return cls(
            case_id=int(data["case_id"]),
            tb_positive=data.get("tb_positive"),
            classification=data.get("classification"),
            findings=frozenset(data.get("findings") or ()),
            lesions=tuple(Lesion.from_dict(d) for d in data.get("lesions") or ()),
            rating=data.get("rating"),
            quality=data.get("quality"),
        )


@dataclass(frozen=True, slots=True)
class CaseRead:
    """The trainee's read of one case."""

    case_id: int
    tb_positive: bool | None
    classification: str | None
    findings: frozenset[str]
    rating: float | None = None  # likelihood, higher = more likely TB; used for ROC
    marks: tuple[Mark, ...] = ()
    ordinal: int | None = None  # ordinal answer on the scale of CaseTruth.rating
    quality: Mapping[str, bool] | None = None
    reading_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "tb_positive": self.tb_positive,
            "classification": self.classification,
            "findings": sorted(self.findings),
            "rating": self.rating,
            "marks": [mark.to_dict() for mark in self.marks],
            "ordinal": self.ordinal,
            "quality": dict(self.quality) if self.quality is not None else None,
            "reading_seconds": self.reading_seconds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CaseRead:
        return cls(
            case_id=int(data["case_id"]),
            tb_positive=data.get("tb_positive"),
            classification=data.get("classification"),
            findings=frozenset(data.get("findings") or ()),
            rating=data.get("rating"),
            marks=tuple(Mark.from_dict(d) for d in data.get("marks") or ()),
            ordinal=data.get("ordinal"),
            quality=data.get("quality"),
            reading_seconds=data.get("reading_seconds"),
        )


@dataclass(frozen=True, slots=True)
class Criterion:
    """A pass condition: ``minimum <= metric`` and/or ``metric <= maximum``; with neither
    bound it only asks that the metric be defined. All criteria of an exercise must hold.

    ``metric`` names a key of ``AttemptScore.metrics`` or, per finding,
    ``finding_sensitivity:<finding>`` / ``finding_specificity:<finding>``."""

    metric: str
    minimum: float | None = None
    maximum: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "minimum": self.minimum, "maximum": self.maximum}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Criterion:
        return cls(str(data["metric"]), data.get("minimum"), data.get("maximum"))


# ---- geometry ---------------------------------------------------------------------------


def mark_position(mark: Mark) -> tuple[float, float]:
    """Where a mark points: the point itself, or the centroid of the shape.

    Polygons use the area centroid (shoelace formula), or the mean of the vertices when the
    area is ~0. The centroid of a strongly concave polygon can lie outside it: the mark is
    judged by that point all the same, so trainees are told marks are scored by centre."""
    geo = mark.geometry
    if mark.shape == "point":
        return float(geo["x"]), float(geo["y"])
    if mark.shape == "ellipse":
        return float(geo["cx"]), float(geo["cy"])
    if mark.shape == "rectangle":
        return float(geo["x"]) + float(geo["width"]) / 2, float(geo["y"]) + float(geo["height"]) / 2
    return _polygon_centroid(geo["points"])


def _polygon_centroid(points: Sequence[Sequence[float]]) -> tuple[float, float]:
    area2 = cx = cy = 0.0
    n = len(points)
    for i in range(n):
        x0, y0 = points[i]
        x1, y1 = points[(i + 1) % n]
        cross = x0 * y1 - x1 * y0
        area2 += cross
        cx += (x0 + x1) * cross
        cy += (y0 + y1) * cross
    if abs(area2) < 1e-12:
        return (
            sum(float(p[0]) for p in points) / n,
            sum(float(p[1]) for p in points) / n,
        )
    return cx / (3 * area2), cy / (3 * area2)


def point_in_lesion(lesion: Lesion, x: float, y: float) -> bool:
    """Is (x, y) inside the lesion's region? The boundary counts as inside.

    A point lesion is a disc of radius ``geometry.get("r", POINT_LESION_RADIUS)``."""
    geo = lesion.geometry
    eps = EDGE_TOLERANCE
    if lesion.shape == "ellipse":
        rx, ry = abs(float(geo["rx"])), abs(float(geo["ry"]))
        dx, dy = x - float(geo["cx"]), y - float(geo["cy"])
        if rx == 0 or ry == 0:
            return False
        # Scale the tolerance with the radii so that an edge point passes for any size.
        return (dx / rx) ** 2 + (dy / ry) ** 2 <= 1 + 2 * eps / min(rx, ry) + 1e-12
    if lesion.shape == "rectangle":
        x0, y0 = float(geo["x"]), float(geo["y"])
        x1, y1 = x0 + float(geo["width"]), y0 + float(geo["height"])
        return (
            min(x0, x1) - eps <= x <= max(x0, x1) + eps
            and min(y0, y1) - eps <= y <= max(y0, y1) + eps
        )
    if lesion.shape == "point":
        radius = float(geo.get("r", POINT_LESION_RADIUS))
        return math.hypot(x - float(geo["x"]), y - float(geo["y"])) <= radius + eps
    return _in_polygon(geo["points"], x, y)


def _in_polygon(points: Sequence[Sequence[float]], x: float, y: float) -> bool:
    """Even-odd ray casting, with an explicit on-edge test first (ray casting alone gets
    edge points right only half the time)."""
    n = len(points)
    inside = False
    for i in range(n):
        x0, y0 = float(points[i][0]), float(points[i][1])
        x1, y1 = float(points[(i + 1) % n][0]), float(points[(i + 1) % n][1])
        if _on_segment(x0, y0, x1, y1, x, y):
            return True
        if (y0 > y) != (y1 > y):
            x_cross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
            if x < x_cross:
                inside = not inside
    return inside


def _on_segment(x0: float, y0: float, x1: float, y1: float, x: float, y: float) -> bool:
    eps = EDGE_TOLERANCE
    if not (min(x0, x1) - eps <= x <= max(x0, x1) + eps):
        return False
    if not (min(y0, y1) - eps <= y <= max(y0, y1) + eps):
        return False
    length = math.hypot(x1 - x0, y1 - y0)
    if length == 0:
        return math.hypot(x - x0, y - y0) <= eps
    # Distance from the line = |cross product| / length.
    return abs((x1 - x0) * (y - y0) - (y1 - y0) * (x - x0)) <= eps * length


# ---- localisation -----------------------------------------------------------------------


def findings_match(
    mark_finding: str, lesion_finding: str, compatible: Mapping[str, Iterable[str]] | None
) -> bool:
    """Same finding, or declared compatible in either direction (``compatible`` maps a
    finding to the findings it may stand for, e.g. ``{"tb_lesion": {"infiltrate", ...}}``;
    the relation is treated as symmetric)."""
    if mark_finding == lesion_finding:
        return True
    if not compatible:
        return False
    return lesion_finding in compatible.get(mark_finding, ()) or mark_finding in compatible.get(
        lesion_finding, ()
    )


def effective_rating(mark: Mark, read: CaseRead) -> float:
    """A mark's rating: its confidence, else the read's likelihood rating, else 1."""
    if mark.confidence is not None:
        return float(mark.confidence)
    if read.rating is not None:
        return float(read.rating)
    return 1.0


def lesion_weights(lesions: Sequence[Lesion]) -> list[float]:
    """wAFROC weights of one case, summing to 1 (equal unless every lesion has a weight
    >= 0 and they do not sum to 0; given weights are rescaled to sum to 1)."""
    if not lesions:
        return []
    given = [lesion.weight for lesion in lesions]
    if all(w is not None and w >= 0 for w in given):
        total = float(sum(given))  # type: ignore[arg-type]
        if total > 0:
            return [float(w) / total for w in given]  # type: ignore[arg-type]
    return [1.0 / len(lesions)] * len(lesions)


@dataclass(frozen=True, slots=True)
class MarkOutcome:
    index: int  # position of the mark in CaseRead.marks
    status: str  # "LL" or "NL"
    rating: float
    lesion_id: str | None = None
    reason: str | None = None  # why an NL is an NL

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "status": self.status,
            "rating": _finite(self.rating),
            "lesion_id": self.lesion_id,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class LesionOutcome:
    lesion_id: str
    image_id: int
    finding: str
    weight: float
    hit: bool
    mark_index: int | None = None
    rating: float | None = None  # the crediting mark's rating; None when missed (-inf)

    def to_json(self) -> dict[str, Any]:
        return {
            "lesion_id": self.lesion_id,
            "image_id": self.image_id,
            "finding": self.finding,
            "weight": _finite(self.weight),
            "hit": self.hit,
            "mark_index": self.mark_index,
            "rating": _finite(self.rating),
        }


@dataclass(frozen=True, slots=True)
class Localisation:
    marks: tuple[MarkOutcome, ...]
    lesions: tuple[LesionOutcome, ...]

    @property
    def ll(self) -> int:
        return sum(1 for m in self.marks if m.status == "LL")

    @property
    def nl(self) -> int:
        return len(self.marks) - self.ll

    def to_json(self) -> dict[str, Any]:
        return {
            "ll": self.ll,
            "nl": self.nl,
            "marks": [m.to_json() for m in self.marks],
            "lesions": [lesion.to_json() for lesion in self.lesions],
        }


_NOTHING = Localisation((), ())


def localise(
    truth: CaseTruth, read: CaseRead, compatible: Mapping[str, Iterable[str]] | None = None
) -> Localisation:
    """Classify each mark as lesion localisation (LL) or non-lesion localisation (NL).

    A mark is LL when its position (``mark_position``) lies inside a reference lesion of the
    same image whose finding matches or is compatible, and that lesion is not yet credited.
    Each lesion is credited once: marks are taken greedily by descending rating
    (``effective_rating``, i.e. confidence when given) then by their order in the read, and
    a mark inside several free lesions takes the first in the reference order. A further
    mark on a credited lesion is an NL (RJafroc keeps only the highest-rated mark per lesion;
    we also show the others to the trainee, as NLs, with the reason)."""
    lesions = truth.lesions
    marks = read.marks
    if not lesions and not marks:
        return _NOTHING  # most normal cases: nothing to place (and scoring stays fast)
    weights = lesion_weights(lesions)
    ratings = [effective_rating(m, read) for m in marks]
    order = sorted(range(len(marks)), key=lambda i: (-ratings[i], i))
    credited: dict[int, int] = {}  # lesion index -> mark index
    outcomes: dict[int, MarkOutcome] = {}
    for i in order:
        mark = marks[i]
        reason, lesion_index = _place_mark(mark, lesions, credited, compatible)
        if lesion_index is None:
            outcomes[i] = MarkOutcome(i, "NL", ratings[i], None, reason)
        else:
            credited[lesion_index] = i
            outcomes[i] = MarkOutcome(i, "LL", ratings[i], lesions[lesion_index].id)
    lesion_outcomes = tuple(
        LesionOutcome(
            lesion.id,
            lesion.image_id,
            lesion.finding,
            weights[j],
            j in credited,
            credited.get(j),
            ratings[credited[j]] if j in credited else None,
        )
        for j, lesion in enumerate(lesions)
    )
    return Localisation(tuple(outcomes[i] for i in range(len(marks))), lesion_outcomes)


def _place_mark(
    mark: Mark,
    lesions: Sequence[Lesion],
    credited: Mapping[int, int],
    compatible: Mapping[str, Iterable[str]] | None,
) -> tuple[str | None, int | None]:
    """(NL reason, None) or (None, index of the lesion the mark localises)."""
    same_image = [j for j, lesion in enumerate(lesions) if lesion.image_id == mark.image_id]
    if not same_image:
        return NL_OTHER_IMAGE, None
    x, y = mark_position(mark)
    inside = [j for j in same_image if point_in_lesion(lesions[j], x, y)]
    if not inside:
        return NL_OUTSIDE, None
    matching = [j for j in inside if findings_match(mark.finding, lesions[j].finding, compatible)]
    if not matching:
        return NL_FINDING, None
    free = [j for j in matching if j not in credited]
    if not free:
        return NL_TAKEN, None
    return None, free[0]


# ---- case scoring -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaseScore:
    case_id: int
    classification_correct: bool | None  # None: no reference or no trainee classification
    tb_correct: bool | None  # None: no reference or no trainee sputum decision
    findings: Mapping[str, str]  # finding -> "TP" | "FP" | "FN" | "TN"
    localisation: Localisation
    grade: str  # "1", "2a", "2b", "3a" or "3b"
    grade_reasons: tuple[str, ...]
    reading_seconds: float | None = None

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
            "reading_seconds": _finite(self.reading_seconds),
        }


def finding_outcomes(
    truth: Iterable[str], read: Iterable[str], universe: Iterable[str] | None = None
) -> dict[str, str]:
    """TP/FP/FN/TN per finding label (exact labels; compatibility applies to marks only).

    Without a ``universe`` only findings named by either side are listed, so TN needs the
    scheme's full list of findings passed as ``universe``."""
    t, r = set(truth), set(read)
    labels = sorted(t | r) if universe is None else list(dict.fromkeys([*universe, *t, *r]))
    return {f: _OUTCOME[(f in t, f in r)] for f in labels}


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

    * **3 (major)**: the overall normal/abnormal call differs - an abnormality missed
      entirely, or one reported on a normal image (``is_abnormal``).
    * **2 (minor)**: the normal/abnormal call agrees but something else differs: the sputum
      decision (an abnormality seen but judged TB-suggestive or not wrongly), the
      classification, a finding missed or added, or a radiographer quality criterion.
    * **1 (concur)**: decision, classification, findings and criteria all agree.
    * Suffix **b** (clinically significant) when both reads give a sputum decision and they
      differ (DOMAIN.md), **a** otherwise. Grade 1 has no suffix.
    * A scheme with no "normal" class (radiographer grades) never gives 3: disagreeing on
      the grade or a criterion is 2a.

    So a TB-suggestive case read normal is 3b; a cardiac-only case read normal is 3a; a
    TB-suggestive case read "abnormal, not suggestive of TB" is 2b; a missed second TB
    finding with the right decision is 2a. Marks and ratings do not enter the grade: they
    are scored by localisation and ROC/AFROC."""
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
    if (
        truth.classification is not None
        and read.classification is not None
        and truth.classification != read.classification
    ):
        reasons.append(
            f"classification {read.classification!r}, reference {truth.classification!r}"
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
    if not truth or read is None:
        return []
    return [
        f"criterion {key!r}: {'pass' if read[key] else 'fail'}, reference "
        f"{'pass' if truth[key] else 'fail'}"
        for key in truth
        if key in read and bool(read[key]) != bool(truth[key])
    ]


def score_case(
    truth: CaseTruth,
    read: CaseRead,
    compatible: Mapping[str, Iterable[str]] | None = None,
    *,
    findings_universe: Iterable[str] | None = None,
    normal_classes: frozenset[str] = NORMAL_CLASSES,
) -> CaseScore:
    """Score one case: correctness of the classification and the sputum decision,
    TP/FP/FN/TN per finding, LL/NL per mark and the discrepancy grade."""
    grade, reasons = discrepancy_grade(truth, read, normal_classes)
    return CaseScore(
        case_id=truth.case_id,
        classification_correct=_same(truth.classification, read.classification),
        tb_correct=_same(truth.tb_positive, read.tb_positive),
        findings=finding_outcomes(truth.findings, read.findings, findings_universe),
        localisation=localise(truth, read, compatible),
        grade=grade,
        grade_reasons=reasons,
        reading_seconds=read.reading_seconds,
    )


def _same(a: Any, b: Any) -> bool | None:
    return None if a is None or b is None else a == b


# ---- statistics -------------------------------------------------------------------------


def proportion(successes: int, n: int) -> float | None:
    """successes / n, or None when n is 0."""
    return successes / n if n > 0 else None


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for a binomial proportion (Wilson 1927).

    Chosen over the Wald interval because it stays inside [0, 1] and keeps a sensible
    width at p = 0 or 1 and for the small n of a test set. None when n is 0."""
    if n <= 0:
        return None
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _midranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given the mean of their ranks."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def _split(truth: Sequence[bool], ratings: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(truth, dtype=bool).ravel()
    r = np.asarray(ratings, dtype=float).ravel()
    if t.shape != r.shape:
        raise ValueError("truth and ratings differ in length")
    if np.isnan(r).any():
        raise ValueError("ratings must not be NaN")
    return r[t], r[~t]


def roc_auc(truth: Sequence[bool], ratings: Sequence[float]) -> float | None:
    """Empirical ROC AUC = Wilcoxon-Mann-Whitney statistic, a tie counting 1/2.

    Higher ratings mean more likely positive. None without at least one positive and one
    negative case. Equals scikit-learn's ``roc_auc_score``."""
    pos, neg = _split(truth, ratings)
    m, n = pos.size, neg.size
    if m == 0 or n == 0:
        return None
    ranks = _midranks(np.concatenate([pos, neg]))
    return float((ranks[:m].sum() - m * (m + 1) / 2) / (m * n))


def delong(
    truth: Sequence[bool], ratings: Sequence[float]
) -> tuple[float | None, float | None, tuple[float, float] | None]:
    """AUC, DeLong variance and 95 % CI (auc +/- z * sqrt(var), clipped to [0, 1]).

    Fast algorithm of Sun & Xu (IEEE SPL 2014): placement values from midranks, O(N log N).
    Variance = S10/m + S01/n with sample variances (n - 1 denominators), hence None with
    fewer than two positive or two negative cases; the AUC itself needs one of each."""
    pos, neg = _split(truth, ratings)
    m, n = pos.size, neg.size
    if m == 0 or n == 0:
        return None, None, None
    tz = _midranks(np.concatenate([pos, neg]))
    auc = float((tz[:m].sum() - m * (m + 1) / 2) / (m * n))
    if m < 2 or n < 2:
        return auc, None, None
    v10 = (tz[:m] - _midranks(pos)) / n  # per positive: share of negatives rated below
    v01 = 1.0 - (tz[m:] - _midranks(neg)) / m  # per negative: share of positives above
    variance = float(v10.var(ddof=1) / m + v01.var(ddof=1) / n)
    variance = max(variance, 0.0)  # guard a -0.0 / -1e-18 from rounding
    half = Z95 * math.sqrt(variance)
    return auc, variance, (max(0.0, auc - half), min(1.0, auc + half))


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Cohen's kappa (po - pe) / (1 - pe) for any category labels.

    None for no pairs, or when pe = 1: both raters gave one and the same answer to every
    case, so agreement beyond chance is 0/0 (scikit-learn returns NaN there)."""
    if len(a) != len(b):
        raise ValueError("the two ratings differ in length")
    n = len(a)
    if n == 0:
        return None
    po = sum(1 for x, y in zip(a, b, strict=True) if x == y) / n
    ca, cb = Counter(a), Counter(b)
    pe = sum(ca[k] * cb[k] for k in ca) / (n * n)
    if 1 - pe <= 1e-12:
        return None
    return (po - pe) / (1 - pe)


def pabak(a: Sequence[Hashable], b: Sequence[Hashable], categories: int = 2) -> float | None:
    """Prevalence- and bias-adjusted kappa: (k po - 1) / (k - 1), = 2 po - 1 for a binary
    decision (Byrt, Bishop & Carlin 1993). None for no pairs."""
    if len(a) != len(b):
        raise ValueError("the two ratings differ in length")
    if not a:
        return None
    if categories < 2:
        raise ValueError("PABAK needs at least two categories")
    po = sum(1 for x, y in zip(a, b, strict=True) if x == y) / len(a)
    return (categories * po - 1) / (categories - 1)


def weighted_kappa(
    a: Sequence[Hashable],
    b: Sequence[Hashable],
    labels: Sequence[Hashable],
    weights: str = "linear",
) -> float | None:
    """Weighted kappa 1 - sum(w O) / sum(w E) on the ordered ``labels``.

    Disagreement weights |i - j| ("linear") or (i - j)^2 ("quadratic") on the label
    positions, as scikit-learn's ``cohen_kappa_score(weights=...)``. None for no pairs or
    when the expected weighted disagreement is 0 (one shared answer throughout)."""
    if len(a) != len(b):
        raise ValueError("the two ratings differ in length")
    if weights not in ("linear", "quadratic"):
        raise ValueError("weights must be 'linear' or 'quadratic'")
    index = {label: i for i, label in enumerate(labels)}
    unknown = {x for x in (*a, *b) if x not in index}
    if unknown:
        raise ValueError(f"values not among the labels: {sorted(map(str, unknown))}")
    if not a:
        return None
    k = len(labels)
    observed = np.zeros((k, k))
    np.add.at(observed, ([index[x] for x in a], [index[y] for y in b]), 1.0)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / len(a)
    distance = np.abs(np.subtract.outer(np.arange(k), np.arange(k))).astype(float)
    w = distance if weights == "linear" else distance**2
    denominator = float((w * expected).sum())
    if denominator <= 1e-12:
        return None
    return 1.0 - float((w * observed).sum()) / denominator


def _fom(
    nl_normal: Sequence[Sequence[float | None]],
    ll: Sequence[Sequence[float | None]],
    weights: Sequence[Sequence[float]] | None,
    weighted: bool,
) -> float | None:
    """Shared core of AFROC and wAFROC (RJafroc ``MyFOM.cpp``).

    For each lesion rating y: sum over normal cases of psi(FP_k1, y) = #(FP < y) +
    #(FP == y) / 2, counted on the sorted FP vector with two binary searches."""
    fp = np.sort(
        np.array(
            [max((r for r in case if r is not None), default=-math.inf) for case in nl_normal],
            dtype=float,
        )
    )
    k1 = fp.size
    ratings: list[float] = []
    case_weights: list[float] = []
    k2 = 0
    for k, case in enumerate(ll):
        if not case:
            continue  # an abnormal case without lesions adds nothing (and is not counted)
        k2 += 1
        ratings.extend(-math.inf if r is None else float(r) for r in case)
        case_weights.extend(_case_weights(weights[k] if weights is not None else None, len(case)))
    if k1 == 0 or k2 == 0:
        return None
    y = np.array(ratings, dtype=float)
    below = np.searchsorted(fp, y, side="left")
    below_or_tied = np.searchsorted(fp, y, side="right")
    psi = (below + below_or_tied) / 2.0  # #(FP < y) + #(FP == y) / 2
    if weighted:
        return float((np.asarray(case_weights) * psi).sum() / (k1 * k2))
    return float(psi.sum() / (k1 * y.size))


def _case_weights(given: Sequence[float] | None, n: int) -> list[float]:
    if given is None:
        return [1.0 / n] * n
    if len(given) != n:
        raise ValueError("one weight per lesion is needed")
    total = float(sum(given))
    if total <= 0 or any(w < 0 for w in given):
        return [1.0 / n] * n
    return [float(w) / total for w in given]


def afroc_fom(
    nl_normal: Sequence[Sequence[float | None]], ll: Sequence[Sequence[float | None]]
) -> float | None:
    """AFROC figure of merit (RJafroc ``AFROC``): (1 / (K1 L)) sum_k1 sum_l psi(FP_k1, LL_l).

    ``nl_normal``: NL ratings on each normal case (FP_k1 = their max, -inf when none);
    ``ll``: the rating of each lesion on each abnormal case, None when unmarked (-inf).
    None when there is no normal case or no lesion."""
    return _fom(nl_normal, ll, None, weighted=False)


def wafroc_fom(
    nl_normal: Sequence[Sequence[float | None]],
    ll: Sequence[Sequence[float | None]],
    weights: Sequence[Sequence[float]] | None = None,
) -> float | None:
    """Weighted AFROC figure of merit (RJafroc ``wAFROC``):
    (1 / (K1 K2)) sum_k1 sum_k2 sum_l W_k2l psi(FP_k1, LL_k2l).

    ``weights``: per abnormal case, one weight per lesion (rescaled to sum to 1); equal
    weights when None. Abnormal cases with an empty lesion list are ignored."""
    return _fom(nl_normal, ll, weights, weighted=True)


# ---- attempt scoring --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CriterionResult:
    metric: str
    minimum: float | None
    maximum: float | None
    value: float | None
    passed: bool
    reason: str | None  # why it failed; None when passed

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "minimum": _finite(self.minimum),
            "maximum": _finite(self.maximum),
            "value": _finite(self.value),
            "passed": self.passed,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class AttemptScore:
    """Everything about one attempt. ``metrics`` holds every scalar figure (None when not
    defined, the reason in ``undefined``); ``intervals`` the 95 % CIs of those that have
    one; ``passed`` is None when the exercise has no criteria."""

    cases: tuple[CaseScore, ...]
    metrics: dict[str, float | None]
    intervals: dict[str, tuple[float, float] | None]
    undefined: dict[str, str]
    confusion: dict[str, int]
    per_finding: dict[str, dict[str, Any]]
    quality: dict[str, dict[str, Any]]
    grades: dict[str, int]
    criteria: tuple[CriterionResult, ...]
    passed: bool | None
    notes: tuple[str, ...] = field(default=())

    def metric(self, name: str) -> float | None:
        """A metric by name, including ``finding_sensitivity:<finding>`` and
        ``finding_specificity:<finding>``; KeyError for an unknown name."""
        return _lookup(name, self.metrics, self.per_finding)[0]

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``json.dumps(..., allow_nan=False)``: no NaN, no infinity."""
        return {
            "metrics": {k: _finite(v) for k, v in self.metrics.items()},
            "intervals": {
                k: None if v is None else [_finite(v[0]), _finite(v[1])]
                for k, v in self.intervals.items()
            },
            "undefined": dict(self.undefined),
            "confusion": dict(self.confusion),
            "per_finding": {f: _clean(v) for f, v in self.per_finding.items()},
            "quality": {c: _clean(v) for c, v in self.quality.items()},
            "grades": dict(self.grades),
            "criteria": [c.to_json() for c in self.criteria],
            "passed": self.passed,
            "notes": list(self.notes),
            "cases": [c.to_json() for c in self.cases],
        }


class _Sheet:
    """Collects metrics, their intervals and the reason each undefined one is None."""

    def __init__(self) -> None:
        self.metrics: dict[str, float | None] = {}
        self.intervals: dict[str, tuple[float, float] | None] = {}
        self.undefined: dict[str, str] = {}
        self.notes: list[str] = []

    def put(self, name: str, value: float | None, why: str = "not defined") -> None:
        value = _finite(value)
        self.metrics[name] = value
        if value is None:
            self.undefined[name] = why

    def rate(self, name: str, successes: int, n: int, why: str) -> None:
        """A proportion with its Wilson interval."""
        self.put(name, proportion(successes, n), why)
        self.intervals[name] = wilson_interval(successes, n)


def score_attempt(
    pairs: Sequence[tuple[CaseTruth, CaseRead]],
    criteria: Sequence[Criterion] = (),
    compatible: Mapping[str, Iterable[str]] | None = None,
    *,
    findings_universe: Iterable[str] | None = None,
    ordinal_labels: Sequence[int] | None = None,
    kappa_weights: str = "linear",
    normal_classes: frozenset[str] = NORMAL_CLASSES,
) -> AttemptScore:
    """Score every case of an attempt and the attempt as a whole, then apply ``criteria``.

    ``findings_universe``: the scheme's finding labels, so that per-finding specificity
    counts true negatives for findings nobody named (the union of the named ones is used
    in any case). ``ordinal_labels``: the ordinal scale for weighted kappa (default: every
    whole number from the lowest to the highest value seen)."""
    universe = list(dict.fromkeys(findings_universe or ()))
    for truth, read in pairs:
        for f in sorted(truth.findings | read.findings):
            if f not in universe:
                universe.append(f)
    cases = tuple(
        score_case(
            truth,
            read,
            compatible,
            findings_universe=universe,
            normal_classes=normal_classes,
        )
        for truth, read in pairs
    )
    sheet = _Sheet()
    sheet.metrics["cases"] = len(pairs)
    if not pairs:
        sheet.notes.append("the attempt has no cases: every metric is undefined")
    confusion = _decision_metrics(pairs, sheet)
    _classification_metrics(cases, sheet)
    _roc_metrics(pairs, sheet)
    _ordinal_metrics(pairs, sheet, ordinal_labels, kappa_weights)
    _localisation_metrics(pairs, cases, sheet, normal_classes)
    per_finding = _per_finding(cases, universe, sheet)
    quality = _quality_metrics(pairs, sheet)
    grades = _grade_metrics(cases, sheet)
    _reading_time(pairs, sheet)
    results = tuple(_check(c, sheet, per_finding) for c in criteria)
    passed = all(r.passed for r in results) if results else None
    notes = [
        *sheet.notes,
        *(f"{name} is not defined: {why}" for name, why in sheet.undefined.items()),
    ]
    return AttemptScore(
        cases=cases,
        metrics=sheet.metrics,
        intervals=sheet.intervals,
        undefined=sheet.undefined,
        confusion=confusion,
        per_finding=per_finding,
        quality=quality,
        grades=grades,
        criteria=results,
        passed=passed,
        notes=tuple(notes),
    )


def _decision_metrics(pairs: Sequence[tuple[CaseTruth, CaseRead]], sheet: _Sheet) -> dict:
    """Sensitivity ... PABAK on the sputum decision, over cases where both reads give one."""
    decided = [
        (t.tb_positive, r.tb_positive)
        for t, r in pairs
        if t.tb_positive is not None and r.tb_positive is not None
    ]
    skipped = sum(1 for t, r in pairs if t.tb_positive is not None and r.tb_positive is None)
    if skipped:
        sheet.notes.append(
            f"{skipped} case(s) without a trainee sputum decision are left out of the "
            "decision metrics"
        )
    counts = Counter(_OUTCOME[(bool(t), bool(r))] for t, r in decided)
    tp, fp, fn, tn = counts["TP"], counts["FP"], counts["FN"], counts["TN"]
    none = "no case has both a reference and a trainee sputum decision"
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
    sheet.rate("accuracy", tp + tn, len(decided), none)
    reference = [t for t, _ in decided]
    trainee = [r for _, r in decided]
    sheet.put(
        "kappa",
        cohen_kappa(reference, trainee),
        "the reference and the trainee gave the same single decision to every case "
        "(chance agreement is 1)"
        if decided
        else none,
    )
    sheet.put("pabak", pabak(reference, trainee), none)
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "n": len(decided)}


def _classification_metrics(cases: Sequence[CaseScore], sheet: _Sheet) -> None:
    judged = [c.classification_correct for c in cases if c.classification_correct is not None]
    sheet.rate(
        "classification_accuracy",
        sum(judged),
        len(judged),
        "no case has both a reference and a trainee classification",
    )


def _roc_metrics(pairs: Sequence[tuple[CaseTruth, CaseRead]], sheet: _Sheet) -> None:
    usable = [
        (bool(t.tb_positive), float(r.rating))
        for t, r in pairs
        if t.tb_positive is not None and r.rating is not None and math.isfinite(r.rating)
    ]
    left_out = sum(1 for t, _ in pairs if t.tb_positive is not None) - len(usable)
    if left_out:
        sheet.notes.append(f"{left_out} case(s) without a likelihood rating are left out of ROC")
    truth = [t for t, _ in usable]
    ratings = [r for _, r in usable]
    m = sum(truth)
    n = len(truth) - m
    auc, variance, ci = delong(truth, ratings) if usable else (None, None, None)
    why_auc = (
        "no case has both a reference sputum decision and a likelihood rating"
        if not usable
        else f"ROC needs at least one TB-suggestive and one other reference case ({m} and {n} here)"
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


def _ordinal_metrics(
    pairs: Sequence[tuple[CaseTruth, CaseRead]],
    sheet: _Sheet,
    labels: Sequence[int] | None,
    weights: str,
) -> None:
    both = [
        (t.rating, r.ordinal) for t, r in pairs if t.rating is not None and r.ordinal is not None
    ]
    if labels is None:
        values = {v for pair in both for v in pair}
        if values and all(float(v).is_integer() for v in values):
            labels = list(range(int(min(values)), int(max(values)) + 1))
        else:
            labels = sorted(values)
    else:
        known = set(labels)
        outside = [p for p in both if p[0] not in known or p[1] not in known]
        if outside:
            sheet.notes.append(
                f"{len(outside)} ordinal answer(s) outside the scale are left out of weighted kappa"
            )
            both = [p for p in both if p not in outside]
    sheet.put(
        "weighted_kappa",
        weighted_kappa([a for a, _ in both], [b for _, b in both], labels, weights),
        "the reference and the trainee gave the same single ordinal answer to every case"
        if both
        else "no case has both a reference and a trainee ordinal answer",
    )


def _localisation_metrics(
    pairs: Sequence[tuple[CaseTruth, CaseRead]],
    cases: Sequence[CaseScore],
    sheet: _Sheet,
    normal_classes: frozenset[str],
) -> None:
    """LL fraction, NL per case and the AFROC / wAFROC FOMs.

    Normal cases for AFROC: no reference lesion and a normal reference read. A case read
    abnormal by the reference but without lesion regions cannot be used either way (its
    marks are neither false positives on a normal image nor lesion hits) and is left out,
    with a note."""
    lesions = [lesion for c in cases for lesion in c.localisation.lesions]
    hit = sum(1 for lesion in lesions if lesion.hit)
    no_lesions = "the reference reads have no lesion regions"
    sheet.rate("lesion_localisation_sensitivity", hit, len(lesions), no_lesions)
    nl = sum(c.localisation.nl for c in cases)
    sheet.put("nl_per_case", nl / len(cases) if cases else None, "the attempt has no cases")
    nl_normal: list[list[float]] = []
    ll: list[list[float | None]] = []
    weights: list[list[float]] = []
    unusable = 0
    for (truth, _), score in zip(pairs, cases, strict=True):
        if truth.lesions:
            ll.append([lesion.rating for lesion in score.localisation.lesions])
            weights.append([lesion.weight for lesion in score.localisation.lesions])
        elif is_abnormal(truth.classification, truth.findings, truth.tb_positive, normal_classes):
            unusable += 1
        else:
            nl_normal.append([m.rating for m in score.localisation.marks])
    if unusable and lesions:
        sheet.notes.append(
            f"{unusable} abnormal reference case(s) without lesion regions are left out of "
            "AFROC/wAFROC"
        )
    why = no_lesions if not lesions else "AFROC needs at least one normal reference case"
    sheet.put("afroc", afroc_fom(nl_normal, ll), why)
    sheet.put("wafroc", wafroc_fom(nl_normal, ll, weights), why)
    if lesions and not any(c.localisation.marks for c in cases):
        sheet.notes.append("no marks at all: every lesion rates -inf, so AFROC/wAFROC are 0.5")


def _per_finding(
    cases: Sequence[CaseScore], universe: Sequence[str], sheet: _Sheet
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


def _quality_metrics(
    pairs: Sequence[tuple[CaseTruth, CaseRead]], sheet: _Sheet
) -> dict[str, dict[str, Any]]:
    """Agreement on radiographer criteria (pass/fail), overall and per criterion, with
    Cohen's kappa per criterion. Criteria the trainee left unanswered are left out."""
    judgements: dict[str, list[tuple[bool, bool]]] = {}
    unanswered = 0
    for truth, read in pairs:
        if not truth.quality:
            continue
        for key, verdict in truth.quality.items():
            if read.quality is None or key not in read.quality:
                unanswered += 1
                continue
            judgements.setdefault(key, []).append((bool(verdict), bool(read.quality[key])))
    if unanswered:
        sheet.notes.append(f"{unanswered} quality criterion answer(s) missing, left out")
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


def _grade_metrics(cases: Sequence[CaseScore], sheet: _Sheet) -> dict[str, int]:
    grades = dict.fromkeys(GRADES, 0)
    for case in cases:
        grades[case.grade] += 1
    sheet.rate("concordance", grades["1"], len(cases), "the attempt has no cases")
    sheet.put("major_discrepancies", grades["3a"] + grades["3b"])
    sheet.put("significant_discrepancies", grades["2b"] + grades["3b"])
    return grades


def _reading_time(pairs: Sequence[tuple[CaseTruth, CaseRead]], sheet: _Sheet) -> None:
    times = [
        float(r.reading_seconds)
        for _, r in pairs
        if r.reading_seconds is not None and math.isfinite(r.reading_seconds)
    ]
    why = "no reading time was recorded"
    sheet.put("mean_reading_seconds", sum(times) / len(times) if times else None, why)
    sheet.put("median_reading_seconds", float(np.median(times)) if times else None, why)


def _lookup(
    name: str, metrics: Mapping[str, float | None], per_finding: Mapping[str, Mapping[str, Any]]
) -> tuple[float | None, str | None]:
    """(value, reason it is None) for a metric name; KeyError when unknown."""
    if name in metrics:
        return metrics[name], None
    kind, _, finding = name.partition(":")
    if kind in ("finding_sensitivity", "finding_specificity") and finding in per_finding:
        value = per_finding[finding][kind.removeprefix("finding_")]
        why = (
            f"no reference case has {finding!r}"
            if kind == "finding_sensitivity"
            else f"every reference case has {finding!r}"
        )
        return value, why
    raise KeyError(name)


def _check(criterion: Criterion, sheet: _Sheet, per_finding: Mapping[str, Any]) -> CriterionResult:
    """Pass or fail one criterion, with the reason for a fail. A small tolerance (1e-9)
    keeps 0.9 from failing "minimum 0.9" through floating-point rounding."""

    def result(value: float | None, reason: str | None) -> CriterionResult:
        return CriterionResult(
            criterion.metric, criterion.minimum, criterion.maximum, value, reason is None, reason
        )

    try:
        value, why = _lookup(criterion.metric, sheet.metrics, per_finding)
    except KeyError:
        return result(None, f"unknown metric {criterion.metric!r}")
    if value is None:
        reason = sheet.undefined.get(criterion.metric) or why or "no data"
        return result(None, f"not defined: {reason}")
    shown = f"{value:d}" if isinstance(value, int) else f"{value:.3f}"  # counts vs fractions
    if criterion.minimum is not None and value < criterion.minimum - 1e-9:
        return result(
            value, f"{criterion.metric} {shown} is below the minimum {criterion.minimum:g}"
        )
    if criterion.maximum is not None and value > criterion.maximum + 1e-9:
        return result(
            value, f"{criterion.metric} {shown} is above the maximum {criterion.maximum:g}"
        )
    return result(value, None)


# ---- JSON helpers -----------------------------------------------------------------------


def _finite(value: Any) -> Any:
    """Numbers as plain floats, with NaN and +/-inf turned into None."""
    if type(value) is float:  # the common case first: this runs for every rating
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        number = float(value)
        return number if math.isfinite(number) else None
    return value


def _clean(value: Any) -> Any:
    """Recursively JSON-safe: tuples to lists, non-finite numbers to None."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return _finite(value)
