"""Re-scoring as a job: the ended attempts (of one exercise, or all) scored again against
the current reference reads by app.quizzes.rescoring.rescore (RESCORING_PROCESSES
processes on PostgreSQL), progress counted in attempts,
the outcome (attempts re-scored, verdicts changed, what followed for certificates) kept in
the job's summary.

Taken up again after its worker died, the job simply runs again, which is safe:
- attempts are re-scored in transactions of a batch, with the job's progress and the
  attempts' verdict changes written in that same transaction: an attempt is either
  re-scored and counted or neither (the run counts from 0: it goes through every
  attempt again);
- re-scoring is a function of the attempt's stored answers and the current reference
  reads, so an attempt re-scored before the interruption gets the same scores again and
  changes nothing;
- the verdict changes of the lost run, which the new run no longer sees (the attempt's
  verdict already is the new one), were kept as rows (JobVerdictChange) with the attempts
  they belong to; they are read back and announced with the new run's, so the trainees
  concerned are still told;
- certificates are re-evaluated per trainee after the attempts (app.certification), and a
  trainee re-evaluated on the same scores gets the same outcome.
"""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask_babel import force_locale, gettext
from sqlalchemy import select, update

from app.auth.models import User
from app.cases.reasons import translate_reason
from app.db_types import utcnow
from app.extensions import db
from app.jobs.lifecycle import JobError, finish, new_job, submit, unseal
from app.jobs.models import Job, JobKind, JobStatus, JobVerdictChange
from app.jobs.services import register_kind
from app.quizzes.models import Attempt, Exercise
from app.quizzes.rescoring import rescore
from app.quizzes.results import VerdictChange
from app.sentences import N_, english, say
from app.user_errors import UserError


def start_rescoring(exercise_id: int | None, *, actor: User | None) -> Job:
    """Queue the re-scoring of the ended attempts of ``exercise_id`` (None: every
    exercise's)."""
    if exercise_id is not None and db.session.get(Exercise, exercise_id) is None:
        raise JobError(gettext("There is no exercise %(number)s.", number=exercise_id))
    job = new_job(JobKind.RESCORING, actor, {"exercise_id": exercise_id})
    submit(job)
    return job


def run_rescoring(job: Job) -> None:
    exercise_id = unseal(job.params_encrypted)["exercise_id"]
    if exercise_id is not None and db.session.get(Exercise, exercise_id) is None:
        finish(job, JobStatus.FAILED,
               say(N_("Exercise %(number)s was deleted before its attempts were re-scored."),
                   number=exercise_id))
        return
    job_id = job.id
    earlier = [VerdictChange(row.attempt_id, user_id, exercise, row.passed_before,
                             row.passed_after)
               for row, user_id, exercise in db.session.execute(
                   select(JobVerdictChange, Attempt.user_id, Attempt.exercise_id)
                   .join(Attempt, Attempt.id == JobVerdictChange.attempt_id)
                   .where(JobVerdictChange.job_id == job_id)
                   .order_by(JobVerdictChange.attempt_id))]
    kept_before = {c.attempt_id for c in earlier}

    # Counted from 0 on each run: the run goes through every attempt again.
    db.session.execute(update(Job).where(Job.id == job_id).values(progress_done=0))
    db.session.commit()

    def on_batch(count: int, total: int, changes: list[VerdictChange]) -> None:
        # In the batch's transaction: counted (and its changes kept) exactly when its
        # attempts are re-scored. Added, not set: processes re-score batches side by side.
        db.session.execute(update(Job).where(Job.id == job_id).values(
            progress_done=Job.progress_done + count, progress_total=total,
            heartbeat_at=utcnow()))
        for change in changes:
            if change.attempt_id in kept_before:  # changed again since a lost run
                db.session.execute(update(JobVerdictChange).where(
                    JobVerdictChange.job_id == job_id,
                    JobVerdictChange.attempt_id == change.attempt_id,
                ).values(passed_after=change.passed_after))  # before stays the first run's
            else:
                db.session.add(JobVerdictChange(
                    job_id=job_id, attempt_id=change.attempt_id,
                    passed_before=change.passed_before, passed_after=change.passed_after))

    try:
        report = rescore(exercise_id, on_batch=on_batch, earlier_changes=earlier,
                         processes=int(current_app.config["RESCORING_PROCESSES"]))
    except UserError as exc:
        db.session.rollback()
        finish(db.session.get_one(Job, job_id), JobStatus.FAILED,
               say(N_("%(reason)s The attempts counted as done are re-scored; run the "
                      "re-scoring again for the others."), reason=exc.sentence))
        return
    job = db.session.get_one(Job, job_id)
    db.session.refresh(job)
    if job.progress_total is None:
        job.progress_total = 0
    job.summary = {
        "exercise_id": exercise_id,
        "attempts": report.attempts,
        "changed": len(report.changes),
        # In English for the API and the command line; as messages for the job's page,
        # worded in its reader's language (a summary without them shows the English).
        "consequences": english_lines(report.consequences),
        "consequence_messages": list(report.consequences),
    }
    db.session.commit()


def english_lines(messages: list[dict[str, Any]]) -> list[str]:
    with force_locale("en"):
        return [english(line) for line in messages]


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The outcome for the command line, in its language (a summary stored before the
    lines were kept as messages: those lines as stored, read as reasons)."""
    lines = summary.get("consequence_messages") or summary.get("consequences", [])
    return [gettext("%(attempts)s attempts re-scored, %(changed)s with a changed pass/fail "
                    "verdict", attempts=summary["attempts"], changed=summary["changed"]),
            *(f"  {translate_reason(line)}" for line in lines)]


def register_rescoring() -> None:
    register_kind(JobKind.RESCORING, run_rescoring, N_("the attempts counted as done are "
                  "re-scored; run the re-scoring again for the others."))
