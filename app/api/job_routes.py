"""Jobs in the API: the caller's own (every job for administrators), each with its state,
progress and per-file results, as the job page shows them (the same access rule, the same
status as the page's script reads)."""

from __future__ import annotations

from typing import Any

from flask import abort
from flask_login import current_user  # type: ignore[import-untyped]

from app.api import bp
from app.auth.decorators import roles_required
from app.cases.services import LIBRARY_ROLES
from app.extensions import db
from app.jobs.models import Job
from app.jobs.schemas import JobOut, JobStatusArgs, JobStatusOut
from app.jobs.services import can_see_job, job_status, jobs_for


@bp.route("/jobs")
@bp.response(200, JobOut(many=True))
@roles_required(*LIBRARY_ROLES)
def list_jobs() -> list[dict[str, Any]]:
    """The caller's jobs, newest first (administrators: everyone's), as on the jobs page:
    at most the latest 200."""
    return [{"id": job.id, "kind": job.kind, "status": job.status, "done": job.progress_done,
             "total": job.progress_total, "error": job.error, "finished": job.finished,
             "summary": job.summary,
             "created_by": job.created_by_id, "created_at": job.created_at,
             "started_at": job.started_at, "finished_at": job.finished_at}
            for job in jobs_for(current_user)]


@bp.route("/jobs/<int:job_id>")
@bp.arguments(JobStatusArgs, location="query")
@bp.response(200, JobStatusOut)
@roles_required(*LIBRARY_ROLES)
def get_job(args: dict[str, Any], job_id: int) -> dict[str, Any]:
    """One job: its state, files done of the total, and the per-file results from
    ``after`` on (poll with the number of results already read)."""
    job = db.session.get(Job, job_id)
    if job is None or not can_see_job(current_user, job):
        # Another person's job answers as a missing one, as on the job page.
        abort(404, description=f"There is no job {job_id} of yours.")
    return job_status(job, after=args["after"])
