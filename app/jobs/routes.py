"""Job pages: a person's own jobs (all of them for administrators), one job's progress and
per-file results, its JSON status for the page's script, and cancelling a queued job."""

from __future__ import annotations

from flask import abort, flash, jsonify, redirect, render_template, url_for
from flask_login import current_user  # type: ignore[import-untyped]
from werkzeug.wrappers import Response

from app.auth.decorators import roles_required
from app.auth.roles import Role
from app.cases.forms import ActionForm
from app.cases.ingest import NOT_TRIED_REASON
from app.cases.models import CaseImage
from app.cases.processing import NO_FILE_META_REASON
from app.cases.services import LIBRARY_ROLES
from app.extensions import db
from app.jobs import bp
from app.jobs.models import Job
from app.jobs.schemas import JobStatusArgs, JobStatusOut
from app.jobs.services import JobError, can_see_job, cancel_job, item_name, job_status, jobs_for
from app.validation import load_query


def _job_or_404(job_id: int) -> Job:
    """Another person's job answers as a missing one: its existence is not theirs to know."""
    job = db.session.get(Job, job_id)
    if job is None or not can_see_job(current_user, job):
        abort(404, description=f"There is no job {job_id} of yours.")
    return job


@bp.route("/")
@roles_required(*LIBRARY_ROLES)
def index() -> str:
    return render_template("jobs/index.html", jobs=jobs_for(current_user),
                           all_jobs=current_user.has_role(Role.ADMIN))


@bp.route("/<int:job_id>")
@roles_required(*LIBRARY_ROLES)
def detail(job_id: int) -> str:
    job = _job_or_404(job_id)
    reports = {image.id: image.deid_report for image in db.session.scalars(
        db.select(CaseImage).where(CaseImage.id.in_(
            [i.image_id for i in job.items if i.image_id])))}
    return render_template("jobs/detail.html", job=job, items=job.items, name_of=item_name,
                           reports=reports, no_meta_reason=NO_FILE_META_REASON,
                           not_tried_reason=NOT_TRIED_REASON,
                           cancel_form=ActionForm(),
                           may_cancel=current_user.has_role(Role.ADMIN))


@bp.route("/<int:job_id>/status")
@roles_required(*LIBRARY_ROLES)
def status(job_id: int) -> Response:
    job = _job_or_404(job_id)
    args = load_query(JobStatusArgs())
    response = jsonify(JobStatusOut().dump(job_status(job, after=args["after"])))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/<int:job_id>/cancel", methods=["POST"])
@roles_required(Role.ADMIN)
def cancel(job_id: int) -> Response | tuple[str, int]:
    job = _job_or_404(job_id)
    if not ActionForm().validate_on_submit():
        abort(400, description="The form expired; reload the page and try again.")
    try:
        cancel_job(job, actor=current_user)
    except JobError as exc:
        abort(409, description=str(exc))
    flash(f"Job {job.id} was cancelled.", "info")
    return redirect(url_for("jobs.detail", job_id=job.id))
