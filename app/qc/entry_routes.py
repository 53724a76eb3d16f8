"""QC records from the web: a file upload with its per-row report, the import template,
and one record entered by hand. Trainers (the QC centre's radiologists) and administrators."""

from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import current_user  # type: ignore[import-untyped]
from werkzeug.wrappers import Response as BaseResponse

from app.auth.decorators import roles_required
from app.auth.roles import Role
from app.i18n import N_
from app.qc import entry
from app.qc.files import MAX_FILE_BYTES, READS, template_csv, template_xlsx
from app.qc.forms import GRADE_LABELS, ImportForm, RecordForm
from app.qc.importing import ImportReport, import_file
from app.qc.models import DEFAULT_SCHEME, GRADE_VALUES
from app.qc.promote import promotable_records
from app.qc.routes import bp
from app.schemes.display import scheme_plain
from app.schemes.parts import Scheme

TEMPLATE_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def _scheme_or_400(key: str | None) -> Scheme:
    scheme = entry.usable_scheme(key)
    if scheme is None:
        abort(400, description=gettext("There is no reporting scheme %(key)s with a "
                                       "classification and a sputum decision.",
                                       key=(key or "")[:64]))
    return scheme


def _scheme_choices() -> list[tuple[str, str]]:
    return [(s.key, scheme_plain(s, "name")) for s in entry.usable_schemes()]


@bp.route("/template.<fmt>")
@roles_required(*entry.ENTRY_ROLES)
def template(fmt: str) -> Response:
    """The import template with two example rows, for the chosen scheme."""
    if fmt not in TEMPLATE_TYPES:
        abort(404, description=gettext("The template is a .csv or an .xlsx file."))
    scheme = _scheme_or_400(request.args.get("scheme"))
    body = template_csv(scheme).encode() if fmt == "csv" else template_xlsx(scheme)
    return Response(body, mimetype=TEMPLATE_TYPES[fmt], headers={
        "Content-Disposition": f'attachment; filename="qc-import-{scheme.key}.{fmt}"'})


# The function's name is not the endpoint's: it would shadow importing.import_file here.
@bp.route("/import", methods=["GET", "POST"], endpoint="import_file")
@roles_required(*entry.ENTRY_ROLES)
def import_file_page() -> tuple[str, int]:
    form = ImportForm()
    form.scheme.choices = _scheme_choices()
    if request.method == "GET":
        form.scheme.data = DEFAULT_SCHEME
    if not form.validate_on_submit():
        return _import_page(form, None), 400 if request.method == "POST" else 200
    upload = form.file.data
    data = upload.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        form.file.errors = [*form.file.errors, gettext(
            "the file is larger than %(limit)s MB", limit=MAX_FILE_BYTES // 1024**2)]
        return _import_page(form, None), 413
    report = import_file(data, upload.filename or "", actor=current_user,
                         default_scheme=form.scheme.data or DEFAULT_SCHEME)
    if report.refused:
        # A file we cannot read at all (row 0) is a bad request; rows refused, a 422.
        status = 400 if all(p.row == 0 for p in report.problems) else 422
        return _import_page(form, report), status
    return _import_page(form, report), 200


def _import_page(form: ImportForm, report: ImportReport | None) -> str:
    return render_template("qc/import.html", form=form, report=report,
                           max_megabytes=MAX_FILE_BYTES // 1024**2,
                           promotable=promotable_records())


# ---- one record by hand -------------------------------------------------------------------


def _record_form(scheme: Scheme) -> RecordForm:
    form = RecordForm()
    form.reader.choices = [("", gettext("— choose the reader —"))] + [
        (u.username, f"{u.full_name} ({u.username})") for u in entry.readers()]
    form.clinic.choices = [("", gettext("— the reader's clinic —"))] + [
        (c.name, c.name) for c in entry.clinics()]
    form.grade.choices = [("", gettext("— choose the grade —"))] + [
        (g, str(GRADE_LABELS[g])) for g in GRADE_VALUES]
    if current_user.has_role(Role.ADMIN):
        form.qc_radiologist.choices = [("", gettext("— choose the QC radiologist —"))] + [
            (u.username, f"{u.full_name} ({u.username})") for u in entry.qc_radiologists()]
        if request.method == "GET" and current_user.has_role(Role.TRAINER):
            form.qc_radiologist.data = current_user.username
    else:
        del form.qc_radiologist  # a trainer enters their own QC reads
    if request.method == "GET":
        form.scheme.data = scheme.key
    return form


_STATUS_SENTENCES = {
    "created": N_("The QC record was saved."),
    "updated": N_("This study already had a QC record for this reader: it was updated."),
    "unchanged": N_("This study already had the same QC record for this reader: nothing "
                    "changed."),
}


@bp.route("/records/new", methods=["GET", "POST"])
@roles_required(*entry.ENTRY_ROLES)
def new_record() -> tuple[str, int] | BaseResponse:
    key = request.form.get("scheme") if request.method == "POST" else request.args.get("scheme")
    scheme = _scheme_or_400(key)
    form = _record_form(scheme)
    if not form.validate_on_submit():
        return _record_page(form, scheme), 400 if request.method == "POST" else 200
    values = {name: form[name].data or "" for name in
              ("reader", "clinic", "read_date", "qc_date", "study_reference", "grade")}
    values["qc_radiologist"] = (form.qc_radiologist.data if "qc_radiologist" in form
                                else current_user.username)
    values.update(entry.reads_from_form(scheme, request.form))
    report = entry.enter_record(values, actor=current_user, scheme=scheme)
    if report.refused:
        for problem in report.problems:
            if problem.field in form and problem.field != "scheme":
                form[problem.field].errors = [*form[problem.field].errors, problem.text()]
            elif problem.field.startswith(READS):
                _read_errors(form).setdefault(problem.field, []).append(problem.text())
            else:
                form.form_errors.append(problem.text())
        return _record_page(form, scheme), 422
    status = report.outcomes[0].status
    flash(gettext(_STATUS_SENTENCES[status]), "success")
    # A fresh form: the study reference is not shown again.
    return redirect(url_for("qc.new_record", scheme=scheme.key), 303)


def _read_errors(form: RecordForm) -> dict[str, list[str]]:
    if not hasattr(form, "read_errors"):
        form.read_errors = {}  # type: ignore[attr-defined]
    return form.read_errors  # type: ignore[attr-defined,no-any-return]


def _record_page(form: RecordForm, scheme: Scheme) -> str:
    answers = entry.reads_from_form(scheme, request.form) if request.method == "POST" else {}
    return render_template("qc/new_record.html", form=form, scheme=scheme,
                           schemes=entry.usable_schemes(), answers=answers,
                           read_errors=_read_errors(form), reads=READS)
