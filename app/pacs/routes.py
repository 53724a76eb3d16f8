"""Pages: PACS endpoints (administrators), and the trainers' search → select → import.

The search is a POST and its results are rendered straight into the answer: typed patient
IDs and accession numbers never appear in a URL (and so in no access log or browser history),
and are not kept in the session or anywhere else."""

from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import current_user  # type: ignore[import-untyped]
from werkzeug.wrappers import Response as Redirect
from wtforms import SelectChoice  # type: ignore[import-untyped]

from app.auth.decorators import roles_required
from app.auth.roles import Role
from app.cases.reasons import translate_reason
from app.cases.services import LIBRARY_ROLES
from app.extensions import db
from app.jobs.lifecycle import JobError
from app.jobs.pacs_import import start_pacs_import
from app.pacs import bp
from app.pacs.clients import PacsError, SearchCriteria, StudyHit
from app.pacs.forms import ActionForm, EndpointForm, SearchForm
from app.pacs.models import PacsEndpoint
from app.pacs.services import (
    EndpointError,
    EndpointSettings,
    delete_endpoint,
    endpoints,
    save_endpoint,
    search,
    test_connection,
    thumbnail,
)

# A PACS that cannot be used is the gateway's failure, not the request's.
PACS_FAILED = 502


def _endpoint_or_404(endpoint_id: int) -> PacsEndpoint:
    endpoint = db.session.get(PacsEndpoint, endpoint_id)
    if endpoint is None:
        abort(404, description=gettext("There is no PACS endpoint %(number)s.",
                                       number=endpoint_id))
    return endpoint


def _settings(form: EndpointForm) -> EndpointSettings:
    typed = bool(form.username.data or form.password.data)
    if form.clear_credentials.data and not typed:
        username, password = "", ""
    elif typed:
        username, password = form.username.data or "", form.password.data or ""
    else:
        username = password = None  # type: ignore[assignment]  # keep the stored ones
    return EndpointSettings(
        name=(form.name.data or "").strip(), kind=form.kind.data or "",
        url=(form.url.data or "").strip(), host=(form.host.data or "").strip(),
        port=form.port.data, called_ae=(form.called_ae.data or "").strip(),
        calling_ae=(form.calling_ae.data or "").strip(), username=username, password=password)


