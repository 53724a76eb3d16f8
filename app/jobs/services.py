"""Jobs, one function per use case: run one (and take it up again after a lost worker),
cancel it, and what a person may see of jobs. Each kind of job lives in its own module
(case_import, ...); this one knows them all and runs the right one."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from typing import Any, NamedTuple

from flask import Flask
from flask_babel import gettext
from sqlalchemy import or_, select, update

from app.audit.services import record
from app.auth.models import User
from app.auth.roles import Role
from app.db_types import utcnow
from app.extensions import db
from app.jobs import derivatives_rebuild, pacs_import
from app.jobs.case_import import run_case_import
from app.jobs.library_export import export_clean_up, run_library_export
from app.jobs.lifecycle import (
    JobError,
    claim,
    decrypt_text,
    finish,
    rows_changed,
    spool_dir,
    stale_after,
)
from app.jobs.models import Job, JobItem, JobKind, JobStatus
from app.jobs.queue import JobRunners, Periodic, enqueue, init_queue
from app.sentences import N_, say

logger = logging.getLogger(__name__)

__all__ = [
    "JobError",
    "can_see_job",
    "cancel_job",
    "init_jobs",
    "item_name",
    "job_status",
    "jobs_for",
    "recover_stalled",
    "run_job",
]


class Kind(NamedTuple):
    run: Callable[[Job], None]
    # Said after "The job stopped on an unexpected error (...);" when it fails.
    after_failure: str


KINDS: dict[str, Kind] = {
    JobKind.CASE_IMPORT.value: Kind(
        run_case_import,
        N_("the files listed as imported are in the library, import the others again.")),
    JobKind.PACS_IMPORT.value: Kind(pacs_import.run_pacs_import, pacs_import.AFTER_FAILURE),
    JobKind.LIBRARY_EXPORT.value: Kind(
        run_library_export, N_("nothing was exported; start the export again.")),
    JobKind.DERIVATIVES_REBUILD.value: Kind(
        derivatives_rebuild.run_derivatives_rebuild, derivatives_rebuild.AFTER_FAILURE),
}


# The workers' scheduled work, each built from the app's settings (a bad one stops the app).
SCHEDULES: dict[str, Callable[[Flask], Periodic]] = {"export_clean_up": export_clean_up}


def register_kind(kind: JobKind, run: Callable[[Job], None], after_failure: str, *,
                  schedule: Callable[[Flask], Periodic] | None = None) -> None:
    """A kind of job whose work lives in another area (re-scoring in quizzes, reminders in
    certification): registered by the app at start, so that the job layer, which the case
    library uses, imports nothing of those areas."""
    KINDS[kind.value] = Kind(run, after_failure)
    if schedule is not None:
        SCHEDULES[kind.value] = schedule


def init_jobs(app: Flask) -> None:
    init_queue(app, JobRunners(run_job=run_job, recover_stalled=recover_stalled, periodic=tuple(
        schedule(app) for schedule in SCHEDULES.values())))


def run_job(job_id: int) -> None:
    """Run (or take up again) job ``job_id``. Work already recorded is skipped: each unit
    is recorded in the transaction that does it, so none is done twice or by half."""
    if not claim(job_id):
        logger.info("job %s: not taken (finished, cancelled or running elsewhere)", job_id)
        return
    job = db.session.get(Job, job_id)
    assert job is not None
    if job.started_at is None:
        job.started_at = utcnow()
        db.session.commit()
    kind = KINDS[job.kind]
    try:
        kind.run(job)
    except Exception as exc:  # the job fails visibly; the work done so far stays done
        db.session.rollback()
        logger.exception("job %s failed", job_id)
        job = db.session.get(Job, job_id)
        assert job is not None
        finish(job, JobStatus.FAILED,
               say(N_("The job stopped on an unexpected error (%(cause)s); %(after)s"),
                   cause=type(exc).__name__, after=kind.after_failure))
        return
    db.session.refresh(job)
    if not job.finished:  # a kind may end its job itself (e.g. failed with its reason)
        finish(job, JobStatus.DONE, None)


def recover_stalled() -> list[int]:
    """Queue again the running jobs whose worker stopped beating (a worker killed or
    restarted mid-job loses Huey's message with it). Run when a worker starts."""
    cutoff = utcnow() - stale_after()
    ids = list(db.session.scalars(
        select(Job.id).where(Job.status == JobStatus.RUNNING.value)
        .where(or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < cutoff))))
    for job_id in ids:
        logger.info("job %s: its worker stopped; queued again", job_id)
        enqueue(job_id)
    return ids


# ---- cancelling and seeing -------------------------------------------------------------------


def cancel_job(job: Job, *, actor: User) -> None:
    """A queued job is cancelled; one already running is not (its files are being
    imported, each whole: let it end)."""
    if job.status != JobStatus.QUEUED.value:
        raise JobError(gettext("Only a queued job can be cancelled; this one is %(status)s.",
                               status=job.status))
    cancelled = rows_changed(db.session.execute(
        update(Job).where(Job.id == job.id, Job.status == JobStatus.QUEUED.value)
        .values(status=JobStatus.CANCELLED.value, finished_at=utcnow(),
                error=f"Cancelled by {actor.username}.")))
    if not cancelled:
        db.session.rollback()
        raise JobError(gettext("The job started meanwhile; only a queued job can be cancelled."))
    record("job.cancel", actor=actor, object_type="job", object_id=job.id)
    db.session.commit()
    db.session.refresh(job)
    shutil.rmtree(spool_dir(job.id), ignore_errors=True)


def can_see_job(user: User, job: Job) -> bool:
    return user.has_role(Role.ADMIN) or (job.created_by_id is not None
                                         and job.created_by_id == user.id)


def jobs_for(user: User) -> list[Job]:
    query = select(Job).order_by(Job.id.desc()).limit(200)
    if not user.has_role(Role.ADMIN):
        query = query.where(Job.created_by_id == user.id)
    return list(db.session.scalars(query))


def item_name(item: JobItem) -> str:
    return decrypt_text(item.name_encrypted)


def job_status(job: Job, *, after: int = 0) -> dict[str, Any]:
    """The job's state and its per-file results from position ``after`` on (the page asks
    only for the results it has not shown yet)."""
    items = db.session.scalars(select(JobItem).where(JobItem.job_id == job.id,
                                                     JobItem.position >= after)
                               .order_by(JobItem.position))
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "done": job.progress_done,
        "total": job.progress_total,
        "error": job.error,
        "finished": job.finished,
        "summary": job.summary,
        "items": [{"position": i.position, "name": item_name(i), "status": i.status,
                   "case_id": i.case_id, "reason": i.reason,
                   "pixel_review_needed": i.pixel_review_needed} for i in items],
    }
