"""QC concordance measures: how a reader's live reads compare with the QC centre's re-reads.

Pure module (no Flask, no database): every function takes plain records (``QcRead``) or
counts, so pages, the API, exports and flags compute the same figures. It reuses the
exercise scoring where the definition is the same: Cohen's kappa and PABAK
(``scoring.agreement``), the decision outcome where a blank counts as wrong and Wilson
intervals (``scoring.decision``). What only live QC needs is here:

* a **confidence interval for kappa**: the large-sample standard error of Fleiss, Cohen &
  Everitt (1969), the one statsmodels' ``cohens_kappa`` and Stata's ``kap`` report;
* a **CI for PABAK**: PABAK = 2 po - 1 is a straight function of the observed agreement po,
  so its interval is the Wilson interval of po mapped through it (exact mapping, stays in
  [-1, 1]);
* the **major-discrepancy rate** (RADPEER 3b-style: a major discrepancy that changes the
  sputum decision) with a Wilson interval; ``MAJOR_GRADES`` says which grades count;
* **sensitivity/specificity** of the primary read with the QC read taken as the reference;
* a **Bernoulli CUSUM** per reader against a target rate and **funnel-plot limits**
  (``app.qc.control``; ``reader_cusum`` and ``funnel`` below apply them to
  records).

Degenerate cases follow the scoring package: a figure that is not defined is None, never
NaN (no reads; kappa when chance agreement is 1; a proportion with a zero denominator).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from app.qc.control import (
    DEFAULT_IN_CONTROL_ARL,
    DEFAULT_ODDS_RATIO,
    CusumChart,
    FunnelPoint,
    bernoulli_cusum,
    design_cusum,
    funnel_points,
)
from app.quizzes.scoring.agreement import cohen_kappa, pabak
from app.quizzes.scoring.decision import Z95, decision_outcome, wilson_interval

#: The discrepancy grades a QC radiologist gives (DOMAIN.md): 1 concur, 2 minor, 3 major;
#: b = clinically significant (the read changes the sputum decision), a otherwise.
QC_GRADES = ("1", "2a", "2b", "3a", "3b")
#: What the major-discrepancy rate counts by default: RADPEER's 3b, a major discrepancy
#: that changes the sputum decision. A programme that counts every major one passes
#: ``frozenset({"3a", "3b"})``.
MAJOR_GRADES: frozenset[str] = frozenset({"3b"})
#: Grades whose sputum decision differs from the QC read's (the letter b).
SIGNIFICANT_GRADES: frozenset[str] = frozenset({"2b", "3b"})

Interval = tuple[float, float]


@dataclass(frozen=True)
class QcRead:
    """One live read re-read by the QC centre, as the measures see it. ``reader``,
    ``clinic`` and ``country`` are whatever keys the caller groups by (ids, codes)."""

    reader: Hashable
    clinic: Hashable
    country: str
    read_date: date
    primary_tb: bool | None  # the reader's sputum decision (None: not given)
    qc_tb: bool | None  # the QC radiologist's (the reference)
    grade: str
    order: int = 0  # breaks ties between reads of one day (e.g. the record id)


@dataclass(frozen=True)
class Proportion:
    successes: int
    n: int
    value: float | None
    ci: Interval | None

    @classmethod
    def of(cls, successes: int, n: int, z: float = Z95) -> Proportion:
        return cls(successes, n, successes / n if n else None, wilson_interval(successes, n, z))


@dataclass(frozen=True)
class Agreement:
    """Agreement on the sputum decision between the primary read and the QC read."""

    n: int
    observed: float | None  # po
    kappa: float | None
    kappa_se: float | None
    kappa_ci: Interval | None
    pabak: float | None
    pabak_ci: Interval | None


@dataclass(frozen=True)
class QcSummary:
    n: int
    first_date: date | None
    last_date: date | None
    grades: dict[str, int]
    major: Proportion  # MAJOR_GRADES (3b by default)
    significant: Proportion  # 2b or 3b: the sputum decision changed
    agreement: Agreement
    sensitivity: Proportion  # of the primary read, the QC read as the reference
    specificity: Proportion
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("first_date", "last_date"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


# ---- agreement ----------------------------------------------------------------------------


def kappa_standard_error(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Large-sample standard error of Cohen's kappa (Fleiss, Cohen & Everitt 1969, eq. 13):

    var = [sum_i p_ii ((1 - pe) - (p_i. + p_.i)(1 - po))^2
           + (1 - po)^2 sum_{i != j} p_ij (p_.i + p_j.)^2
           - (po pe - 2 pe + po)^2] / (n (1 - pe)^4)

    It is the standard error under the observed agreement (not under kappa = 0), the one a
    confidence interval needs. None where kappa is not defined (no pairs, pe = 1)."""
    if len(a) != len(b):
        raise ValueError("the two ratings differ in length")
    n = len(a)
    if n == 0:
        return None
    labels = sorted(set(a) | set(b), key=repr)
    cells = Counter(zip(a, b, strict=True))
    p = {(i, j): cells[(i, j)] / n for i in labels for j in labels}
    row = {i: sum(p[(i, j)] for j in labels) for i in labels}  # first rater (a)
    col = {j: sum(p[(i, j)] for i in labels) for j in labels}  # second rater (b)
    po = sum(p[(i, i)] for i in labels)
    pe = sum(row[i] * col[i] for i in labels)
    if 1 - pe <= 1e-12:
        return None
    diagonal = sum(p[(i, i)] * ((1 - pe) - (row[i] + col[i]) * (1 - po)) ** 2 for i in labels)
    off = (1 - po) ** 2 * sum(
        p[(i, j)] * (col[i] + row[j]) ** 2 for i in labels for j in labels if i != j)
    variance = (diagonal + off - (po * pe - 2 * pe + po) ** 2) / (n * (1 - pe) ** 4)
    return math.sqrt(max(variance, 0.0))


