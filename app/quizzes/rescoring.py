"""Re-scoring ended attempts after reference reads changed (app.quizzes.rescoring_job runs
it as a job; `quizzes rescore` and the exercise page queue that job).

Each attempt is scored again by results.finalise, exactly as when it ended, against the
references as they are when the run starts (loaded once per process). The attempts are
locked, re-scored and committed BATCH at a time: one transaction per attempt cost more in
statements and commits than the scoring itself. On PostgreSQL a run of more than one
batch is shared between ``processes`` forked processes, each with its own connection and
its own batches (attempts are never in two shares, and every shared row is locked in one
order, so they wait for each other, never deadlock); SQLite has one writer at a time, so
it re-scores in this process.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import Row, select

from app.extensions import db
from app.locking import lock_rows, retrying
from app.quizzes.models import ENDED_STATES, Attempt, AttemptAnswer
from app.quizzes.results import (
    RescoreReport,
    TruthCache,
    VerdictChange,
    finalise,
    merge_changes,
)
from app.quizzes.signals import attempts_rescored
from app.sentences import N_
from app.user_errors import UserError

logger = logging.getLogger(__name__)

# Attempts per transaction: enough that the statements and the commit are shared by many,
# few enough that a trainee opening one of them waits a fraction of a second at most.
BATCH = 25

# Told, inside each batch's transaction and before it commits: (attempts re-scored in
# it, attempts of the whole run, their pass/fail verdict changes). What it writes (a job's
# progress) is committed with the attempts, or rolled back with them.
RescoreProgress = Callable[[int, int, list[VerdictChange]], None]


@dataclass
class _Share:
    """What one process re-scored."""

    attempts: int = 0
    exercise_ids: set[int] = field(default_factory=set)
    changes: list[VerdictChange] = field(default_factory=list)


# _busy's refusal as a sentence (UserError.sentence), as a failed job's error quotes it.
BUSY_SENTENCE = N_("The database stayed busy: run the re-scoring again.")


def _busy() -> UserError:
    return UserError("the database stayed busy: run the re-scoring again", 409)


def rescore(exercise_id: int | None = None, *, on_batch: RescoreProgress | None = None,
            earlier_changes: Sequence[VerdictChange] = (), processes: int = 1) -> RescoreReport:
    """Re-score ended attempts (of one exercise, or all), each under its row lock (an
    attempt re-scored twice at once is corrected once, not twice), then announce it:
    certificates are re-evaluated by their own area. Re-running it is harmless: unchanged
    scores change nothing. ``earlier_changes`` are the verdict changes an interrupted run
    made (re-scored again they change nothing more, and would otherwise be forgotten):
    they are announced with this run's."""
    query = select(Attempt.id).where(Attempt.state.in_(ENDED_STATES)).order_by(Attempt.id)
    if exercise_id is not None:
        query = query.where(Attempt.exercise_id == exercise_id)
    attempt_ids = list(db.session.scalars(query))
    total = len(attempt_ids)
    batches = [attempt_ids[n:n + BATCH] for n in range(0, total, BATCH)]
    processes = min(processes, len(batches))
    if processes > 1 and db.engine.dialect.name == "postgresql":
        shares = _in_processes([batches[k::processes] for k in range(processes)], total,
                               on_batch)
    else:
        shares = [_rescore_batches(batches, total, on_batch)]
    report = RescoreReport()
    exercise_ids = {c.exercise_id for c in earlier_changes}
    changes: list[VerdictChange] = []
    for share in shares:
        report.attempts += share.attempts
        exercise_ids |= share.exercise_ids
        changes += share.changes
    report.changes = merge_changes(earlier_changes, changes)
    if exercise_ids:
        answers = attempts_rescored.send(current_app._get_current_object(),  # type: ignore[attr-defined]
                                         exercise_ids=sorted(exercise_ids),
                                         changes=list(report.changes))
        for _receiver, lines in answers:
            report.consequences.extend(lines or [])
    return report


