"""PACS imports as jobs: the studies a trainer ticked are retrieved by a worker one at a time,
each whole into the job's folder within the per-study limits, then imported file by file
through the upload's sandboxed ingest and de-identification, with a per-file result.

A worker restarted mid-job takes up the study in hand again from its start: the study is
retrieved anew, and its files stored before the interruption come out of the ingest's
duplicate check as the images this job already recorded, so they are neither stored nor
listed twice. Which study is in hand, and the position its results start at, is noted in the
job's folder before any of its results is recorded.

The study UIDs are kept only in the job's sealed parameters; what was typed into the search
never reaches the job.

An import may carry a follow-up (``then``): named work that another area registered
(``register_follow_up``) and that the job does once its studies are in, with the ids of the
cases it made (a QC study promoted to the library attaches its reads to its new case,
app.qc.promote). The job layer imports nothing of that area; a follow-up taken up again
after a lost worker must find its work done and do nothing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app
from flask_babel import gettext
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from app.auth.models import User
from app.cases.ingest import (
    ALL_STORED,
    FileResult,
    ImportOptions,
    Item,
    Source,
    bounded_reader,
    import_files,
)
from app.db_types import utcnow
from app.extensions import db
from app.jobs.case_import import earlier_cases, items_recorded, record_item
from app.jobs.lifecycle import (
    JobError,
    finish,
    new_job,
    spool_dir,
    stale_after,
    submit,
    unseal,
)
from app.jobs.models import Job, JobItem, JobKind, JobStatus
from app.pacs.clients import (
    PacsClient,
    PacsError,
    SearchCriteria,
    study_uid_ok,
)
from app.pacs.models import PacsEndpoint
from app.pacs.retrieval import StudyLimits, StudyRefused, too_many_images
from app.pacs.services import client_of, study_limits
from app.sentences import N_, say

logger = logging.getLogger(__name__)

MAX_STUDIES_PER_IMPORT = 50
HEARTBEAT_EVERY = 5.0  # seconds, while the PACS answers (no file is done meanwhile)
IN_HAND = "in-hand.json"
STUDY_FOLDER = "study"
AFTER_FAILURE = N_("the studies listed as imported are in the library; import the others "
                   "again from the PACS search.")

#: (the job, the ids of the cases it made, the follow-up's own parameters)
FollowUp = Callable[[Job, list[int], dict[str, Any]], None]
FOLLOW_UPS: dict[str, FollowUp] = {}


def register_follow_up(name: str, run: FollowUp) -> None:
    FOLLOW_UPS[name] = run


def start_pacs_import(endpoint: PacsEndpoint, study_uids: list[str], *,
                      actor: User | None, then: dict[str, Any] | None = None) -> Job:
    """Queue the import of the ticked studies. Refused at once, with nothing queued: no
    study, too many, a malformed UID (JobError), or a PACS that cannot be used at all —
    unreachable, credentials refused (PacsError, from a quick echo). ``then`` names a
    registered follow-up and its parameters: ``{"name": ..., **parameters}``."""
    if then is not None and then.get("name") not in FOLLOW_UPS:
        raise ValueError(f"no follow-up {then.get('name')!r} is registered")
    uids = list(dict.fromkeys(u.strip() for u in study_uids if u.strip()))
    if not uids:
        raise JobError(gettext("No study was selected: tick the studies to import."))
    if len(uids) > MAX_STUDIES_PER_IMPORT:
        raise JobError(gettext("At most %(most)s studies can be imported at once (%(count)s "
                               "were selected).", most=MAX_STUDIES_PER_IMPORT, count=len(uids)))
    if not all(study_uid_ok(uid) for uid in uids):
        # Not quoted back: a UID identifies a patient's study.
        raise JobError(gettext(
            "A selected study has no valid Study Instance UID (digits and dots, at most 64 "
            "characters): search again and import from the results."))
    client_of(endpoint).echo()
    job = new_job(JobKind.PACS_IMPORT, actor, {
        "endpoint_id": endpoint.id, "study_uids": uids,
        "source": f"PACS {endpoint.name}"[:200], **({"then": then} if then else {})})
    submit(job)
    return job


@dataclass(frozen=True)
class _Study:
    number: int  # from 1, as shown: "PACS study 2 of 3"
    uid: str
    # Why it is refused before anything of it is retrieved.
    refusal: str | None = None
    # How many results it should give (the PACS's count of its images), for the total.
    expected: int = 1


def run_pacs_import(job: Job) -> None:
    params = unseal(job.params_encrypted)
    uids: list[str] = params["study_uids"]
    job_id = job.id
    endpoint = db.session.get(PacsEndpoint, params["endpoint_id"])
    if endpoint is None:
        finish(job, JobStatus.FAILED, say(N_("The PACS endpoint was removed before the import "
                                             "could run; %(after)s"), after=AFTER_FAILURE))
        return
    folder = spool_dir(job_id)
    # Trusted only when taking the job up again: a first run starts from the first study.
    in_hand = _in_hand(folder) if job.runs > 1 else None
    first_study = in_hand[0] if in_hand else 0
    limits = study_limits()
    try:
        client = client_of(endpoint)
        db.session.commit()  # nothing of the database is held while the PACS answers
        with _beating(job_id):
            client.echo()
            studies = [_plan(client, number, uid, limits)
                       for number, uid in enumerate(uids, start=1) if number > first_study]
    except PacsError as exc:
        finish(job, JobStatus.FAILED, say(N_("The PACS could not be used: %(reason)s; %(after)s"),
                                          reason=str(exc), after=AFTER_FAILURE))
        return
    options = ImportOptions(source=params["source"])
    recorder = _Recorder(job_id)
    unwritable: list[OSError] = []
    items = _items(job_id, client, studies, len(uids), in_hand, recorder, limits, unwritable)
    import_files(items, actor=job.created_by, options=options, on_result=recorder,
                 cases_by_study=earlier_cases(job_id, options))
    # The PACS may have sent more or fewer images than it listed: the total is what was done.
    db.session.execute(update(Job).where(Job.id == job_id)
                       .values(progress_total=Job.progress_done))
    db.session.commit()
    if params.get("then"):
        then = dict(params["then"])
        FOLLOW_UPS[then.pop("name")](job, cases_made(job_id), then)
    if unwritable:
        error = unwritable[0]
        finish(job, JobStatus.FAILED, say(N_("The job's folder on the worker could not be "
                                             "written (%(cause)s): check JOB_SPOOL_PATH; "
                                             "%(after)s"),
                                          cause=error.strerror or type(error).__name__,
                                          after=AFTER_FAILURE))


def cases_made(job_id: int) -> list[int]:
    """The cases holding this job's images, in the order of its results: the cases it made
    first, then those a study already in the library was found in (its images came back as
    duplicates of theirs)."""
    rows = db.session.execute(
        select(JobItem.case_id, JobItem.status).where(
            JobItem.job_id == job_id, JobItem.status.in_(("imported", "duplicate")),
            JobItem.case_id.is_not(None))
        .order_by(JobItem.position)).all()
    made = [case_id for case_id, status in rows if status == "imported" and case_id is not None]
    found = [case_id for case_id, status in rows
             if status == "duplicate" and case_id is not None]
    return list(dict.fromkeys(made + found))


def _plan(client: PacsClient, number: int, uid: str, limits: StudyLimits) -> _Study:
    """What the PACS lists for the study: refused here when it is not there, holds no chest
    radiograph or more images than the limit, so nothing of it is retrieved."""
    if not study_uid_ok(uid):
        return _Study(number, uid, refusal=N_("not a valid Study Instance UID"))
    try:
        found = client.search(SearchCriteria(study_uid=uid, modality="any"))
    except PacsError as exc:
        return _Study(number, uid, refusal=say(N_("%(reason)s; nothing of this study was "
                                                  "imported"), reason=str(exc)))
    hit = next((h for h in found if h.study_uid == uid), None)
    if hit is None:
        return _Study(number, uid, refusal=N_("the PACS does not hold this study"))
    if hit.modalities and not hit.importable:
        shown = ", ".join(m for m in hit.modalities if m.isalnum() and len(m) <= 4)
        if not shown:
            return _Study(number, uid, refusal=N_(
                "the study holds other images, not chest radiographs: only CR and DX studies "
                "are imported; nothing of it was retrieved"))
        return _Study(number, uid, refusal=say(N_(
            "the study holds %(modalities)s images, not chest radiographs: only CR and DX "
            "studies are imported; nothing of it was retrieved"), modalities=shown))
    if hit.instances is not None and hit.instances > limits.max_images:
        return _Study(number, uid, refusal=say(N_(
            "%(reason)s: the PACS lists %(count)s; nothing of it was retrieved"),
            reason=too_many_images(limits.max_images), count=hit.instances))
    return _Study(number, uid, expected=max(hit.instances or 1, 1))


def _items(job_id: int, client: PacsClient, studies: list[_Study], total: int,
           in_hand: tuple[int, int] | None, recorder: _Recorder, limits: StudyLimits,
           unwritable: list[OSError]) -> Iterator[Item]:
    """Each study's results and files in turn. Before each study the ingest is told to
    store every file it has in hand (it parses several at once), so a study's note is
    written after the study before it is wholly recorded and before anything of it is.
    Stops, the error in ``unwritable``, when the note cannot be written: a study taken up
    again without it could be listed twice."""
    folder = spool_dir(job_id)
    for n, study in enumerate(studies):
        yield ALL_STORED
        if in_hand is not None and study.number - 1 == in_hand[0]:
            first = in_hand[1]
            recorder.take_up(first)
        else:
            first = items_recorded(job_id)
            try:
                _note_in_hand(folder, study.number - 1, first)
            except OSError as exc:
                unwritable.append(exc)
                return
            recorder.take_up(None)
        rest = sum(s.expected for s in studies[n + 1:])
        _set_total(job_id, first + study.expected + rest)
        found = _study_items(job_id, client, study, total, folder / STUDY_FOLDER, limits)
        _set_total(job_id, first + len(found) + rest)
        yield from found


def _study_items(job_id: int, client: PacsClient, study: _Study, total: int, folder: Path,
                 limits: StudyLimits) -> list[Source | FileResult]:
    """The study retrieved whole into ``folder``, as ingest items; or its one refusal, with
    nothing of it imported."""
    # Named by position only: descriptions and identifiers may carry patient data.
    label = say(N_("PACS study %(study)s of %(total)s"), study=study.number, total=total)
    if study.refusal:
        return [FileResult(label, "rejected", reason=study.refusal)]
    try:
        shutil.rmtree(folder, ignore_errors=True)  # an interrupted run's part of the study
        folder.mkdir(mode=0o700, parents=True)
        with _beating(job_id):
            retrieved = client.retrieve(study.uid, folder, limits)
    except (PacsError, StudyRefused) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        return [FileResult(label, "rejected", reason=say(
            N_("%(reason)s; nothing of this study was imported"), reason=str(exc)))]
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        return [FileResult(label, "rejected", reason=say(N_(
            "the study could not be kept on the worker's disk for its import (%(cause)s); "
            "nothing of this study was imported"), cause=exc.strerror or type(exc).__name__))]
    if not retrieved.files:
        return [FileResult(label, "rejected", reason=N_("the PACS sent no CR or DX images for it"))]
    found: list[Source | FileResult] = []
    if retrieved.failed:
        found.append(FileResult(
            say(N_("%(label)s, %(count)s image(s)"), label=label, count=retrieved.failed),
            "rejected",
            reason=N_("the PACS did not send these images (not CR or DX images, or a transfer "
                      "the PACS refused)")))
    file_limit = int(current_app.config["INGEST_FILE_MAX_BYTES"])
    count = len(retrieved.files)
    for number, path in enumerate(retrieved.files, start=1):
        found.append(Source(say(N_("%(label)s, image %(number)s of %(count)s"), label=label,
                                number=number, count=count),
                            bounded_reader(path, file_limit)))
    return found




class _Recorder:
    """Records each result as the job's next item; when a study is taken up again, skips
    the results recorded before the interruption: an image stored then comes back as a
    duplicate of that very image, a refusal with the same reason."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.recorded_images: Counter[int] = Counter()
        self.recorded_others: Counter[tuple[str, str]] = Counter()

    def take_up(self, first_position: int | None) -> None:
        self.recorded_images.clear()
        self.recorded_others.clear()
        if first_position is None:
            return
        for item in db.session.scalars(select(JobItem).where(
                JobItem.job_id == self.job_id, JobItem.position >= first_position)):
            if item.image_id is not None:
                self.recorded_images[item.image_id] += 1
            else:
                self.recorded_others[(item.status, item.reason or "")] += 1

    def __call__(self, result: FileResult) -> None:
        if result.status == "duplicate" and self.recorded_images[result.image_id or 0] > 0:
            self.recorded_images[result.image_id or 0] -= 1
            return
        key = (result.status, result.reason or "")
        if result.status != "imported" and self.recorded_others[key] > 0:
            self.recorded_others[key] -= 1
            return
        # Counted, not carried along: a storing transaction that was rolled back leaves
        # no gap in the positions the job page counts on.
        record_item(self.job_id, items_recorded(self.job_id), result)


