"""ROC analysis of the TB likelihood: AUC by Wilcoxon-Mann-Whitney (ties count 1/2) and its
95 % CI by DeLong's variance (fast midrank algorithm of Sun & Xu 2014) with the normal
approximation, clipped to [0, 1], as pROC's ``ci.auc(method = "delong")`` does.

A case without a usable rating (not answered) takes the worst rating (``worst_rating``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where it is used: the quiz pages load this module
    import numpy as np

from app.quizzes.scoring.decision import Z95


def worst_rating(tb_positive: bool, scale: tuple[float, float]) -> float:
    """The rating that is most wrong: the lowest of the scale on a TB-suggestive case, the
    highest on any other (a missing rating can never do better than a given one)."""
    return float(scale[0] if tb_positive else scale[1])


def _midranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given the mean of their ranks."""
    import numpy as np
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse]


def _split(truth: Sequence[bool], ratings: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np
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
    import numpy as np
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
    import numpy as np
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
