"""Lesion localisation: is each trainee mark on a reference lesion (LL) or not (NL)?

A mark is judged by its centre (``mark_position``). It may localise a lesion when it is on
the lesion's image, its centre lies inside one of the lesion's outlines, and its finding is
the same as, or declared compatible with, the finding of one of the outlines. Marks are
then credited to lesions by a maximum matching (matching.py); a mark left over is an NL.

**FROC ratings are on one scale, 0-100** (``MARK_RATING_SCALE``), the scale of a mark's
confidence. A mark without a confidence takes the read's TB likelihood converted to that
scale (``likelihood_to_mark_rating``: the scale's lowest value is 0 and its highest 100),
and a mark with neither takes the middle, 50. So ratings of different cases compare in
AFROC/wAFROC whichever way the trainee gave them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.quizzes.scoring.geometry import in_region, region_centre
from app.quizzes.scoring.inputs import CaseRead, CaseTruth, Lesion, Mark
from app.quizzes.scoring.jsonsafe import finite
from app.quizzes.scoring.matching import credit_marks

#: The FROC rating scale: a mark's confidence.
MARK_RATING_SCALE = (0.0, 100.0)

#: The rating of a mark given no confidence on a read without a likelihood.
MID_MARK_RATING = 50.0

# Reasons a mark is a non-lesion localisation, in the order they are tested.
NL_BLANK = "the read is not answered: its marks are not scored"
NL_OTHER_IMAGE = "no reference lesion on this image"
NL_OUTSIDE = "outside every reference lesion"
NL_FINDING = "the finding does not match the lesion it lies in"
NL_TAKEN = "the lesion was credited to another mark (each lesion counts once)"

Compatible = Mapping[str, Iterable[str]]


def findings_match(mark_finding: str, lesion_finding: str, compatible: Compatible | None) -> bool:
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


def mark_position(mark: Mark) -> tuple[float, float]:
    """The point a mark is judged by: the point itself, or the centre of its shape."""
    return region_centre(mark.shape, mark.geometry)


def point_in_lesion(lesion: Lesion, x: float, y: float) -> bool:
    """Is (x, y) inside any outline of the lesion? The boundary counts as inside."""
    if in_region(lesion.shape, lesion.geometry, x, y, lesion.point_radius):
        return True
    return any(in_region(o.shape, o.geometry, x, y, lesion.point_radius) for o in lesion.members)


def lesion_accepts(lesion: Lesion, finding: str, compatible: Compatible | None) -> bool:
    """Does a mark of ``finding`` match the finding of one of the lesion's outlines?"""
    if findings_match(finding, lesion.finding, compatible):
        return True
    return any(findings_match(finding, o.finding, compatible) for o in lesion.members)


def likelihood_to_mark_rating(value: float, low: float, high: float) -> float:
    """A TB likelihood on the scheme's scale [low, high] as a mark rating on 0-100:
    linear, low -> 0 and high -> 100; a value off the scale is clipped to it."""
    if not (math.isfinite(value) and math.isfinite(low) and math.isfinite(high)):
        raise ValueError("the likelihood and its scale must be finite numbers")
    if high <= low:
        raise ValueError("the likelihood scale needs low < high")
    top = MARK_RATING_SCALE[1]
    return min(top, max(MARK_RATING_SCALE[0], top * (value - low) / (high - low)))


def mark_rating(
    mark: Mark, read: CaseRead, rating_scale: tuple[float, float] | None = None
) -> float:
    """A mark's FROC rating on 0-100: its confidence, else the read's likelihood converted
    from ``rating_scale`` (the scheme's likelihood scale), else the middle of the scale."""
    if mark.confidence is not None:
        return float(mark.confidence)
    if read.rating is not None and rating_scale is not None and math.isfinite(read.rating):
        return likelihood_to_mark_rating(read.rating, *rating_scale)
    return MID_MARK_RATING


