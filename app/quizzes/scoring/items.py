"""Item analysis of an exercise's cases from per-attempt, per-case scores, with the
definitions of Moodle's quiz statistics report (question/classes/statistics/questions/
calculator.php and mod/quiz/report/statistics): facility index, discrimination index,
discriminative efficiency, and the test's coefficient of internal consistency with its
standard error.

The input is a matrix with one row per attempt and one column per case (1 right, 0 wrong;
partial credit between). A case's score is compared with the score on the REST of the
exercise (the total without that case): with the case inside the total, a case correlates
with itself, which props up a bad case's figure (see tests/test_item_analysis.py for a case
at +0.06 uncorrected that is negative once corrected).

Pure: numpy and the standard library only, no Flask and no database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # numpy is imported where it is used: the quiz pages load this module
    import numpy as np
    from numpy.typing import ArrayLike, NDArray

# With two attempts every correlation is +1 or -1 whatever the cases are like: a figure
# needs at least three to say anything (and many more to say it reliably).
MIN_ATTEMPTS = 3
# Below this corrected discrimination a case is flagged for review; below zero the trainees
# who do well on the rest of the exercise do worse on this case, which usually means a
# reference read keyed wrong, a misleading image or an ambiguous case.
REVIEW_BELOW = 0.2
# A variance below this is no variance (scores are counts of cases; rounding noise only).
_NO_SPREAD = 1e-12

Flag = Literal["negative", "review"]


@dataclass(frozen=True)
class CaseAnalysis:
    """The statistics of one case (one column of the score matrix)."""

    attempts: int
    facility: float | None  # mean score: the share right for 0/1 scores
    sd: float | None  # standard deviation of the case's score
    discrimination: float | None  # Pearson's r of the case's score with the rest's score
    efficiency: float | None  # covariance with the rest over the largest one possible
    note: str | None = None  # why a figure above is missing

    @property
    def flag(self) -> Flag | None:
        if self.discrimination is None:
            return None
        if self.discrimination < 0:
            return "negative"
        if self.discrimination < REVIEW_BELOW:
            return "review"
        return None


@dataclass(frozen=True)
class TotalAnalysis:
    """The statistics of the exercise's total score (the number of cases right)."""

    attempts: int
    cases: int
    mean: float | None  # mean total, in cases
    sd: float | None  # standard deviation of the total, in cases
    alpha: float | None  # Cronbach's alpha (KR-20 when every score is 0 or 1)
    dichotomous: bool  # every score is 0 or 1: alpha is then the KR-20
    sem: float | None  # standard error of measurement, sd * sqrt(1 - alpha), in cases
    note: str | None = None  # why alpha (and the standard error) is missing


@dataclass(frozen=True)
class ItemAnalysis:
    total: TotalAnalysis
    cases: tuple[CaseAnalysis, ...]


def case_set_key(case_ids: Iterable[int]) -> str:
    """A short name for a set of cases: attempts at the same cases share it, so that their
    compact scores line up column by column."""
    text = ",".join(str(case_id) for case_id in sorted(set(case_ids)))
    return hashlib.blake2s(text.encode("ascii"), digest_size=8).hexdigest()


def compact_scores(stored: Mapping[str, float | None]) -> tuple[str, str | None]:
    """(case set key, scores) of one ended attempt's stored per-case scores ({case id as
    text: 1, 0 or None}): one character per case in ascending case id, "1" right and "0"
    wrong. None is a case left unanswered, which counts as wrong in an ended attempt.

    Stored beside the attempt, these let the statistics read every attempt of an exercise
    as one string (see results.exercise_statistics) instead of parsing each attempt's
    stored metrics. Scores that are not right/wrong (partial credit, should scoring ever
    store it) have no compact form: None, and the attempt is left out of the statistics
    and counted as such, rather than failing the attempt's submission."""
    ids = sorted(int(case_id) for case_id in stored)
    if any(stored[str(case_id)] not in (0, 1, None) for case_id in ids):
        return case_set_key(ids), None
    return case_set_key(ids), "".join("1" if stored[str(c)] == 1 else "0" for c in ids)


def score_matrix(scores: str, cases: int) -> NDArray[np.float64]:
    """The score matrix (one row per attempt, columns in ascending case id) of compact
    scores laid end to end."""
    import numpy as np
    if cases == 0 and not scores:  # an exercise without cases: nothing to analyse
        return np.zeros((0, 0))
    if cases <= 0 or len(scores) % cases or set(scores) - {"0", "1"}:
        raise ValueError(f"{len(scores)} characters of 0/1 do not make rows of {cases} cases")
    digits = np.frombuffer(scores.encode("ascii"), dtype=np.uint8) - ord("0")
    return digits.reshape(-1, cases).astype(np.float64)


def _not_enough(reason: str) -> str:
    return f"not enough data: {reason}"


def analyse(scores: ArrayLike) -> ItemAnalysis:
    """The item analysis of a score matrix (rows: attempts, columns: cases; each score
    between 0 and 1, partial credit allowed). Every figure that the data cannot define (too
    few attempts, a case or a rest of the exercise on which every attempt scored the same)
    is None with a note saying why, never NaN."""
    import numpy as np
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError("scores must be a matrix: one row per attempt, one column per case")
    if not np.isfinite(x).all():
        raise ValueError("scores must be finite numbers (an unanswered case scores 0)")
    if ((x < 0) | (x > 1)).any():
        raise ValueError("each case's score is between 0 (wrong) and 1 (right)")
    return ItemAnalysis(_total(x), _cases(x))


