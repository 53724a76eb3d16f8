"""AFROC and wAFROC figures of merit as RJafroc defines them (``src/MyFOM.cpp``).

wAFROC theta = (1/K1K2) sum_k1 sum_k2 sum_l W_k2l psi(max NL on normal case k1, rating of
lesion l on abnormal case k2); AFROC divides by K1 x (total lesions) with unit weights. An
unmarked lesion rates -inf, a normal case without marks has max NL -inf, and -inf vs -inf
counts 1/2. psi(x, y) = 1 if y > x, 1/2 if equal, 0 otherwise. Ratings are on the 0-100
mark scale (localisation.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def _fom(
    nl_normal: Sequence[Sequence[float | None]],
    ll: Sequence[Sequence[float | None]],
    weights: Sequence[Sequence[float]] | None,
    weighted: bool,
) -> float | None:
    """Shared core of AFROC and wAFROC.

    For each lesion rating y: sum over normal cases of psi(FP_k1, y) = #(FP < y) +
    #(FP == y) / 2, counted on the sorted FP vector with two binary searches."""
    import numpy as np
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
