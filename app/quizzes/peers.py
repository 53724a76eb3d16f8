"""Anonymous peer comparison per case: how other readers called a case.

An ended attempt keeps, per case, the trainee's sputum decision (``Attempt.metrics
["calls"]``: 1 TB-suggestive, 0 not, null when not answered; re-computed by re-scoring).
Attempts scored before that was kept have only whether the decision was right
(``metrics["cases"]``): on a TB-suggestive case a right decision is a TB-suggestive call,
on any other case a wrong one is (a blank counts as wrong there). The shares are computed
in the database, over every exercise holding the case, one query for all the cases of a
result page: no attempt is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case as when
from sqlalchemy import func, select

from app.extensions import db
from app.quizzes.models import ENDED_STATES, Attempt

#: Readers (other than the trainee) who must have read a case before its share is shown.
READERS_NEEDED = 5


@dataclass(frozen=True)
class PeerCalls:
    readers: int  # distinct other users with an answered, ended read of the case
    share_abnormal: float  # mean over those readers of the share of their reads that
    # called the case TB-suggestive (each reader weighs one, however many attempts)


def peer_calls(user_id: int, reference_tb: Mapping[int, bool],
               needed: int = READERS_NEEDED) -> dict[int, PeerCalls]:
    """For each case id of ``reference_tb`` (its reference sputum decision), how other
    readers called it, when at least ``needed`` of them read it."""
    case_ids = sorted(reference_tb)
    if not case_ids:
        return {}
    # Attempts scored before calls were kept: from whether the decision was right.
    kept = Attempt.metrics["calls"].as_string().is_not(None)
    per_case = [when(
        (kept, Attempt.metrics[("calls", str(case_id))].as_float()),
        else_=_from_correct(Attempt.metrics[("cases", str(case_id))].as_float(),
                            reference_tb[case_id]))
        for case_id in case_ids]
    # Per reader: the share of their ended attempts that called each case TB-suggestive.
    readers = (
        select(Attempt.user_id,
               *(func.avg(value).label(f"c{n}") for n, value in enumerate(per_case)))
        .where(Attempt.state.in_(ENDED_STATES), Attempt.user_id != user_id,
               Attempt.metrics.is_not(None))
        .group_by(Attempt.user_id)
        .subquery()
    )
    columns = []
    for n in range(len(case_ids)):
        column = readers.c[f"c{n}"]
        columns += [func.count(column), func.avg(column)]
    row = db.session.execute(select(*columns)).one()
    found: dict[int, PeerCalls] = {}
    for n, case_id in enumerate(case_ids):
        count, share = int(row[2 * n] or 0), row[2 * n + 1]
        if count >= needed and share is not None:
            found[case_id] = PeerCalls(count, float(share))
    return found


def _from_correct(correct: Any, reference_tb: bool) -> Any:
    return correct if reference_tb else 1.0 - correct