@dataclass(frozen=True)
class _Moments:
    """Every case's moments at once (column-wise numpy, no per-attempt Python loop and no
    BLAS call, which is slow to start on a busy server for one-off products)."""

    var_item: NDArray[np.float64]
    var_rest: NDArray[np.float64]
    covariance: NDArray[np.float64]
    covariance_max: NDArray[np.float64]


def _sorted_columns(a: NDArray[np.float64]) -> NDArray[np.float64]:
    """Each column of ``a`` sorted, as the rows of the result. Whole-number scores (right
    or wrong cases, and their rest-of-exercise counts) sort as 16-bit integers, which numpy
    radix-sorts about ten times faster than floats: it matters at 50,000 attempts."""
    import numpy as np
    if a.size and np.array_equal(a, np.round(a)) and np.abs(a).max() < 2**15:
        return np.sort(a.T.astype(np.int16), axis=1, kind="stable").astype(np.float64)
    return np.sort(a.T, axis=1)


def _moments(x: NDArray[np.float64]) -> _Moments:
    n = x.shape[0]
    rest = x.sum(axis=1, keepdims=True) - x  # each case's score on the rest of the exercise
    mean_item, mean_rest = x.mean(axis=0), rest.mean(axis=0)
    d_item, d_rest = x - mean_item, rest - mean_rest
    # The largest covariance these two sets of scores can have: pair them in rank order
    # (the rearrangement inequality), as Moodle pairs its sorted mark arrays.
    sorted_pairs = ((_sorted_columns(x) - mean_item[:, None])
                    * (_sorted_columns(rest) - mean_rest[:, None]))
    return _Moments((d_item * d_item).sum(axis=0) / (n - 1),
                    (d_rest * d_rest).sum(axis=0) / (n - 1),
                    (d_item * d_rest).sum(axis=0) / (n - 1),
                    sorted_pairs.sum(axis=1) / (n - 1))


def _cases(x: NDArray[np.float64]) -> tuple[CaseAnalysis, ...]:
    n, k = x.shape
    if n == 0:
        return tuple(CaseAnalysis(0, None, None, None, None, _not_enough("no ended attempts"))
                     for _ in range(k))
    facilities = x.mean(axis=0)
    if n < MIN_ATTEMPTS:
        return tuple(CaseAnalysis(n, float(f), None, None, None,
                                  _not_enough(f"fewer than {MIN_ATTEMPTS} attempts"))
                     for f in facilities)
    m = _moments(x)
    return tuple(_case(n, k, float(facilities[j]), float(m.var_item[j]), float(m.var_rest[j]),
                       float(m.covariance[j]), float(m.covariance_max[j])) for j in range(k))


def _case(n: int, k: int, facility: float, var_item: float, var_rest: float,
          covariance: float, covariance_max: float) -> CaseAnalysis:
    import numpy as np
    sd = float(np.sqrt(var_item))
    if var_item <= _NO_SPREAD:
        everyone = ("right" if facility == 1 else "wrong (or left it blank)"
                    if facility == 0 else "the same")
        return CaseAnalysis(n, facility, sd, None, None,
                            _not_enough(f"every attempt got this case {everyone}"))
    if k == 1:
        return CaseAnalysis(n, facility, sd, None, None,
                            _not_enough("the exercise has no other case to compare with"))
    if var_rest <= _NO_SPREAD:
        return CaseAnalysis(n, facility, sd, None, None,
                            _not_enough("every attempt scored the same on the other cases"))
    r = covariance / float(np.sqrt(var_item * var_rest))
    return CaseAnalysis(n, facility, sd, float(np.clip(r, -1.0, 1.0)),
                        covariance / covariance_max)


def _total(x: NDArray[np.float64]) -> TotalAnalysis:
    import numpy as np
    n, k = x.shape
    dichotomous = bool(np.isin(x, (0.0, 1.0)).all())
    if n == 0:
        return TotalAnalysis(0, k, None, None, None, dichotomous, None,
                            _not_enough("no ended attempts"))
    total = x.sum(axis=1)
    mean = float(total.mean())
    if n < MIN_ATTEMPTS:
        return TotalAnalysis(n, k, mean, None, None, dichotomous, None,
                            _not_enough(f"fewer than {MIN_ATTEMPTS} attempts"))
    var_total = float(total.var(ddof=1))
    sd = float(np.sqrt(var_total))
    if k < 2:
        return TotalAnalysis(n, k, mean, sd, None, dichotomous, None,
                            _not_enough("internal consistency needs at least two cases"))
    if var_total <= _NO_SPREAD:
        return TotalAnalysis(n, k, mean, sd, None, dichotomous, None,
                            _not_enough("every attempt had the same total"))
    sum_item_variance = float(x.var(axis=0, ddof=1).sum())
    alpha = k / (k - 1) * (1 - sum_item_variance / var_total)
    # Moodle's "standard error": the spread of a trainee's total around their true score.
    # Alpha can be negative (cases that pull against each other); the formula still holds.
    sem = sd * float(np.sqrt(1 - alpha))
    return TotalAnalysis(n, k, mean, sd, alpha, dichotomous, sem)
