"""Running sums per exercise and case, for the trainers' case statistics (difficulty and
discrimination) without reading every attempt.

Each ended attempt contributes, for each case it answered, x = 1 if the sputum decision was
right (0 if wrong) and y = the attempt's accuracy. The sums n, Σx, Σy, Σxy, Σy² are enough
for the share correct (Σx/n) and Pearson's r between x and y; they are added when an attempt
ends and corrected when it is re-scored, with an atomic upsert so that concurrent ends do not
lose counts. Reading them is one query of one row per case, however many attempts there are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.extensions import db
from app.quizzes.models import ENDED_STATES, Attempt, ExerciseCaseTally

SUMS = ("n", "sum_x", "sum_y", "sum_xy", "sum_yy")


def contributions(metrics: Mapping[str, Any] | None) -> dict[int, tuple[float, float]]:
    """{case id: (x, y)} of one attempt's stored scores; cases without a verdict, or an
    attempt without an accuracy, contribute nothing."""
    if not metrics:
        return {}
    y = (metrics.get("metrics") or {}).get("accuracy")
    if y is None:
        return {}
    return {int(case_id): (float(x), float(y))
            for case_id, x in (metrics.get("cases") or {}).items() if x is not None}


def _row(exercise_id: int, case_id: int, x: float, y: float, sign: int) -> dict[str, Any]:
    return {"exercise_id": exercise_id, "case_id": case_id, "n": sign, "sum_x": sign * x,
            "sum_y": sign * y, "sum_xy": sign * x * y, "sum_yy": sign * y * y}


def _add(rows: list[dict[str, Any]]) -> None:
    """Upsert the rows in case order. Each upsert locks its row until commit: in one order
    for every transaction, two attempts ending together wait for each other instead of
    each holding a row the other needs (PostgreSQL's "deadlock detected" when each took
    them in its own shuffled case order)."""
    if not rows:
        return
    rows = sorted(rows, key=lambda row: (row["exercise_id"], row["case_id"]))
    insert = pg_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    table = ExerciseCaseTally.__table__
    statement = insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=["exercise_id", "case_id"],
        set_={name: table.c[name] + statement.excluded[name] for name in SUMS},
    )
    db.session.execute(statement, rows)


def record_scores(attempt: Attempt, old_metrics: Mapping[str, Any] | None) -> None:
    """Replace the attempt's previous contribution (if it was scored before) by its current
    one. The caller commits."""
    rows = [_row(attempt.exercise_id, c, x, y, -1)
            for c, (x, y) in contributions(old_metrics).items()]
    rows += [_row(attempt.exercise_id, c, x, y, +1)
             for c, (x, y) in contributions(attempt.metrics).items()]
    # One row per case in one statement: merge the removal and the addition.
    merged: dict[int, dict[str, Any]] = {}
    for row in rows:
        into = merged.setdefault(row["case_id"], {**row, **dict.fromkeys(SUMS, 0)})
        for name in SUMS:
            into[name] += row[name]
    _add(list(merged.values()))


def rebuild(exercise_id: int) -> None:
    """Recompute an exercise's sums from the stored scores of its ended attempts (after a
    bulk import of attempts, say). The caller commits."""
    db.session.execute(delete(ExerciseCaseTally).where(
        ExerciseCaseTally.exercise_id == exercise_id))
    totals: dict[int, dict[str, Any]] = {}
    for stored in db.session.scalars(select(Attempt.metrics).where(
            Attempt.exercise_id == exercise_id, Attempt.state.in_(ENDED_STATES))):
        for case_id, (x, y) in contributions(stored).items():
            row = _row(exercise_id, case_id, x, y, +1)
            into = totals.setdefault(case_id, {**row, **dict.fromkeys(SUMS, 0)})
            for name in SUMS:
                into[name] += row[name]
    _add(list(totals.values()))


@dataclass(frozen=True)
class CaseTally:
    answered: int
    share_correct: float | None
    discrimination: float | None


def tally(row: ExerciseCaseTally | None) -> CaseTally:
    if row is None or row.n <= 0:
        return CaseTally(0, None, None)
    n, sx, sy, sxy, syy = row.n, row.sum_x, row.sum_y, row.sum_xy, row.sum_yy
    sxx = sx  # x is 0 or 1
    # Pearson's r from the sums; undefined with fewer than 3 attempts or no variation.
    var_x, var_y = n * sxx - sx * sx, n * syy - sy * sy
    discrimination = None
    if n >= 3 and var_x > 1e-9 and var_y > 1e-9:
        discrimination = max(-1.0, min(1.0, (n * sxy - sx * sy) / math.sqrt(var_x * var_y)))
    return CaseTally(n, sx / n, discrimination)


def tallies(exercise_id: int) -> dict[int, CaseTally]:
    rows = db.session.scalars(select(ExerciseCaseTally).where(
        ExerciseCaseTally.exercise_id == exercise_id))
    return {row.case_id: tally(row) for row in rows}
