"""Jobs, one function per use case: start a case import, run it (and take it up again after a
lost worker), cancel it, and what a person may see of jobs."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from sqlalchemy import or_, select, update

from app.audit.services import record
from app.auth.models import User
from app.auth.roles import Role
from app.cases.archive import is_zip
from app.cases.ingest import (
    FileResult,
    ImportOptions,
    Source,
    case_group,
    import_files,
    sources_from_paths,
    sources_from_stored_uploads,
)
from app.cases.models import Case, CaseImage
from app.db_types import utcnow
from app.extensions import db
from app.field_encryption import decrypt, encrypt
from app.jobs.models import Job, JobItem, JobKind, JobStatus
from app.jobs.queue import JobRunners, enqueue, init_queue

logger = logging.getLogger(__name__)

HEARTBEAT_EVERY = 5.0  # seconds, while a job lists its files


class JobError(Exception):
    """A refusal with a sentence for the person asking."""


def init_jobs(app: Flask) -> None:
    init_queue(app, JobRunners(run_job=run_job, recover_stalled=recover_stalled))


# ---- starting -----------------------------------------------------------------------------


def _keys() -> list[str]:
    return list(current_app.config["FIELD_ENCRYPTION_KEYS"])


def _spool_root() -> Path:
    return Path(current_app.config.get("JOB_SPOOL_PATH")
                or Path(current_app.instance_path) / "job-uploads")


def spool_dir(job_id: int) -> Path:
    return _spool_root() / str(job_id)


def start_upload_import(files: list[Any], *, actor: User, options: ImportOptions) -> Job:
    """Keep the uploaded files (Werkzeug FileStorage) on disk for the worker and queue
    their import. The files stay only until the job ends: they are the originals, with
    patient data, and are removed whatever the outcome."""
    files = [f for f in files if f and f.filename]
    if not files:
        raise JobError("Choose at least one file to import.")
    for storage in files:
        _check_upload(storage)
    job = _new_job(actor, {"uploads": [], "options": asdict(options)})
    folder = spool_dir(job.id)
    uploads = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for n, storage in enumerate(files):
            path = folder / f"{n}.upload"
            storage.save(str(path))
            uploads.append({"file": path.name,
                            "name": Path(storage.filename or "").name or "unnamed file"})
    except OSError as exc:
        _finish(job, JobStatus.FAILED, "The uploaded files could not be kept for the import "
                f"({exc.strerror or type(exc).__name__}); nothing was imported.")
        raise JobError(f"The upload could not be kept for import "
                       f"({exc.strerror or type(exc).__name__}); nothing was imported.") from exc
    job.params_encrypted = _seal({"uploads": uploads, "options": asdict(options)})
    db.session.commit()
    enqueue(job.id)
    return job


def _check_upload(storage: Any) -> None:
    """Refused here, before a job exists: an empty file, or a name promising an archive
    that is none, is a wrong pick rather than a file for the per-file report."""
    name = Path(storage.filename).name
    stream = storage.stream
    head = stream.read(4)
    stream.seek(0)
    if not head:
        raise JobError(f"{name} is empty: nothing was imported.")
    if name.lower().endswith(".zip") and not is_zip(head):
        raise JobError(f"{name} is not a .zip archive (it does not start as one); "
                       "nothing was imported.")


def start_path_import(paths: list[Path], *, actor: User | None, options: ImportOptions) -> Job:
    """Queue the import of files and folders on this machine (the command line)."""
    job = _new_job(actor, {"paths": [str(p.resolve()) for p in paths],
                           "options": asdict(options)})
    enqueue(job.id)
    return job


def _new_job(actor: User | None, params: dict[str, Any]) -> Job:
    job = Job(kind=JobKind.CASE_IMPORT.value, status=JobStatus.QUEUED.value,
              created_by=actor, params_encrypted=_seal(params))
    db.session.add(job)
    db.session.flush()
    record("job.create", actor=actor, object_type="job", object_id=job.id, kind=job.kind)
    db.session.commit()
    return job


def _seal(value: Any) -> str:
    return encrypt(_keys(), json.dumps(value))


def _open(token: str) -> Any:
    return json.loads(decrypt(_keys(), token))


# ---- running ------------------------------------------------------------------------------


def _stale_after() -> timedelta:
    return timedelta(seconds=float(current_app.config["JOB_STALE_AFTER"]))


def _claim(job_id: int) -> bool:
    """Take the job for this worker, in one statement so that two workers never both run
    it: a queued job, or a running one whose worker stopped beating."""
    now = utcnow()
    claimed = _rows(db.session.execute(
        update(Job)
        .where(Job.id == job_id)
        .where(or_(Job.status == JobStatus.QUEUED.value,
                   (Job.status == JobStatus.RUNNING.value)
                   & (Job.heartbeat_at < now - _stale_after())))
        .values(status=JobStatus.RUNNING.value, heartbeat_at=now, runs=Job.runs + 1)))
    db.session.commit()
    return bool(claimed)


def _rows(result: Any) -> int:
    """Rows an UPDATE changed (a CursorResult's rowcount)."""
    return int(result.rowcount)


def run_job(job_id: int) -> None:
    """Run (or take up again) job ``job_id``. Files already recorded are skipped: each was
    recorded in the transaction that stored it, so none is imported twice or by half."""
    if not _claim(job_id):
        logger.info("job %s: not taken (finished, cancelled or running elsewhere)", job_id)
        return
    job = db.session.get(Job, job_id)
    assert job is not None
    if job.started_at is None:
        job.started_at = utcnow()
        db.session.commit()
    try:
        _run_import(job)
    except Exception as exc:  # the job fails visibly; the files done so far stay done
        db.session.rollback()
        logger.exception("job %s failed", job_id)
        job = db.session.get(Job, job_id)
        assert job is not None
        _finish(job, JobStatus.FAILED,
                f"The import stopped on an unexpected error ({type(exc).__name__}); the "
                "files listed as imported are in the library, import the others again.")
        return
    _finish(job, JobStatus.DONE, None)


def _run_import(job: Job) -> None:
    params = _open(job.params_encrypted)
    options = ImportOptions(**params["options"])
    if job.progress_total is None:
        job.progress_total = _count(job, _sources(job.id, params))
        db.session.commit()
    done = db.session.scalar(select(db.func.count()).select_from(JobItem)
                             .where(JobItem.job_id == job.id)) or 0
    position = iter(range(done, 10**9))
    job_id = job.id
    actor = job.created_by

    def on_result(result: FileResult) -> None:
        db.session.add(_item(job_id, next(position), result))
        db.session.execute(update(Job).where(Job.id == job_id).values(
            progress_done=Job.progress_done + 1, heartbeat_at=utcnow()))

    import_files(_skip(_sources(job.id, params), done), actor=actor, options=options,
                 on_result=on_result, cases_by_study=_earlier_cases(job_id, options))


def _count(job: Job, items: Iterator[Source | FileResult]) -> int:
    """How many results the import will give (archives are read through to list their
    members), beating the heartbeat meanwhile: a 2,000-file archive takes a while."""
    count = 0
    last_beat = time.monotonic()
    for _ in items:
        count += 1
        if time.monotonic() - last_beat > HEARTBEAT_EVERY:
            job.heartbeat_at = utcnow()
            db.session.commit()
            last_beat = time.monotonic()
    return count


def _sources(job_id: int, params: dict[str, Any]) -> Iterator[Source | FileResult]:
    if "paths" in params:
        return sources_from_paths([Path(p) for p in params["paths"]])
    folder = spool_dir(job_id)
    return sources_from_stored_uploads(
        [(folder / u["file"], u["name"]) for u in params["uploads"]])


def _skip(items: Iterator[Source | FileResult], count: int) -> Iterator[Source | FileResult]:
    for n, item in enumerate(items):
        if n >= count:
            yield item


def _earlier_cases(job_id: int, options: ImportOptions) -> dict[str, Case]:
    """The cases an interrupted run of this job made, so the rest of their studies join
    them as they would have without the interruption."""
    cases: dict[str, Case] = {}
    images = db.session.scalars(
        select(CaseImage).join(JobItem, JobItem.image_id == CaseImage.id)
        .where(JobItem.job_id == job_id).order_by(JobItem.position))
    for image in images:
        cases.setdefault(case_group(image.study_uid, image.patient_pseudonym, options),
                         image.case)
    return cases


def _item(job_id: int, position: int, result: FileResult) -> JobItem:
    return JobItem(job_id=job_id, position=position, status=result.status,
                   name_encrypted=encrypt(_keys(), result.name), case_id=result.case_id,
                   image_id=result.image_id, reason=result.reason,
                   pixel_review_needed=result.pixel_review_needed)


def _finish(job: Job, status: JobStatus, error: str | None) -> None:
    job.status = status.value
    job.error = error
    job.finished_at = utcnow()
    record("job.finish", actor=None, object_type="job", object_id=job.id,
           status=status.value, files=job.progress_done)
    db.session.commit()
    shutil.rmtree(spool_dir(job.id), ignore_errors=True)


def recover_stalled() -> list[int]:
    """Queue again the running jobs whose worker stopped beating (a worker killed or
    restarted mid-job loses Huey's message with it). Run when a worker starts."""
    cutoff = utcnow() - _stale_after()
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
        raise JobError(f"Only a queued job can be cancelled; this one is {job.status}.")
    cancelled = _rows(db.session.execute(
        update(Job).where(Job.id == job.id, Job.status == JobStatus.QUEUED.value)
        .values(status=JobStatus.CANCELLED.value, finished_at=utcnow(),
                error=f"Cancelled by {actor.username}.")))
    if not cancelled:
        db.session.rollback()
        raise JobError("The job started meanwhile; only a queued job can be cancelled.")
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
    return decrypt(_keys(), item.name_encrypted)


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
        "items": [{"position": i.position, "name": item_name(i), "status": i.status,
                   "case_id": i.case_id, "reason": i.reason,
                   "pixel_review_needed": i.pixel_review_needed} for i in items],
    }