@bp.route("/endpoints", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def endpoint_list() -> Redirect | tuple[str, int]:
    form = EndpointForm()
    status = 200
    if form.validate_on_submit():
        try:
            endpoint = save_endpoint(_settings(form), actor=current_user)
        except EndpointError as exc:
            form.form_errors.append(str(exc))
            status = 400
        else:
            flash(gettext("PACS endpoint %(name)s added.", name=endpoint.name), "success")
            return redirect(url_for("pacs.endpoint_detail", endpoint_id=endpoint.id))
    elif request.method == "POST":
        status = 400
    return render_template("pacs/endpoints.html", form=form, endpoints=endpoints()), status


@bp.route("/endpoints/<int:endpoint_id>", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def endpoint_detail(endpoint_id: int) -> Redirect | tuple[str, int]:
    endpoint = _endpoint_or_404(endpoint_id)
    initial = {"name": endpoint.name, "kind": endpoint.kind, "url": endpoint.url,
               "host": endpoint.host, "port": endpoint.port, "called_ae": endpoint.called_ae,
               "calling_ae": endpoint.calling_ae}
    form = EndpointForm(data=initial if request.method == "GET" else None)
    status = 200
    if form.validate_on_submit():
        try:
            save_endpoint(_settings(form), actor=current_user, endpoint=endpoint)
        except EndpointError as exc:
            db.session.rollback()
            form.form_errors.append(str(exc))
            status = 400
        else:
            flash(gettext("Saved."), "success")
            return redirect(url_for("pacs.endpoint_detail", endpoint_id=endpoint.id))
    elif request.method == "POST":
        status = 400
    form.username.data = form.password.data = ""  # never echoed back
    return render_template("pacs/endpoint.html", form=form, endpoint=endpoint,
                           action_form=ActionForm(), outcome=None), status


@bp.route("/endpoints/<int:endpoint_id>/test", methods=["POST"])
@roles_required(Role.ADMIN)
def endpoint_test(endpoint_id: int) -> tuple[str, int]:
    endpoint = _endpoint_or_404(endpoint_id)
    action_form = ActionForm()
    if not action_form.validate_on_submit():
        abort(400, description=gettext("The form's security token is missing or has expired."))
    worked, message = test_connection(endpoint)
    initial = {"name": endpoint.name, "kind": endpoint.kind, "url": endpoint.url,
               "host": endpoint.host, "port": endpoint.port, "called_ae": endpoint.called_ae,
               "calling_ae": endpoint.calling_ae}
    form = EndpointForm(formdata=None, data=initial)
    return render_template("pacs/endpoint.html", form=form, endpoint=endpoint,
                           action_form=action_form, outcome=(worked, message)), \
        200 if worked else PACS_FAILED


@bp.route("/endpoints/<int:endpoint_id>/delete", methods=["POST"])
@roles_required(Role.ADMIN)
def endpoint_delete(endpoint_id: int) -> Redirect:
    endpoint = _endpoint_or_404(endpoint_id)
    if not ActionForm().validate_on_submit():
        abort(400, description=gettext("The form's security token is missing or has expired."))
    delete_endpoint(endpoint, actor=current_user)
    flash(gettext("PACS endpoint removed."), "success")
    return redirect(url_for("pacs.endpoint_list"))


def _search_form() -> SearchForm:
    form = SearchForm()
    form.endpoint.choices = [SelectChoice(e.id, f"{e.name} ({e.pacs_kind.label.split(' ')[0]})")
                             for e in endpoints()]
    return form


def _criteria(form: SearchForm) -> SearchCriteria | str:
    values = {name: (getattr(form, name).data or "").strip()
              for name in ("accession", "patient_id", "description")}
    for name, value in values.items():
        # The DICOM value separator would turn one typed value into several.
        if "\\" in value:
            return gettext("%(field)s: a backslash cannot be searched for.",
                           field=getattr(form, name).label.text)
    return SearchCriteria(date_from=form.date_from.data, date_to=form.date_to.data,
                          modality=form.modality.data or "", **values)


@bp.route("/", methods=["GET", "POST"])
@roles_required(*LIBRARY_ROLES)
def search_page() -> tuple[str, int]:
    form = _search_form()
    hits: list[StudyHit] | None = None
    error = None
    status = 200
    endpoint = None
    if request.method == "POST":
        if not form.validate_on_submit():
            status = 400
        else:
            endpoint = db.session.get(PacsEndpoint, form.endpoint.data)
            criteria = _criteria(form)
            if endpoint is None:
                error, status = gettext("There is no such PACS endpoint."), 400
            elif isinstance(criteria, str):
                error, status = criteria, 400
            else:
                try:
                    hits = search(endpoint, criteria)
                except PacsError as exc:
                    error = gettext("The search failed: %(reason)s.",
                                    reason=translate_reason(str(exc)))
                    status = PACS_FAILED
    return render_template("pacs/search.html", form=form, hits=hits, error=error,
                           endpoint=endpoint, import_form=ActionForm()), status


@bp.route("/import", methods=["POST"])
@roles_required(*LIBRARY_ROLES)
def import_studies() -> Redirect | tuple[str, int]:
    """Queue the import of the ticked studies and answer at once with the job's page; what
    can be refused now is refused here, with nothing queued."""
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400, description=gettext("The form's security token is missing or has expired. "
                                       "Search again and import from the results."))
    try:
        endpoint_id = int(request.form.get("endpoint", ""))
    except ValueError:
        abort(400, description=gettext("No PACS endpoint was given."))
    endpoint = db.session.get(PacsEndpoint, endpoint_id)
    if endpoint is None:
        abort(400, description=gettext("There is no such PACS endpoint."))
    try:
        job = start_pacs_import(endpoint, request.form.getlist("study"), actor=current_user)
    except JobError as exc:
        return _import_refused(endpoint, gettext("%(reason)s Nothing was imported.", reason=exc),
                               400)
    except PacsError as exc:
        return _import_refused(endpoint, gettext("Nothing was imported: %(reason)s.",
                                                 reason=translate_reason(str(exc))), PACS_FAILED)
    return redirect(url_for("jobs.detail", job_id=job.id), 303)


def _import_refused(endpoint: PacsEndpoint, error: str, status: int) -> tuple[str, int]:
    search_form = _search_form()
    search_form.endpoint.data = endpoint.id
    return render_template("pacs/search.html", form=search_form, hits=None, error=error,
                           endpoint=endpoint, import_form=ActionForm()), status


@bp.route("/<int:endpoint_id>/thumbnail/<study_uid>")
@roles_required(*LIBRARY_ROLES)
def study_thumbnail(endpoint_id: int, study_uid: str) -> Response:
    """The PACS's rendering of the study's first image, fetched by the portal so the
    browser never holds the PACS's address or credentials."""
    endpoint = _endpoint_or_404(endpoint_id)
    try:
        image = thumbnail(endpoint, study_uid)
    except PacsError:
        image = None
    if image is None:
        abort(404, description=gettext("The PACS has no rendered picture of this study."))
    response = Response(image, mimetype="image/jpeg")
    response.headers["Cache-Control"] = "private, no-store"
    return response
