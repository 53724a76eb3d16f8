"""A job's life, shared by every kind of job: created (its parameters sealed), claimed by one
worker, beating while it runs, finished with a sentence. The kinds (case_import,
pacs_import, ...) build on these; app.jobs.services runs them."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import or_, update

from app.audit.services import record
from app.auth.models import User
from app.db_types import utcnow
from app.extensions import db
from app.field_encryption import decrypt, encrypt
from app.jobs.models import Job, JobKind, JobStatus
from app.jobs.queue import enqueue
from app.sentences import N_


class JobError(Exception):
    """A refusal with a sentence for the person asking."""


def _keys() -> list[str]:
    return list(current_app.config["FIELD_ENCRYPTION_KEYS"])


def _spool_root() -> Path:
    return Path(current_app.config.get("JOB_SPOOL_PATH")
                or Path(current_app.instance_path) / "job-uploads")


def spool_dir(job_id: int) -> Path:
    """The job's own folder (uploaded originals, files it writes): removed when it ends,
    unless the job's result is a file kept for download (app.jobs.library_export)."""
    return _spool_root() / str(job_id)


def new_job(kind: JobKind, actor: User | None, params: dict[str, Any]) -> Job:
    job = Job(kind=kind.value, status=JobStatus.QUEUED.value,
              created_by=actor, params_encrypted=seal(params))
    db.session.add(job)
    db.session.flush()
    record("job.create", actor=actor, object_type="job", object_id=job.id, kind=job.kind)
    db.session.commit()
    return job


def seal(value: Any) -> str:
    """A job's parameters or an item's name, encrypted (app.field_encryption): file names,
    paths and PACS identifiers may carry patient data, and a database copy must not
    reveal them."""
    return encrypt(_keys(), json.dumps(value))


def unseal(token: str) -> Any:
    return json.loads(decrypt(_keys(), token))


def encrypt_text(text: str) -> str:
    return encrypt(_keys(), text)


def decrypt_text(token: str) -> str:
    return decrypt(_keys(), token)


def stale_after() -> timedelta:
    return timedelta(seconds=float(current_app.config["JOB_STALE_AFTER"]))


def rows_changed(result: Any) -> int:
    """Rows an UPDATE changed (a CursorResult's rowcount)."""
    return int(result.rowcount)


def claim(job_id: int) -> bool:
    """Take the job for this worker, in one statement so that two workers never both run
    it: a queued job, or a running one whose worker stopped beating."""
    now = utcnow()
    claimed = rows_changed(db.session.execute(
        update(Job)
        .where(Job.id == job_id)
        .where(or_(Job.status == JobStatus.QUEUED.value,
                   (Job.status == JobStatus.RUNNING.value)
                   & (Job.heartbeat_at < now - stale_after())))
        .values(status=JobStatus.RUNNING.value, heartbeat_at=now, runs=Job.runs + 1)))
    db.session.commit()
    return bool(claimed)


def advance(job_id: int, by: int = 1) -> None:
    """Count ``by`` more units of work done and beat the heartbeat, in the caller's
    transaction (so progress is recorded exactly with the work it counts)."""
    db.session.execute(update(Job).where(Job.id == job_id).values(
        progress_done=Job.progress_done + by, heartbeat_at=utcnow()))


def finish(job: Job, status: JobStatus, error: str | None, *,
           keep_files: bool = False) -> None:
    job.status = status.value
    job.error = error
    job.finished_at = utcnow()
    record("job.finish", actor=None, object_type="job", object_id=job.id,
           status=status.value, done=job.progress_done)
    db.session.commit()
    if not keep_files:
        shutil.rmtree(spool_dir(job.id), ignore_errors=True)


def submit(job: Job) -> None:
    """Hand the job to the queue. A queue that cannot take it (Redis down) fails the job
    with the reason and removes its files, rather than leaving it queued for ever, and the
    error goes on to the caller (a 503 for a page)."""
    try:
        enqueue(job.id)
    except Exception:
        db.session.rollback()
        finish(job, JobStatus.FAILED,
               N_("The job could not be handed to the job queue (it did not answer); nothing "
                  "was done. Start it again."))
        raise
