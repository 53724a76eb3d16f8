"""Job pages: a person's own jobs (all of them for administrators), one job's progress and
per-file results or summary, its JSON status for the page's script, cancelling a queued
job, downloading a library export, and the administrators' buttons that start a library
export or the expiry reminders."""

from __future__ import annotations

from collections.abc import Callable

from flask import (
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import LazyString, gettext, pgettext
from flask_babel import lazy_gettext as _l
from flask_login import current_user  # type: ignore[import-untyped]
from markupsafe import Markup
from werkzeug.wrappers import Response

from app.audit import security_log
from app.auth.decorators import roles_required
from app.auth.roles import Role
from app.cases.forms import ActionForm
from app.cases.ingest import NOT_TRIED_REASON
from app.cases.models import CaseImage, CaseStatus
from app.cases.processed import NO_FILE_META_REASON
from app.cases.reasons import reason_markup, translate_reason
from app.cases.services import LIBRARY_ROLES
from app.extensions import db
from app.jobs import bp
from app.jobs.derivatives_rebuild import start_derivatives_rebuild
from app.jobs.library_export import (
    STATUSES,
    export_file,
    keep_for,
    kept_until,
    start_library_export,
)
from app.jobs.models import Job, JobItem, JobKind
from app.jobs.schemas import JobStatusArgs, JobStatusOut
from app.jobs.services import JobError, can_see_job, cancel_job, item_name, job_status, jobs_for
from app.validation import load_query

# What a job's progress counts, by kind (files unless said here).
UNITS = {JobKind.RESCORING.value: _l("attempts"), JobKind.LIBRARY_EXPORT.value: _l("cases"),
         JobKind.REMINDERS.value: _l("reminders"),
         JobKind.DERIVATIVES_REBUILD.value: _l("images"), "files": _l("files")}
# A job's stored status as the reader reads it (the page's script keeps the stored value
# in data-status).
JOB_STATUSES = {"queued": _l("queued"), "running": _l("running"), "done": _l("done"),
                # "failed" is also a certificate's exam verdict, said otherwise.
                "failed": LazyString(lambda: pgettext("job status", "failed")),
                "cancelled": _l("cancelled")}


@bp.app_template_filter("reason")
def reason_filter(text: str | None) -> Markup:
    """A stored reason (a refused file's, a failed job's) in the reader's language, its
    names and technical details marked translate="no"."""
    return reason_markup(text)


def shown_name(item: JobItem) -> str:
    """A result's name as the reader reads it: a file's own name as it is, the names the
    portal gives ("PACS study 1 of 2, image 3 of 5") in the reader's language."""
    return translate_reason(item_name(item))


@bp.context_processor
def _labels() -> dict[str, object]:
    return {"job_statuses": JOB_STATUSES,
            "case_statuses": {s.value: s.label for s in CaseStatus}}


def _job_or_404(job_id: int) -> Job:
    """Another person's job answers as a missing one: its existence is not theirs to know."""
    job = db.session.get(Job, job_id)
    if job is None or not can_see_job(current_user, job):
        abort(404, description=gettext("There is no job %(number)s of yours.", number=job_id))
    return job


@bp.route("/")
@roles_required(*LIBRARY_ROLES)
def index() -> str:
    return render_template("jobs/index.html", jobs=jobs_for(current_user),
                           all_jobs=current_user.has_role(Role.ADMIN), units=UNITS,
                           statuses=STATUSES, action_form=ActionForm())


@bp.route("/<int:job_id>")
@roles_required(*LIBRARY_ROLES)
def detail(job_id: int) -> str:
    job = _job_or_404(job_id)
    reports = {image.id: image.deid_report for image in db.session.scalars(
        db.select(CaseImage).where(CaseImage.id.in_(
            [i.image_id for i in job.items if i.image_id])))}
    return render_template("jobs/detail.html", job=job, items=job.items, name_of=shown_name,
                           reports=reports, no_meta_reason=NO_FILE_META_REASON,
                           not_tried_reason=NOT_TRIED_REASON,
                           cancel_form=ActionForm(),
                           may_cancel=current_user.has_role(Role.ADMIN),
                           unit=UNITS.get(job.kind, UNITS["files"]),
                           export_ready=export_file(job) is not None,
                           kept_until=kept_until(job) if job.kind == JobKind.LIBRARY_EXPORT.value
                           else None)


@bp.route("/<int:job_id>/status")
@roles_required(*LIBRARY_ROLES)
def status(job_id: int) -> Response:
    job = _job_or_404(job_id)
    args = load_query(JobStatusArgs())
    data = JobStatusOut().dump(job_status(job, after=args["after"]))
    # For the page's script: the reasons in the reader's language (the API keeps English).
    data["error"] = translate_reason(data["error"]) or None
    for item in data["items"]:
        item["reason"] = translate_reason(item["reason"]) or None
        item["name"] = translate_reason(item["name"])
    response = jsonify(data)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/<int:job_id>/cancel", methods=["POST"])
@roles_required(Role.ADMIN)
def cancel(job_id: int) -> Response | tuple[str, int]:
    job = _job_or_404(job_id)
    if not ActionForm().validate_on_submit():
        abort(400, description=gettext("The form expired; reload the page and try again."))
    try:
        cancel_job(job, actor=current_user)
    except JobError as exc:
        abort(409, description=str(exc))
    flash(gettext("Job %(number)s was cancelled.", number=job.id), "info")
    return redirect(url_for("jobs.detail", job_id=job.id))


@bp.route("/<int:job_id>/download")
@roles_required(*LIBRARY_ROLES)
def download(job_id: int) -> Response:
    """A library export's zip, for the job's owner and administrators (others: 404)."""
    job = _job_or_404(job_id)
    if job.kind != JobKind.LIBRARY_EXPORT.value:
        abort(404, description=gettext("Job %(number)s has no file to download.", number=job.id))
    path = export_file(job)
    if path is None:
        if not job.finished:
            abort(409, description=gettext(
                "Job %(number)s has not finished: its file is not ready.", number=job.id))
        if job.status != "done":
            abort(404, description=gettext("Job %(number)s %(status)s: it wrote no file.",
                                           number=job.id,
                                           status=JOB_STATUSES.get(job.status, job.status)))
        abort(410, description=gettext(
            "The export of job %(number)s was removed: exports are kept %(days)s days. Export "
            "the library again.", number=job.id, days=f"{keep_for().total_seconds() / 86400:g}"))
    security_log.emit("export", outcome="success", status=200, format="case library zip",
                      export="case library", job=job.id)
    return send_file(path, mimetype="application/zip", as_attachment=True,
                     download_name=f"case-library-job-{job.id}.zip", max_age=0)


def start_from_page(start: Callable[[], Job]) -> Response:
    """An administrator's button on the jobs page (CSRF-checked): queue the job and show
    it, or refuse with the reason (nothing queued)."""
    if not ActionForm().validate_on_submit():
        abort(400, description=gettext("The form expired; reload the page and try again."))
    try:
        job = start()
    except JobError as exc:
        abort(getattr(exc, "status", 400), description=str(exc))
    return redirect(url_for("jobs.detail", job_id=job.id), 303)


@bp.route("/library-export", methods=["POST"])
@roles_required(Role.ADMIN)
def library_export() -> Response:
    status = request.form.get("status", "")
    return start_from_page(lambda: start_library_export(status, actor=current_user))


@bp.route("/derivatives-rebuild", methods=["POST"])
@roles_required(Role.ADMIN)
def derivatives_rebuild() -> Response:
    every = request.form.get("every") == "1"
    return start_from_page(lambda: start_derivatives_rebuild(every=every, actor=current_user))
