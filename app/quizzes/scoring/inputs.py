"""What scoring takes in: the reference read of a case (``CaseTruth`` with its ``Lesion``s),
the trainee's read (``CaseRead`` with its ``Mark``s) and the pass ``Criterion``s. Frozen
dataclasses, built from stored JSON with ``from_dict``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.schemes.answers import MARK_SHAPES

#: Classification values that mean "normal" (both built-in radiologist schemes use it).
NORMAL_CLASSES: frozenset[str] = frozenset({"normal"})


def _check_shape(shape: str, geometry: Any, what: str) -> None:
    if shape not in MARK_SHAPES:
        raise ValueError(f"{what}: shape must be one of {', '.join(MARK_SHAPES)}")
    if not isinstance(geometry, Mapping):
        raise ValueError(f"{what}: geometry must be a mapping")


@dataclass(frozen=True, slots=True)
class Outline:
    """One expert's region of a lesion. ``source`` says where it came from (the index of
    the reference mark), so that the review can colour each expert's outline."""

    finding: str
    shape: str
    geometry: Mapping[str, Any]
    source: str | None = None

    def __post_init__(self) -> None:
        _check_shape(self.shape, self.geometry, "outline")

    def to_dict(self) -> dict[str, Any]:
        return {"finding": self.finding, "shape": self.shape, "geometry": dict(self.geometry),
                "source": self.source}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Outline:
        return cls(data["finding"], data["shape"], data["geometry"], data.get("source"))


@dataclass(frozen=True, slots=True)
class Lesion:
    """One reference lesion on one image: its region and finding label, plus the further
    outlines other experts drew of the same lesion (``members``, see consensus.py).

    ``weight`` is the lesion's clinical importance for wAFROC. The weights of a case are
    normalised to sum to 1; when any is None (or they sum to 0) all are equal.
    ``point_radius`` is the (x, y) radius in pixels within which a point outline counts
    as found: 10 mm on this image (``geometry.point_tolerance_px``)."""

    id: str
    image_id: int
    finding: str
    shape: str
    geometry: Mapping[str, Any]
    weight: float | None = None
    point_radius: tuple[float, float] | None = None
    members: tuple[Outline, ...] = ()

    def __post_init__(self) -> None:
        _check_shape(self.shape, self.geometry, f"lesion {self.id}")

    @property
    def outlines(self) -> tuple[Outline, ...]:
        """Every region of the lesion, its own first."""
        return (Outline(self.finding, self.shape, self.geometry, self.id), *self.members)

    @property
    def findings(self) -> frozenset[str]:
        return frozenset(outline.finding for outline in self.outlines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "image_id": self.image_id,
            "finding": self.finding,
            "shape": self.shape,
            "geometry": dict(self.geometry),
            "weight": self.weight,
            "point_radius": list(self.point_radius) if self.point_radius else None,
            "members": [outline.to_dict() for outline in self.members],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Lesion:
        radius = data.get("point_radius")
        return cls(
            id=str(data["id"]),
            image_id=int(data["image_id"]),
            finding=data["finding"],
            shape=data["shape"],
            geometry=data["geometry"],
            weight=data.get("weight"),
            point_radius=(float(radius[0]), float(radius[1])) if radius else None,
            members=tuple(Outline.from_dict(d) for d in data.get("members") or ()),
        )


@dataclass(frozen=True, slots=True)
class Mark:
    """One trainee mark, as ``validate_marks`` stores it plus the image it is on.
    ``confidence`` is on the 0-100 mark scale (localisation.MARK_RATING_SCALE)."""

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
    """The trainee's read of one case. None (or an empty collection) means not answered."""

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


def unanswered(truth: CaseTruth, read: CaseRead) -> bool:
    """Is the read blank: does it leave the case's question unanswered?

    The question is the sputum decision when the reference gives one, else the
    classification (a radiographer's overall grade), else the quality criteria. A blank
    read counts as wrong in every measure whatever else it holds: a likelihood, findings or
    marks without a decision earn nothing (otherwise skipping the hard part would pay)."""
    if truth.tb_positive is not None:
        return read.tb_positive is None
    if truth.classification is not None:
        return read.classification is None
    if truth.quality:
        return not read.quality
    return (read.tb_positive is None and read.classification is None and not read.findings
            and not read.quality)


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