def lesion_weights(lesions: Sequence[Lesion]) -> list[float]:
    """wAFROC weights of one case, summing to 1 (equal unless every lesion has a weight
    >= 0 and they do not sum to 0; given weights are rescaled to sum to 1)."""
    if not lesions:
        return []
    given = [lesion.weight for lesion in lesions]
    if all(w is not None and w >= 0 for w in given):
        total = float(sum(w for w in given if w is not None))
        if total > 0:
            return [float(w) / total for w in given if w is not None]
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
            "rating": finite(self.rating),
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
    outlines: tuple[str | None, ...] = ()  # the sources of the lesion's outlines

    def to_json(self) -> dict[str, Any]:
        return {
            "lesion_id": self.lesion_id,
            "image_id": self.image_id,
            "finding": self.finding,
            "weight": finite(self.weight),
            "hit": self.hit,
            "mark_index": self.mark_index,
            "rating": finite(self.rating),
            "outlines": list(self.outlines),
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
    truth: CaseTruth,
    read: CaseRead,
    compatible: Compatible | None = None,
    *,
    rating_scale: tuple[float, float] | None = None,
) -> Localisation:
    """Classify each mark as lesion localisation (LL) or non-lesion localisation (NL) and
    each lesion as found or missed, crediting by a maximum matching (matching.py). A mark
    that could localise a lesion credited to another mark is an NL with that reason
    (RJafroc keeps one rating per lesion; the trainee sees the others as NLs)."""
    lesions, marks = truth.lesions, read.marks
    if not lesions and not marks:
        return _NOTHING  # most normal cases: nothing to place (and scoring stays fast)
    ratings = [mark_rating(m, read, rating_scale) for m in marks]
    reasons: list[str | None] = []
    allowed: list[list[bool]] = []
    for mark in marks:
        reason, row = _candidates(mark, lesions, compatible)
        reasons.append(reason)
        allowed.append(row)
    candidates = [i for i, reason in enumerate(reasons) if reason is None]
    credited: dict[int, int] = {}
    if len(candidates) == 1 and sum(allowed[candidates[0]]) == 1:
        credited = {allowed[candidates[0]].index(True): candidates[0]}  # no choice to make
    elif candidates:
        involved = [j for j in range(len(lesions)) if any(allowed[i][j] for i in candidates)]
        credited = credit_marks(
            ratings,
            allowed,
            sorted(candidates, key=lambda i: (-ratings[i], _mark_key(marks[i]))),
            sorted(involved, key=lambda j: _lesion_key(lesions[j])),
        )
    lesion_of = {i: j for j, i in credited.items()}
    outcomes = tuple(
        MarkOutcome(i, "LL", ratings[i], lesions[lesion_of[i]].id)
        if i in lesion_of
        else MarkOutcome(i, "NL", ratings[i], None, reasons[i] or NL_TAKEN)
        for i in range(len(marks))
    )
    return Localisation(outcomes, _lesion_outcomes(lesions, credited, ratings))


def unscored_localisation(
    truth: CaseTruth, read: CaseRead, rating_scale: tuple[float, float] | None = None
) -> Localisation:
    """A blank read's localisation: every lesion missed, every mark an NL (NL_BLANK)."""
    if not truth.lesions and not read.marks:
        return _NOTHING
    marks = tuple(
        MarkOutcome(i, "NL", mark_rating(m, read, rating_scale), None, NL_BLANK)
        for i, m in enumerate(read.marks)
    )
    return Localisation(marks, _lesion_outcomes(truth.lesions, {}, []))


def _lesion_outcomes(
    lesions: Sequence[Lesion], credited: Mapping[int, int], ratings: Sequence[float]
) -> tuple[LesionOutcome, ...]:
    weights = lesion_weights(lesions)
    return tuple(
        LesionOutcome(
            lesion.id,
            lesion.image_id,
            lesion.finding,
            weights[j],
            j in credited,
            credited.get(j),
            ratings[credited[j]] if j in credited else None,
            (lesion.id, *(o.source for o in lesion.members)),
        )
        for j, lesion in enumerate(lesions)
    )


def _candidates(
    mark: Mark, lesions: Sequence[Lesion], compatible: Compatible | None
) -> tuple[str | None, list[bool]]:
    """(why the mark can localise nothing, or None; which lesions it may localise)."""
    row = [False] * len(lesions)
    on_image = inside = False
    x = y = 0.0
    for j, lesion in enumerate(lesions):
        if lesion.image_id != mark.image_id:
            continue
        if not on_image:
            on_image = True
            x, y = mark_position(mark)
        if not point_in_lesion(lesion, x, y):
            continue
        inside = True
        row[j] = lesion_accepts(lesion, mark.finding, compatible)
    if any(row):
        return None, row
    return (NL_FINDING if inside else NL_OUTSIDE if on_image else NL_OTHER_IMAGE), row


# Canonical orders break ties in the matching: marks by highest rating, then by content;
# lesions by content, id last. Never by the order the marks or reference marks were stored.


def _mark_key(mark: Mark) -> tuple[Any, ...]:
    return (mark.image_id, mark.finding, mark.shape, _geometry_key(mark.geometry))


def _lesion_key(lesion: Lesion) -> tuple[Any, ...]:
    members = tuple((o.finding, o.shape, _geometry_key(o.geometry)) for o in lesion.members)
    weight = -1.0 if lesion.weight is None else float(lesion.weight)
    return (lesion.image_id, lesion.finding, lesion.shape, _geometry_key(lesion.geometry),
            weight, members, lesion.id)


def _geometry_key(geometry: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(
        (key, tuple(tuple(float(c) for c in p) for p in value) if key == "points" else value)
        for key, value in sorted(geometry.items())
    )
