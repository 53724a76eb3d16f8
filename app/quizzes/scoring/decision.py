"""Decision metrics of the binary sputum decision and their confidence intervals.

Positive = TB-suggestive (sputum needed). Sensitivity TP/(TP+FN), specificity TN/(TN+FP),
PPV TP/(TP+FP), NPV TN/(TN+FN), accuracy (TP+TN)/n, each with a 95 % Wilson interval.
A blank decision is the wrong answer (``decision_outcome``): a false negative on a TB case,
a false positive on a normal one.
"""

from __future__ import annotations

import math

#: Two-sided 95 % standard normal quantile, qnorm(0.975).
Z95 = 1.959963984540054

OUTCOME = {(True, True): "TP", (False, True): "FP", (True, False): "FN", (False, False): "TN"}


def decision_outcome(reference: bool, trainee: bool | None) -> str:
    """TP, FP, FN or TN; a trainee decision of None (not answered) is the wrong answer."""
    answered = (not reference) if trainee is None else trainee
    return OUTCOME[(reference, answered)]


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
