"""Library export as a job: the case files and de-identified images that
app.cases.library_files.export_library writes, packed as one .zip in the job's folder and
kept there for download (by the job's owner and administrators) for
LIBRARY_EXPORT_KEEP_DAYS days, then removed by the workers' hourly clean-up.

Taken up again after its worker died, the job starts over: what the lost run wrote is
removed first, and the zip is put in place whole (written under another name, then
renamed), so a download never sees half a file."""

from __future__ import annotations

import os
import shutil
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

from flask import Flask, current_app
from flask_babel import gettext
from sqlalchemy import select, update

from app.audit import security_log
from app.auth.models import User
from app.cases.library_files import LibraryError, export_library
from app.cases.models import Case, CaseStatus
from app.db_types import utcnow
from app.extensions import db
from app.jobs.lifecycle import JobError, finish, new_job, spool_dir, unseal
from app.jobs.models import Job, JobKind, JobStatus
from app.jobs.queue import Periodic, enqueue
from app.sentences import N_, say

ALL = "all"
STATUSES = (*(s.value for s in CaseStatus), ALL)
ZIP_NAME = "case-library.zip"


def start_library_export(status: str, *, actor: User | None,
                         destination: str | None = None) -> Job:
    """Queue an export of the cases of ``status`` ("all": every case). ``destination`` is
    the folder the command line unpacks it into, for the security log."""
    if status not in STATUSES:
        raise JobError(gettext("Export cases of one status (%(statuses)s), not %(given)s.",
                               statuses=", ".join(STATUSES), given=repr(status[:40])))
    job = new_job(JobKind.LIBRARY_EXPORT, actor,
                  {"status": status, "destination": destination})
    enqueue(job.id)
    return job


def run_library_export(job: Job) -> None:
    params = unseal(job.params_encrypted)
    query = select(Case).order_by(Case.id)
    if params["status"] != ALL:
        query = query.where(Case.status == params["status"])
    cases = list(db.session.scalars(query))
    job_id = job.id
    job.progress_total = len(cases)
    job.progress_done = 0
    db.session.commit()
    folder = spool_dir(job_id)
    shutil.rmtree(folder, ignore_errors=True)  # what a lost run of this job left
    staging = folder / "export"
    log = {"format": "case library", "export": "case library", "job": job_id,
           "folder": params.get("destination")}

    def on_case(written: int) -> None:
        db.session.execute(update(Job).where(Job.id == job_id).values(
            progress_done=written, heartbeat_at=utcnow()))
        db.session.commit()

    try:
        export_library(staging, cases, on_case=on_case)
        _pack(staging, folder / ZIP_NAME)
    except (LibraryError, OSError) as exc:
        db.session.rollback()
        reason = str(exc) if isinstance(exc, LibraryError) else (
            say(N_("the export could not be written (%(cause)s)"),
                cause=exc.strerror or type(exc).__name__))
        security_log.emit("export", outcome="failure", user=job.created_by, reason=reason,
                          **log)
        finish(job, JobStatus.FAILED,  # files removed
               say(N_("Nothing was exported: %(reason)s."), reason=reason))
        return
    job = db.session.get_one(Job, job_id)
    job.summary = {"status": params["status"], "cases": len(cases), "file": ZIP_NAME,
                   "bytes": (folder / ZIP_NAME).stat().st_size}
    security_log.emit("export", outcome="success", user=job.created_by, cases=len(cases),
                      **log)
    finish(job, JobStatus.DONE, None, keep_files=True)


def _pack(staging: Path, target: Path) -> None:
    """The export as one zip, put in place whole: written under another name, then renamed
    (a download never sees half a file), and the unpacked files removed."""
    partial = target.with_name(target.name + ".part")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(staging.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(staging).as_posix())
    os.replace(partial, target)
    shutil.rmtree(staging)


def keep_for() -> timedelta:
    return timedelta(days=float(current_app.config["LIBRARY_EXPORT_KEEP_DAYS"]))


def kept_until(job: Job) -> datetime | None:
    if job.finished_at is None:
        return None
    return job.finished_at + keep_for()


def export_file(job: Job) -> Path | None:
    """The job's zip while it is kept, else None."""
    if job.kind != JobKind.LIBRARY_EXPORT.value or job.status != JobStatus.DONE.value:
        return None
    until = kept_until(job)
    path = spool_dir(job.id) / ZIP_NAME
    if until is None or until <= utcnow() or not path.is_file():
        return None
    return path


def remove_expired_exports() -> list[int]:
    """Remove the zips kept past LIBRARY_EXPORT_KEEP_DAYS (the workers do it every hour);
    returns the jobs whose file was removed."""
    removed = []
    ended = db.session.scalars(
        select(Job).where(Job.kind == JobKind.LIBRARY_EXPORT.value,
                          Job.finished_at < utcnow() - keep_for()).order_by(Job.id))
    for job in ended:
        folder = spool_dir(job.id)
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(job.id)
    return removed


def export_clean_up(app: Flask) -> Periodic:
    """The workers' hourly clean-up; a LIBRARY_EXPORT_KEEP_DAYS that is no number of days
    stops the app at start."""
    days = app.config["LIBRARY_EXPORT_KEEP_DAYS"]
    if isinstance(days, bool) or not isinstance(days, int | float) or not 0 < days <= 3650:
        raise ValueError("LIBRARY_EXPORT_KEEP_DAYS must be a number of days above 0, "
                         f"not {days!r}")
    return Periodic("remove_expired_exports", remove_expired_exports, minute="17")