def decision_agreement(pairs: Sequence[tuple[bool, bool]], z: float = Z95) -> Agreement:
    """Kappa and PABAK (with CIs) of (primary, QC) sputum decisions. Kappa's interval is
    kappa +/- z SE, clipped to [-1, 1]; PABAK's is the Wilson interval of po mapped by
    2 po - 1 (PABAK is that function of po, so the mapping is exact)."""
    n = len(pairs)
    if n == 0:
        return Agreement(0, None, None, None, None, None, None)
    first = [p for p, _ in pairs]
    second = [q for _, q in pairs]
    agreed = sum(1 for p, q in pairs if p == q)
    kappa = cohen_kappa(first, second)
    se = kappa_standard_error(first, second) if kappa is not None else None
    kappa_ci = (None if kappa is None or se is None
                else (max(-1.0, kappa - z * se), min(1.0, kappa + z * se)))
    po_ci = wilson_interval(agreed, n, z)
    return Agreement(
        n=n, observed=agreed / n, kappa=kappa, kappa_se=se, kappa_ci=kappa_ci,
        pabak=pabak(first, second),
        pabak_ci=(2 * po_ci[0] - 1, 2 * po_ci[1] - 1) if po_ci else None,
    )


# ---- rates --------------------------------------------------------------------------------


def grade_counts(reads: Iterable[QcRead]) -> dict[str, int]:
    counts = dict.fromkeys(QC_GRADES, 0)
    for read in reads:
        counts[read.grade] = counts.get(read.grade, 0) + 1
    return counts


def discrepancy_rate(reads: Sequence[QcRead], grades: frozenset[str] = MAJOR_GRADES,
                     z: float = Z95) -> Proportion:
    """Share of reads graded in ``grades`` (default: 3b), with its Wilson interval."""
    return Proportion.of(sum(1 for r in reads if r.grade in grades), len(reads), z)


def sensitivity_specificity(reads: Sequence[QcRead],
                            z: float = Z95) -> tuple[Proportion, Proportion]:
    """Sensitivity and specificity of the primary sputum decision with the QC read as the
    reference. Reads without a QC decision are left out; a primary read without one counts
    as wrong (a missed TB read, a needless sputum test), as in every exercise measure."""
    tally = Counter(decision_outcome(r.qc_tb, r.primary_tb) for r in reads if r.qc_tb is not None)
    return (Proportion.of(tally["TP"], tally["TP"] + tally["FN"], z),
            Proportion.of(tally["TN"], tally["TN"] + tally["FP"], z))


