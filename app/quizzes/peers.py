"""Anonymous peer comparison per case: how other readers called a case.

An ended attempt keeps, per case, the trainee's sputum decision (``Attempt.metrics
["calls"]``: 1 TB-suggestive, 0 not, null when not answered; re-computed by re-scoring).
Each reader weighs one however many attempts they made: a reader's share is the share of
their answered reads of the case that called it TB-suggestive, over every exercise holding
the case, and a case's figure is the mean of its readers' shares.

Those figures are kept as running counts, updated when an attempt ends or is re-scored:
per case and reader (PeerCaseCalls: calls and answered reads) and per case (PeerCaseShare:
readers and the sum of their shares). A result page reads one row per case and the
trainee's own, to leave them out: no attempt is read, however many ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from app.extensions import db
from app.quizzes.models import ENDED_STATES, Attempt, PeerCaseCalls, PeerCaseShare

#: Readers (other than the trainee) who must have read a case before its share is shown.
READERS_NEEDED = 5

Calls = Mapping[str, int | None]  # case id (as the JSON keys it) -> 1, 0 or None


@dataclass(frozen=True)
class PeerCalls:
    readers: int  # distinct other users with an answered, ended read of the case
    share_abnormal: float  # mean over those readers of the share of their reads that
    # called the case TB-suggestive (each reader weighs one, however many attempts)


def peer_calls(user_id: int, reference_tb: Mapping[int, bool],
               needed: int = READERS_NEEDED) -> dict[int, PeerCalls]:
    """For each case id of ``reference_tb`` (the cases whose key may be shown), how other
    readers called it, when at least ``needed`` of them read it. One statement."""
    case_ids = sorted(reference_tb)
    if not case_ids:
        return {}
    own = and_(PeerCaseCalls.case_id == PeerCaseShare.case_id,
               PeerCaseCalls.user_id == user_id)
    rows = db.session.execute(
        select(PeerCaseShare.case_id, PeerCaseShare.readers, PeerCaseShare.share_sum,
               PeerCaseCalls.called, PeerCaseCalls.answered)
        .outerjoin(PeerCaseCalls, own)
        .where(PeerCaseShare.case_id.in_(case_ids)))
    found: dict[int, PeerCalls] = {}
    for case_id, readers, share_sum, called, answered in rows:
        if answered:  # the trainee's own reads are among the counts: take them out
            readers -= 1
            share_sum -= called / answered
        if readers >= needed:
            # The sum is kept by additions and subtractions: clamp the rounding dust.
            found[case_id] = PeerCalls(readers, min(1.0, max(0.0, share_sum / readers)))
    return found


def call_steps(before: Calls | None, after: Calls | None) -> dict[int, tuple[int, int]]:
    """What counting an attempt's calls (``after``) in place of what it counted
    (``before``: None for an attempt that has just ended) adds per case id:
    (calls, answered reads)."""
    before, after = before or {}, after or {}
    steps: dict[int, tuple[int, int]] = {}
    for key in set(before) | set(after):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        steps[int(key)] = ((new or 0) - (old or 0), (new is not None) - (old is not None))
    return steps


def record_calls(user_id: int, before: Calls | None, after: Calls | None) -> None:
    """Count an attempt's calls (``after``) in place of what it counted (``before``: None
    for an attempt that has just ended). A few statements however many cases."""
    add_call_steps({user_id: call_steps(before, after)})


def add_call_steps(steps_by_user: Mapping[int, Mapping[int, tuple[int, int]]]) -> None:
    """Add (calls, answered reads) per reader and case id to the running counts. Every
    row is locked in one order (readers' own rows by reader then case, the shared per-case
    rows by case, last): two transactions over the same cases wait for each other instead
    of deadlocking."""
    shares: dict[int, list[float]] = {}  # case id -> [readers, share sum] to add
    for user_id in sorted(steps_by_user):
        steps = {case_id: step for case_id, step in steps_by_user[user_id].items()
                 if step != (0, 0)}
        if not steps:
            continue
        case_ids = sorted(steps)
        current = {case_id: (called, answered)
                   for case_id, called, answered in db.session.execute(
            select(PeerCaseCalls.case_id, PeerCaseCalls.called, PeerCaseCalls.answered)
            .where(PeerCaseCalls.user_id == user_id, PeerCaseCalls.case_id.in_(case_ids))
            .order_by(PeerCaseCalls.case_id).with_for_update())}
        readers_rows = []
        for case_id in case_ids:
            called, answered = current.get(case_id, (0, 0))
            new_called = called + steps[case_id][0]
            new_answered = answered + steps[case_id][1]
            readers_rows.append({"case_id": case_id, "user_id": user_id,
                                 "called": new_called, "answered": new_answered})
            share_step = _share(new_called, new_answered) - _share(called, answered)
            reader_step = (new_answered > 0) - (answered > 0)
            if share_step or reader_step:
                entry = shares.setdefault(case_id, [0, 0.0])
                entry[0] += reader_step
                entry[1] += share_step
        insert = dialect_insert(PeerCaseCalls)
        db.session.execute(insert.on_conflict_do_update(
            index_elements=["case_id", "user_id"],
            set_={"called": insert.excluded.called, "answered": insert.excluded.answered}),
            readers_rows)
    if shares:
        insert = dialect_insert(PeerCaseShare)
        db.session.execute(insert.on_conflict_do_update(
            index_elements=["case_id"],
            set_={"readers": PeerCaseShare.readers + insert.excluded.readers,
                  "share_sum": PeerCaseShare.share_sum + insert.excluded.share_sum}),
            [{"case_id": case_id, "readers": int(readers), "share_sum": share_sum}
             for case_id, (readers, share_sum) in sorted(shares.items())])


def rebuild_peer_calls() -> None:
    """Recount every case's figures from the ended attempts' kept calls: for data written
    around the services, e.g. bulk-loaded attempts."""
    db.session.execute(delete(PeerCaseShare))
    db.session.execute(delete(PeerCaseCalls))
    counts: dict[tuple[int, int], list[int]] = {}
    for user_id, metrics in db.session.execute(
            select(Attempt.user_id, Attempt.metrics).where(
                Attempt.state.in_(ENDED_STATES), Attempt.metrics.is_not(None))):
        for key, call in _calls_of(metrics):
            entry = counts.setdefault((int(key), user_id), [0, 0])
            if call is not None:
                entry[0] += call
                entry[1] += 1
    _write_counts(counts)


def _calls_of(metrics: Mapping[str, Any]) -> Iterable[tuple[str, int | None]]:
    return (metrics.get("calls") or {}).items()


def _write_counts(counts: Mapping[tuple[int, int], list[int]]) -> None:
    rows = [{"case_id": case_id, "user_id": user_id, "called": c, "answered": a}
            for (case_id, user_id), (c, a) in sorted(counts.items())]
    per_case: dict[int, list[float]] = {}
    for row in rows:
        if row["answered"]:
            entry = per_case.setdefault(row["case_id"], [0, 0.0])
            entry[0] += 1
            entry[1] += row["called"] / row["answered"]
    for start in range(0, len(rows), 5000):
        db.session.execute(PeerCaseCalls.__table__.insert(), rows[start:start + 5000])
    if per_case:
        db.session.execute(PeerCaseShare.__table__.insert(), [
            {"case_id": case_id, "readers": int(n), "share_sum": total}
            for case_id, (n, total) in sorted(per_case.items())])


def _share(called: int, answered: int) -> float:
    return called / answered if answered else 0.0


def dialect_insert(model: Any) -> Any:
    """INSERT with the dialect's ON CONFLICT clause (both databases have one)."""
    return (postgresql.insert(model) if db.session.get_bind().dialect.name == "postgresql"
            else sqlite.insert(model))
