"""Case imports as jobs: files uploaded through the library's page, or files and folders on
this machine (the command line), imported file by file through app.cases.ingest with a
per-file result recorded as each file is stored."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from flask_babel import gettext
from sqlalchemy import select

from app.auth.models import User
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
from app.jobs.lifecycle import (
    JobError,
    advance,
    encrypt_text,
    finish,
    new_job,
    seal,
    spool_dir,
    submit,
    unseal,
)
from app.jobs.models import Job, JobItem, JobKind, JobStatus
from app.sentences import N_, say

HEARTBEAT_EVERY = 5.0  # seconds, while a job lists its files


def start_upload_import(files: list[Any], *, actor: User, options: ImportOptions) -> Job:
    """Keep the uploaded files (Werkzeug FileStorage) on disk for the worker and queue
    their import. The files stay only until the job ends: they are the originals, with
    patient data, and are removed whatever the outcome."""
    files = [f for f in files if f and f.filename]
    if not files:
        raise JobError(gettext("Choose at least one file to import."))
    for storage in files:
        _check_upload(storage)
    job = new_job(JobKind.CASE_IMPORT, actor, {"uploads": [], "options": asdict(options)})
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
        finish(job, JobStatus.FAILED,
               say(N_("The uploaded files could not be kept for the import (%(cause)s); nothing "
                      "was imported."), cause=exc.strerror or type(exc).__name__))
        raise JobError(gettext(
            "The upload could not be kept for import (%(cause)s); nothing was imported.",
            cause=exc.strerror or type(exc).__name__)) from exc
    job.params_encrypted = seal({"uploads": uploads, "options": asdict(options)})
    db.session.commit()
    submit(job)
    return job


def _check_upload(storage: Any) -> None:
    """Refused here, before a job exists: an empty file, or a name promising an archive
    that is none, is a wrong pick rather than a file for the per-file report."""
    name = Path(storage.filename).name
    stream = storage.stream
    head = stream.read(4)
    stream.seek(0)
    if not head:
        raise JobError(gettext("%(name)s is empty: nothing was imported.", name=name))
    if name.lower().endswith(".zip") and not is_zip(head):
        raise JobError(gettext("%(name)s is not a .zip archive (it does not start as one); "
                               "nothing was imported.", name=name))


def start_path_import(paths: list[Path], *, actor: User | None, options: ImportOptions) -> Job:
    """Queue the import of files and folders on this machine (the command line)."""
    job = new_job(JobKind.CASE_IMPORT, actor, {"paths": [str(p.resolve()) for p in paths],
                                               "options": asdict(options)})
    submit(job)
    return job


def run_case_import(job: Job) -> None:
    params = unseal(job.params_encrypted)
    options = ImportOptions(**params["options"])
    if job.progress_total is None:
        job.progress_total = _count(job, _sources(job.id, params))
        db.session.commit()
    done = items_recorded(job.id)
    position = iter(range(done, 10**9))
    job_id = job.id

    def on_result(result: FileResult) -> None:
        record_item(job_id, next(position), result)

    import_files(_skip(_sources(job.id, params), done), actor=job.created_by, options=options,
                 on_result=on_result, cases_by_study=earlier_cases(job_id, options))


def items_recorded(job_id: int) -> int:
    return db.session.scalar(select(db.func.count()).select_from(JobItem)
                             .where(JobItem.job_id == job_id)) or 0


def record_item(job_id: int, position: int, result: FileResult) -> None:
    """One file's result and the job's progress, in the transaction that stores the file."""
    db.session.add(JobItem(job_id=job_id, position=position, status=result.status,
                           name_encrypted=encrypt_text(result.name), case_id=result.case_id,
                           image_id=result.image_id, reason=result.reason,
                           pixel_review_needed=result.pixel_review_needed))
    advance(job_id)


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


def earlier_cases(job_id: int, options: ImportOptions) -> dict[str, Case]:
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