def summarise(reads: Sequence[QcRead], major_grades: frozenset[str] = MAJOR_GRADES,
              z: float = Z95) -> QcSummary:
    """Every concordance figure of a set of QC reads (one reader's, one clinic's ...)."""
    notes: list[str] = []
    pairs = [(r.primary_tb, r.qc_tb) for r in reads
             if r.primary_tb is not None and r.qc_tb is not None]
    if len(pairs) < len(reads):
        notes.append(f"{len(reads) - len(pairs)} read(s) without both sputum decisions are "
                     "not in kappa and PABAK")
    agreement = decision_agreement(pairs, z)  # type: ignore[arg-type]
    if pairs and agreement.kappa is None:
        notes.append("kappa is not defined: both reads gave one and the same decision "
                     "throughout (chance agreement is 1)")
    if agreement.kappa_se == 0:
        notes.append("kappa's standard error is 0 (perfect agreement or one read): its "
                     "interval has no width and understates the uncertainty")
    sensitivity, specificity = sensitivity_specificity(reads, z)
    dates = [r.read_date for r in reads]
    return QcSummary(
        n=len(reads),
        first_date=min(dates) if dates else None,
        last_date=max(dates) if dates else None,
        grades=grade_counts(reads),
        major=discrepancy_rate(reads, major_grades, z),
        significant=discrepancy_rate(reads, SIGNIFICANT_GRADES, z),
        agreement=agreement,
        sensitivity=sensitivity,
        specificity=specificity,
        notes=tuple(notes),
    )


# ---- selection and grouping ---------------------------------------------------------------


def chronological(reads: Iterable[QcRead]) -> list[QcRead]:
    return sorted(reads, key=lambda r: (r.read_date, r.order))


def select_reads(reads: Iterable[QcRead], *, start: date | None = None,
                 end: date | None = None, last: int | None = None) -> list[QcRead]:
    """The reads of a period (read date from ``start`` to ``end``, both included), then the
    ``last`` N of them by read date; oldest first."""
    if last is not None and last < 1:
        raise ValueError("last must be at least 1")
    chosen = chronological(
        r for r in reads
        if (start is None or r.read_date >= start) and (end is None or r.read_date <= end))
    return chosen[-last:] if last is not None else chosen


KEYS: dict[str, Callable[[QcRead], Hashable]] = {
    "reader": lambda r: r.reader,
    "clinic": lambda r: r.clinic,
    "country": lambda r: r.country,
}


def group_reads(reads: Iterable[QcRead], by: str) -> dict[Hashable, list[QcRead]]:
    """Reads per reader, clinic or country, each list oldest first."""
    key = KEYS[by]
    groups: dict[Hashable, list[QcRead]] = {}
    for read in chronological(reads):
        groups.setdefault(key(read), []).append(read)
    return groups


def summaries_by(reads: Iterable[QcRead], by: str, *, start: date | None = None,
                 end: date | None = None, last: int | None = None,
                 major_grades: frozenset[str] = MAJOR_GRADES) -> dict[Hashable, QcSummary]:
    """``summarise`` per reader, clinic or country over a period and/or each group's last N
    reads (the last N of each reader, not of everyone together)."""
    return {
        key: summarise(select_reads(group, start=start, end=end, last=last), major_grades)
        for key, group in group_reads(reads, by).items()
    }


# ---- control charts ------------------------------------------------------------------------


def reader_cusum(reads: Iterable[QcRead], target: float,
                 odds_ratio: float = DEFAULT_ODDS_RATIO,
                 in_control_arl: float = DEFAULT_IN_CONTROL_ARL,
                 major_grades: frozenset[str] = MAJOR_GRADES) -> CusumChart:
    """One reader's CUSUM of discrepancies (``major_grades``) against the programme's
    target rate, oldest read first; the design (h, run lengths) is in ``chart.design``."""
    design = design_cusum(target, odds_ratio, in_control_arl)
    return bernoulli_cusum([r.grade in major_grades for r in chronological(reads)], design)


def funnel(reads: Iterable[QcRead], by: str, target: float | None = None,
           major_grades: frozenset[str] = MAJOR_GRADES) -> tuple[float | None, list[FunnelPoint]]:
    """Funnel points of each reader's, clinic's or country's discrepancy rate against its
    number of QC reads, with 95 % and 99.8 % limits around ``target`` (default: the pooled
    rate)."""
    counts = {key: (sum(1 for r in group if r.grade in major_grades), len(group))
              for key, group in group_reads(reads, by).items()}
    return funnel_points(counts, target)