def _rescore_batches(batches: list[list[int]], total: int,
                     on_batch: RescoreProgress | None) -> _Share:
    share = _Share()
    # The references as they are when the run starts, loaded once for all its attempts.
    truths: TruthCache = {}
    for batch in batches:

        locked: list[Attempt] = []

        def again(batch: list[int] = batch,
                  locked: list[Attempt] = locked) -> list[VerdictChange]:
            changes: list[VerdictChange] = []
            locked[:] = lock_rows(Attempt, batch)
            answers = _answers_of([attempt.id for attempt in locked])
            for attempt in locked:
                if attempt.state not in ENDED_STATES:  # re-opened meanwhile: not ended now
                    continue
                before = attempt.passed
                finalise(attempt, truths=truths, answers=answers.get(attempt.id, {}))
                changes.append(VerdictChange(attempt.id, attempt.user_id, attempt.exercise_id,
                                             before, attempt.passed))
            if on_batch is not None:
                on_batch(len(changes), total,
                         [c for c in changes if c.passed_before != c.passed_after])
            db.session.commit()
            return changes

        done = retrying(again, _busy)
        share.attempts += len(done)
        share.exercise_ids |= {c.exercise_id for c in done}
        share.changes += [c for c in done if c.passed_before != c.passed_after]
        # Only the references are kept from one batch to the next: the session holds one
        # batch of attempts at a time, whatever the count.
        for attempt in locked:
            db.session.expunge(attempt)
    return share


def _answers_of(attempt_ids: list[int]) -> dict[int, dict[int, Row[Any]]]:
    """The attempts' answers by attempt and case, as rows of the columns scoring reads:
    ORM objects (made, tracked, then checked for changes at commit) for 200 answers an
    attempt cost as much as the statements did, and nothing here changes them."""
    found: dict[int, dict[int, Row[Any]]] = {}
    for row in db.session.execute(
            select(AttemptAnswer.attempt_id, AttemptAnswer.case_id, AttemptAnswer.answers,
                   AttemptAnswer.marks, AttemptAnswer.seconds)
            .where(AttemptAnswer.attempt_id.in_(attempt_ids))):
        found.setdefault(row.attempt_id, {})[row.case_id] = row
    return found


def _in_processes(shares: list[list[list[int]]], total: int,
                  on_batch: RescoreProgress | None) -> list[_Share]:
    """Each share of batches re-scored by a forked process. Fork, not spawn: the process
    starts with this application and its settings as they are (a job's worker has no
    other way to build them), and with ``on_batch`` (a closure, which no pickle carries)."""
    # No connection of ours is in use when the children start (the session keeps its
    # objects, expired, for the caller).
    db.session.commit()
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def run(index: int, batches: list[list[int]]) -> None:
        # The parent's pooled connections are not this process's to use, nor to close.
        db.engine.dispose(close=False)
        try:
            with app.app_context():
                outcome: Any = _rescore_batches(batches, total, on_batch)
        except UserError as exc:
            outcome = exc
        except BaseException as exc:  # reported to the parent, which fails the run
            outcome = RuntimeError(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        finally:
            db.session.remove()
        results.put((index, outcome))

    children = [context.Process(target=run, args=(index, batches), daemon=True)
                for index, batches in enumerate(shares)]
    for child in children:
        child.start()
    outcomes: dict[int, Any] = {}
    try:
        while len(outcomes) < len(children):
            try:
                index, outcome = results.get(timeout=1.0)
                outcomes[index] = outcome
            except queue.Empty:
                # A process killed (out of memory, by hand) sends nothing: the run fails
                # rather than waiting for ever; what its committed batches did stays done.
                lost = [n for n, child in enumerate(children)
                        if n not in outcomes and child.exitcode not in (None, 0)]
                if lost and results.empty():
                    raise RuntimeError(f"a re-scoring process stopped (exit code "
                                       f"{children[lost[0]].exitcode})") from None
    finally:
        for child in children:
            child.join()
    for outcome in outcomes.values():
        if isinstance(outcome, BaseException):
            raise outcome
    return [outcomes[index] for index in range(len(children))]
