"""Agreement between the trainee and the reference: Cohen's kappa (po - pe)/(1 - pe), PABAK
2 po - 1, and weighted kappa (linear or quadratic) for ordinal answers. A missing answer is
the worst one (``worst_category``) before any of these is computed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence


def worst_category(reference: Hashable, labels: Sequence[Hashable]) -> Hashable:
    """The label farthest (by position on the ordered scale) from the reference answer;
    the lowest on a tie. A reference off the scale gets the first label."""
    if reference not in labels:
        return labels[0]
    here = list(labels).index(reference)
    far = max(range(len(labels)), key=lambda i: (abs(i - here), -i))
    return labels[far]


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
    import numpy as np
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