def _note_in_hand(folder: Path, study_index: int, first_position: int) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    note = folder / (IN_HAND + ".new")
    note.write_text(json.dumps({"study": study_index, "first_position": first_position}))
    os.replace(note, folder / IN_HAND)  # whole or not at all, whenever the worker stops


def _in_hand(folder: Path) -> tuple[int, int] | None:
    try:
        note = json.loads((folder / IN_HAND).read_text())
        return int(note["study"]), int(note["first_position"])
    except FileNotFoundError:
        return None


def _set_total(job_id: int, total: int) -> None:
    db.session.execute(update(Job).where(Job.id == job_id).values(progress_total=total))
    db.session.commit()


@contextmanager
def _beating(job_id: int) -> Iterator[None]:
    """Beat the job's heartbeat from a thread of its own while the PACS answers: a large
    study takes minutes with no file done to beat it, and a job that stops beating is
    taken up by another worker."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    every = min(HEARTBEAT_EVERY, stale_after().total_seconds() / 3)
    stop = threading.Event()

    def beat() -> None:
        with app.app_context():  # its own database session
            try:
                while not stop.wait(every):
                    try:
                        db.session.execute(update(Job).where(Job.id == job_id)
                                           .values(heartbeat_at=utcnow()))
                        db.session.commit()
                    except SQLAlchemyError as exc:  # a busy database: beat at the next turn
                        db.session.rollback()
                        logger.warning("job %s: heartbeat not written (%s)", job_id,
                                       type(exc).__name__)
            finally:
                db.session.remove()

    thread = threading.Thread(target=beat, name=f"job-{job_id}-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
