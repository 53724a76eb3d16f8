"""Re-making the display derivatives of stored images as a job: the work is
app.cases.rebuild.rebuild_derivatives (each image rebuilt from its stored DICOM and
committed on its own), started by an administrator from the jobs page or by
`cases rebuild-derivatives --background`, progress counted in images.

Taken up again after its worker died, or started again, the job simply runs again, which is
safe: the images rebuilt before are committed and now current, so they are skipped (with
"every image", they are re-made once more from the same DICOM, to the same files).
"""

from __future__ import annotations

from typing import Any

from flask_babel import gettext
from sqlalchemy import func, select, update

from app.auth.models import User
from app.cases.models import CaseImage
from app.db_types import utcnow
from app.extensions import db
from app.jobs.lifecycle import new_job, submit, unseal
from app.jobs.models import Job, JobKind
from app.sentences import N_

AFTER_FAILURE = N_("the images counted as done keep their new derivatives; start the "
                   "rebuild again for the others.")
# The images whose failure the job's summary names; the count says how many more failed.
FAILURES_SHOWN = 50


def start_derivatives_rebuild(*, every: bool, actor: User | None) -> Job:
    """Queue the rebuild of the images stored before the current derivatives (every image
    with ``every``)."""
    job = new_job(JobKind.DERIVATIVES_REBUILD, actor, {"every": bool(every)})
    submit(job)
    return job


def run_derivatives_rebuild(job: Job) -> None:
    every = bool(unseal(job.params_encrypted)["every"])
    job_id = job.id
    # Counted again on each run: the run goes through every image (skipping the current
    # ones), so its progress starts from 0 whatever a lost run had counted.
    job.progress_total = db.session.scalar(select(func.count(CaseImage.id))) or 0
    job.progress_done = 0
    db.session.commit()
    done = 0

    def on_image(_image: CaseImage) -> None:
        # After the image's own commit (rebuild_image commits it): a count that says how far
        # the run is and a heartbeat, so a running rebuild is not taken for a dead one.
        nonlocal done
        done += 1
        db.session.execute(update(Job).where(Job.id == job_id).values(
            progress_done=done, heartbeat_at=utcnow()))
        db.session.commit()

    # Loaded by the run only: the rebuild needs the imaging modules, which a web worker or a
    # command that does not rebuild never loads (tests/test_startup.py).
    from app.cases.rebuild import rebuild_derivatives

    summary = rebuild_derivatives(every=every, on_image=on_image)
    job = db.session.get_one(Job, job_id)
    job.summary = {
        "every": every,
        "rebuilt": summary.rebuilt,
        "skipped": summary.skipped,
        "failed": len(summary.failed),
        "failures": [{"image_id": image_id, "reason": reason}
                     for image_id, reason in summary.failed[:FAILURES_SHOWN]],
    }
    db.session.commit()


def summary_line(summary: dict[str, Any]) -> str:
    """The outcome for the command line, in its language."""
    return gettext("%(rebuilt)s image(s) rebuilt, %(skipped)s already current, %(failed)s "
                   "failed.", rebuilt=summary["rebuilt"], skipped=summary["skipped"],
                   failed=summary["failed"])
