"""When the running peer figures of an ended attempt are written: last, just before its
transaction commits.

The per-case rows (PeerCaseShare) and an exercise's accuracy bins (PeerAccuracy) are
shared by every trainee of an exam: whoever updates one holds its lock until commit, and
the next submit of the cohort waits for it. Written where the attempt is scored, the locks
were held through the rest of the submit (the audit row, the certificate check); written
as the transaction's last statements, they are held for the commit alone. The figures
stay exact: they are written in the same transaction as the scores they count (a
transaction rolled back counts nothing), and every row is locked in one order
(peers.add_call_steps, standings.refresh_standing), so concurrent submits wait, never
deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from app.quizzes.peers import Calls, add_call_steps, call_steps
from app.quizzes.standings import refresh_standing

_KEY = "peer_counts_at_commit"


@dataclass
class _Pending:
    standings: set[tuple[int, int]] = field(default_factory=set)  # (exercise, user)
    # reader -> case id -> (calls, answered reads) to add
    calls: dict[int, dict[int, tuple[int, int]]] = field(default_factory=dict)


def count_at_commit(session: Session, *, exercise_id: int, user_id: int,
                    standing: bool, calls_before: Calls | None,
                    calls_after: Calls | None) -> None:
    """Count an attempt that ended or was re-scored in the peer figures when ``session``
    commits: its trainee's standing at the exercise (``standing``: their latest ended
    attempt or its accuracy changed) and its calls in place of ``calls_before``."""
    pending = session.info.setdefault(_KEY, _Pending())
    if standing:
        pending.standings.add((exercise_id, user_id))
    mine = pending.calls.setdefault(user_id, {})
    for case_id, (called, answered) in call_steps(calls_before, calls_after).items():
        was = mine.get(case_id, (0, 0))
        mine[case_id] = (was[0] + called, was[1] + answered)


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint released: the transaction goes on
        return
    pending: _Pending | None = session.info.pop(_KEY, None)
    if pending is None:
        return
    session.flush()  # a standing looks the trainee's latest ended attempt up
    for exercise_id, user_id in sorted(pending.standings):
        refresh_standing(exercise_id, user_id)
    add_call_steps(pending.calls)


@event.listens_for(Session, "after_transaction_end")
def _forget_on_rollback(session: Session, transaction: SessionTransaction) -> None:
    # A rolled-back transaction (e.g. one retried after a deadlock) counts nothing.
    if transaction.parent is None:
        session.info.pop(_KEY, None)
