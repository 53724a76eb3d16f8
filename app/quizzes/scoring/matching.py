"""Crediting marks to lesions: a maximum matching, not a greedy pass.

Each mark is credited to at most one lesion and each lesion at most once. Among all such
assignments we take the one that credits the most lesions and, among those, has the
highest total mark rating (RJafroc keeps one rating per lesion: the crediting mark's).

Solved with scipy's ``linear_sum_assignment`` on weights ``rating - lowest + 1`` for the
allowed (mark, lesion) pairs and 0 elsewhere. The weights depend on the mark only, so the
credited marks are a maximum-weight basis of a transversal matroid: with every weight
positive, such a basis has the most lesions possible, and its total (shifted) weight is
largest exactly when its total rating is. Ties are broken by a canonical order of the marks
and lesions given by the caller (by content, not by storage order), so permuting the marks
or the reference lesions never changes the result.
"""

from __future__ import annotations

from collections.abc import Sequence


def credit_marks(
    ratings: Sequence[float],
    allowed: Sequence[Sequence[bool]],
    mark_order: Sequence[int],
    lesion_order: Sequence[int],
) -> dict[int, int]:
    """{lesion index: mark index} of the credited pairs.

    ``allowed[i][j]``: mark i may localise lesion j (same image, inside it, matching
    finding). ``mark_order`` / ``lesion_order``: every index once, in the canonical order
    that breaks ties (earlier wins)."""
    import numpy as np
    rows = [i for i in mark_order if any(allowed[i])]
    if not rows:
        return {}
    columns = [j for j in lesion_order if any(allowed[i][j] for i in rows)]
    if len(rows) == 1 or len(columns) == 1:
        # One mark, or one lesion: the best single pair (the common case, kept fast).
        if len(rows) == 1:
            return {next(j for j in columns if allowed[rows[0]][j]): rows[0]}
        best = max((i for i in rows if allowed[i][columns[0]]), key=lambda i: ratings[i])
        # max() keeps the first of equal ratings: the canonical order breaks the tie.
        return {columns[0]: best}
    lowest = min(float(ratings[i]) for i in rows)
    weights = np.zeros((len(rows), len(columns)))
    for a, i in enumerate(rows):
        for b, j in enumerate(columns):
            if allowed[i][j]:
                weights[a, b] = float(ratings[i]) - lowest + 1.0
    # Imported here: scipy.optimize costs every process start (commands, web workers) ~0.3 s,
    # and most scoring never gets past the one-pair case above.
    from scipy.optimize import linear_sum_assignment  # type: ignore[import-untyped]

    chosen_rows, chosen_columns = linear_sum_assignment(weights, maximize=True)
    return {
        columns[b]: rows[a]
        for a, b in zip(chosen_rows.tolist(), chosen_columns.tolist(), strict=True)
        if weights[a, b] > 0
    }
