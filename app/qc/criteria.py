"""A programme's ongoing QC criterion and a reader's QC error profile.

Pure module (no Flask, no database). The criterion reads "major-discrepancy rate <= x over
the last n QC reads, at least m of them": a reader with fewer than m QC reads has not
enough reads to judge; otherwise the rate over their last n reads (all of them when they
have fewer) is either within the criterion or outside it.

The error profile says which findings a reader's live reads differ on from the QC
radiologist's: per finding of the scheme's findings item (the item its lesion marks are
labelled from, the one the case library's findings come from), how many times the QC read
has it and the primary read does not (missed), and the other way round (over-called).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from app.qc.measures import MAJOR_GRADES, QcRead, chronological, discrepancy_rate
from app.schemes.parts import Scheme

NOT_ENOUGH = "not_enough"
MET = "met"
OUTSIDE = "outside"
OUTCOMES = (NOT_ENOUGH, MET, OUTSIDE)


@dataclass(frozen=True)
class Criterion:
    """``max_rate`` a fraction (0.05 for 5 %), ``last_n`` and ``min_reads`` counts."""

    max_rate: float
    last_n: int
    min_reads: int

    def __post_init__(self) -> None:
        if not 0 < self.max_rate < 1:
            raise ValueError("max_rate must be between 0 and 1")
        if not 1 <= self.min_reads <= self.last_n:
            raise ValueError("min_reads must be from 1 to last_n")


@dataclass(frozen=True)
class CriterionResult:
    outcome: str  # NOT_ENOUGH, MET or OUTSIDE
    n: int  # the reads judged (the last ``last_n``)
    major: int  # of them, major discrepancies
    rate: float | None
    ci: tuple[float, float] | None  # Wilson 95 % interval of the rate
    max_rate: float
    last_n: int
    min_reads: int

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ci"] = list(self.ci) if self.ci else None
        return data


def evaluate(reads: Iterable[QcRead], criterion: Criterion,
             major_grades: frozenset[str] = MAJOR_GRADES) -> CriterionResult:
    """The criterion's outcome for one reader's QC reads (any order: the latest
    ``last_n`` by read date are judged)."""
    window = chronological(reads)[-criterion.last_n:]
    proportion = discrepancy_rate(window, major_grades)
    if len(window) < criterion.min_reads:
        outcome = NOT_ENOUGH
    # Compared in counts, so that 1 in 20 at a 5 % maximum is within it despite rounding.
    elif proportion.successes <= criterion.max_rate * len(window) + 1e-9:
        outcome = MET
    else:
        outcome = OUTSIDE
    return CriterionResult(outcome, len(window), proportion.successes, proportion.value,
                           proportion.ci, criterion.max_rate, criterion.last_n,
                           criterion.min_reads)


# ---- error profile --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReadPair:
    """One QC record's two reads, keyed by scheme item, and the scheme they follow."""

    scheme_key: str
    scheme_version: int
    primary: dict[str, Any]
    qc: dict[str, Any]


@dataclass(frozen=True)
class FindingErrors:
    finding: str  # the option's value (as the case library names findings)
    label: str  # its English label ("" when no scheme names it)
    missed: int
    over_called: int

    @property
    def total(self) -> int:
        return self.missed + self.over_called


def findings_item(scheme: Scheme) -> str | None:
    """The scheme's findings item: the one its lesion marks are labelled from."""
    key = scheme.definition.get("mark_labels")
    return key if isinstance(key, str) else None


def _values(answer: Any) -> set[str]:
    if isinstance(answer, list):
        return {str(v) for v in answer}
    return {str(answer)} if answer not in (None, "") else set()


def error_profile(pairs: Iterable[ReadPair],
                  schemes: dict[tuple[str, int], Scheme | None]) -> list[FindingErrors]:
    """Per finding, how often the reader missed it and over-called it; the most frequent
    errors first (then most missed, then by name). Findings without errors are left out;
    a record whose scheme is unknown or has no findings item counts for nothing."""
    missed: dict[str, int] = {}
    over: dict[str, int] = {}
    labels: dict[str, str] = {}
    for pair in pairs:
        scheme = schemes.get((pair.scheme_key, pair.scheme_version))
        item_key = findings_item(scheme) if scheme is not None else None
        if scheme is None or item_key is None:
            continue
        for option in scheme.item(item_key).options:
            labels.setdefault(option.value, option.label)
        primary = _values(pair.primary.get(item_key))
        qc = _values(pair.qc.get(item_key))
        for finding in qc - primary:
            missed[finding] = missed.get(finding, 0) + 1
        for finding in primary - qc:
            over[finding] = over.get(finding, 0) + 1
    rows = [FindingErrors(f, labels.get(f, ""), missed.get(f, 0), over.get(f, 0))
            for f in set(missed) | set(over)]
    return sorted(rows, key=lambda r: (-r.total, -r.missed, r.finding))


def profile_to_json(rows: Sequence[FindingErrors]) -> list[dict[str, Any]]:
    return [{"finding": r.finding, "label": r.label, "missed": r.missed,
             "over_called": r.over_called} for r in rows]


def profile_from_json(data: Sequence[dict[str, Any]]) -> list[FindingErrors]:
    return [FindingErrors(str(d["finding"]), str(d.get("label") or ""), int(d["missed"]),
                          int(d["over_called"])) for d in data]
