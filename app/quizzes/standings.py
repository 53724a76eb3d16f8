"""The anonymous peer comparison of a result page, kept as running figures.

A result page shows where the attempt's accuracy stands among other trainees' latest ended
attempts at the same exercise. Counting those on every page view reads every ended attempt
of the exercise; instead each trainee's latest ended attempt (PeerStanding) and a
histogram of their accuracies by exact value (PeerAccuracy: one row per distinct
accuracy, so a few hundred at most for a 200-case exam) are kept up to date whenever an
attempt ends or is re-scored. The page then reads a handful of rows, however many
attempts ended, and the percentile is the exact one: the bins are the exact values.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, insert, select, update

from app.extensions import db
from app.quizzes.models import ENDED_STATES, Attempt, PeerAccuracy, PeerStanding
from app.quizzes.peers import dialect_insert

#: Other trainees who must have an ended attempt before the comparison is shown.
PEERS_NEEDED = 5


def refresh_standing(exercise_id: int, user_id: int) -> None:
    """Count the trainee's latest ended attempt at the exercise, in place of what was
    counted for them: call it, in the same transaction, after one of their attempts there
    ended or changed accuracy (and was flushed)."""
    _insert_standing(exercise_id, user_id)
    # The row lock orders concurrent refreshes for one trainee: the latest attempt is
    # looked up after it is held, so it sees what the other transaction committed.
    standing = db.session.scalars(
        select(PeerStanding).where(PeerStanding.exercise_id == exercise_id,
                                   PeerStanding.user_id == user_id)
        .with_for_update().execution_options(populate_existing=True)).one()
    latest = db.session.execute(
        select(Attempt.id, Attempt.accuracy)
        .where(Attempt.exercise_id == exercise_id, Attempt.user_id == user_id,
               Attempt.state.in_(ENDED_STATES))
        .order_by(Attempt.number.desc(), Attempt.id.desc()).limit(1)).first()
    if latest is None:  # nothing ended (cannot happen once one has: an ended attempt stays)
        return
    counted = standing.attempt_id is not None
    before, after = standing.accuracy, latest.accuracy
    standing.attempt_id = latest.id
    standing.accuracy = after
    if counted and before == after:
        return
    changes = [(before, -1)] if counted and before is not None else []
    if after is not None:
        changes.append((after, +1))
    # Bins in ascending order, always: two transactions moving trainees between the same
    # two bins in opposite directions would otherwise deadlock.
    for value, step in sorted(changes):
        _add_to_bin(exercise_id, value, step)


def peer_percentile(exercise_id: int, user_id: int,
                    mine: float | None) -> tuple[float, int] | None:
    """(percentile, peers) of ``mine`` among the other trainees' latest ended attempts at
    the exercise (ties count half), or None below PEERS_NEEDED peers. One statement."""
    if mine is None:
        return None
    bins = select(
        func.coalesce(func.sum(PeerAccuracy.readers), 0).label("all"),
        func.coalesce(func.sum(PeerAccuracy.readers).filter(PeerAccuracy.accuracy < mine), 0)
        .label("below"),
        func.coalesce(func.sum(PeerAccuracy.readers).filter(PeerAccuracy.accuracy == mine), 0)
        .label("tied"),
    ).where(PeerAccuracy.exercise_id == exercise_id).subquery()
    own = (select(PeerStanding.accuracy)
           .where(PeerStanding.exercise_id == exercise_id, PeerStanding.user_id == user_id,
                  PeerStanding.attempt_id.is_not(None))
           .scalar_subquery())
    everyone, below, tied, own_value = db.session.execute(
        select(bins.c.all, bins.c.below, bins.c.tied, own)).one()
    # The trainee's own standing is in the bins too: take it out.
    if own_value is not None:
        everyone -= 1
        if own_value < mine:
            below -= 1
        elif own_value == mine:
            tied -= 1
    if everyone < PEERS_NEEDED:
        return None
    return 100.0 * (below + 0.5 * tied) / everyone, int(everyone)


def rebuild_standings(exercise_id: int | None = None) -> None:
    """Recount the standings and the histogram from the attempts (of one exercise, or of
    all): for data written around the services, e.g. bulk-loaded attempts."""
    standing_filter = [] if exercise_id is None else [PeerStanding.exercise_id == exercise_id]
    bin_filter = [] if exercise_id is None else [PeerAccuracy.exercise_id == exercise_id]
    db.session.execute(delete(PeerAccuracy).where(*bin_filter))
    db.session.execute(delete(PeerStanding).where(*standing_filter))
    ended: list[Any] = [Attempt.state.in_(ENDED_STATES)]
    if exercise_id is not None:
        ended.append(Attempt.exercise_id == exercise_id)
    rank = func.row_number().over(
        partition_by=(Attempt.exercise_id, Attempt.user_id),
        order_by=(Attempt.number.desc(), Attempt.id.desc())).label("rank")
    ranked = select(Attempt.exercise_id, Attempt.user_id, Attempt.id, Attempt.accuracy,
                    rank).where(*ended).subquery()
    db.session.execute(insert(PeerStanding).from_select(
        ["exercise_id", "user_id", "attempt_id", "accuracy"],
        select(ranked.c.exercise_id, ranked.c.user_id, ranked.c.id, ranked.c.accuracy)
        .where(ranked.c.rank == 1)))
    db.session.execute(insert(PeerAccuracy).from_select(
        ["exercise_id", "accuracy", "readers"],
        select(PeerStanding.exercise_id, PeerStanding.accuracy, func.count())
        .where(PeerStanding.accuracy.is_not(None), *standing_filter)
        .group_by(PeerStanding.exercise_id, PeerStanding.accuracy)))


def _insert_standing(exercise_id: int, user_id: int) -> None:
    """The trainee's standing row, created uncounted if it is not there yet (two first
    attempts ending at once both get past this; one row results)."""
    db.session.execute(
        dialect_insert(PeerStanding)
        .values(exercise_id=exercise_id, user_id=user_id, attempt_id=None, accuracy=None)
        .on_conflict_do_nothing(index_elements=["exercise_id", "user_id"]))


def _add_to_bin(exercise_id: int, value: float, step: int) -> None:
    if step < 0:
        db.session.execute(update(PeerAccuracy).where(
            PeerAccuracy.exercise_id == exercise_id, PeerAccuracy.accuracy == value)
            .values(readers=PeerAccuracy.readers + step))
        return
    statement = dialect_insert(PeerAccuracy).values(
        exercise_id=exercise_id, accuracy=value, readers=step)
    db.session.execute(statement.on_conflict_do_update(
        index_elements=["exercise_id", "accuracy"],
        set_={"readers": PeerAccuracy.readers + step}))
