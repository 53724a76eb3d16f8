"""Programme editing and exceptions granted by hand, for programme leads and administrators."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response

from app.auth.decorators import roles_required
from app.auth.models import User
from app.auth.roles import Role
from app.certification import bp
from app.certification.dashboard import programmes as active_programmes
from app.certification.forms import (
    ExceptionForm,
    ProgrammeEditForm,
    ProgrammeForm,
    programme_data,
)
from app.certification.models import Certificate, Programme
from app.certification.routes import lead_scope
from app.certification.services import (
    VALID,
    CertificationError,
    create_programme,
    current_certificate,
    grant_exception,
    status,
    update_programme,
)
from app.extensions import db
from app.i18n import local_date
from app.qc.settings import check as check_qc
from app.qc.settings import set_qc_settings
from app.quizzes.models import Exercise

EDITORS_ONLY = _l(
    "Programmes apply in every country, so only administrators and programme leads for "
    "all countries may create or change them."
)


def _require_editor() -> None:
    if lead_scope() is not None:
        abort(403, description=str(EDITORS_ONLY))


def _programme_or_404(programme_id: int) -> Programme:
    programme = db.session.get(Programme, programme_id)
    if programme is None:
        abort(404, description=_("There is no such programme."))
    return programme


def _exercises() -> list[Exercise]:
    return list(db.session.scalars(select(Exercise).order_by(Exercise.title, Exercise.id)))


def _role_label(value: str) -> str:
    return Role(value).label


@bp.route("/programmes")
@roles_required(Role.PROGRAMME_LEAD, Role.ADMIN)
def programme_list() -> str:
    """Every programme; country-scoped leads see the list without the editing links."""
    rows = db.session.scalars(
        select(Programme)
        .options(selectinload(Programme.requirements))
        .order_by(Programme.active.desc(), Programme.title)
    ).all()
    return render_template("certification/programmes.html", programmes=rows,
                           may_edit=lead_scope() is None, role_label=_role_label)


def _render_programme_form(form: ProgrammeForm, programme: Programme | None,
                           status_code: int) -> tuple[str, int]:
    return render_template("certification/programme_form.html", form=form,
                           programme=programme), status_code


@bp.route("/programmes/new", methods=["GET", "POST"])
@roles_required(Role.PROGRAMME_LEAD, Role.ADMIN)
def new_programme() -> Response | tuple[str, int]:
    _require_editor()
    form = ProgrammeForm(exercises=_exercises())
    if not form.validate_on_submit():
        return _render_programme_form(form, None, 400 if request.method == "POST" else 200)
    try:
        check_qc(form.qc_settings())
        programme = create_programme(**form.values(), actor=current_user)
        set_qc_settings(programme, form.qc_settings(), actor=current_user)
    except CertificationError as exc:
        db.session.rollback()
        form.form_errors.append(exc.sentence)
        return _render_programme_form(form, None, exc.status)
    flash(_("Programme %(title)s created.", title=programme.title), "success")
    return redirect(url_for("certification.programme_list"))


@bp.route("/programmes/<int:programme_id>/edit", methods=["GET", "POST"])
@roles_required(Role.PROGRAMME_LEAD, Role.ADMIN)
def edit_programme(programme_id: int) -> Response | tuple[str, int]:
    _require_editor()
    programme = _programme_or_404(programme_id)
    options = {"exercises": _exercises(), "extra_roles": programme.eligible_roles or []}
    if request.method == "GET":
        form = ProgrammeEditForm(data=programme_data(programme), **options)
        form.add_spare_rows()
        return _render_programme_form(form, programme, 200)
    form = ProgrammeEditForm(**options)
    if not form.validate_on_submit():
        return _render_programme_form(form, programme, 400)
    try:
        check_qc(form.qc_settings())
        update_programme(programme, **form.values(), actor=current_user)
        set_qc_settings(programme, form.qc_settings(), actor=current_user)
    except CertificationError as exc:
        db.session.rollback()
        form.form_errors.append(exc.sentence)
        return _render_programme_form(form, programme, exc.status)
    flash(_("Programme %(title)s saved. Certificates already issued are unchanged.",
            title=programme.title), "success")
    return redirect(url_for("certification.programme_list"))


def _reader_in_scope(ref: str) -> User:
    """The reader by user name or e-mail, if the signed-in lead may act for them; someone
    outside the lead's countries gets the same answer as no one at all."""
    ref = ref.strip()
    reader = db.session.scalar(
        select(User).where((User.username == ref.lower()) | (User.email == ref.lower()))
    )
    scope = lead_scope()
    in_scope = reader is not None and (
        scope is None or (reader.clinic is not None and reader.clinic.country_code in scope)
    )
    if reader is None or not in_scope:
        message = (_("there is no reader %(name)s", name=repr(ref)) if scope is None else
                   _("there is no reader %(name)s in your countries", name=repr(ref)))
        raise CertificationError(message, 404)
    if not reader.active:
        raise CertificationError(
            _("the account of %(name)s is deactivated", name=reader.full_name), 409)
    return reader


def _grant(form: ExceptionForm) -> Certificate:
    reader = _reader_in_scope(form.reader.data or "")
    if reader.id == current_user.id:
        # An exception rests on someone else's judgement; a lead cannot certify themselves.
        raise CertificationError(_("you cannot grant an exception to yourself"), 403)
    programme = _programme_or_404(form.programme.data or 0)
    held = current_certificate(reader, programme)
    if held is not None and status(held) == VALID:
        raise CertificationError(
            _("%(name)s already holds a valid certificate for %(programme)s (%(code)s, "
              "until %(date)s)", name=reader.full_name, programme=programme.title,
              code=held.code, date=local_date(held.expires_at)),
            409,
        )
    return grant_exception(reader, programme, reason=form.reason.data or "", actor=current_user)


@bp.route("/exceptions/new", methods=["GET", "POST"])
@roles_required(Role.PROGRAMME_LEAD, Role.ADMIN)
def new_exception() -> Response | tuple[str, int]:
    """A certificate without the requirements, for a reader in the lead's countries."""
    if request.method == "GET":
        form = ExceptionForm(programmes=active_programmes(),
                             reader=request.args.get("user", ""),
                             programme=request.args.get("programme"))
        return render_template("certification/exception_form.html", form=form), 200
    form = ExceptionForm(programmes=active_programmes())
    if not form.validate_on_submit():
        return render_template("certification/exception_form.html", form=form), 400
    try:
        certificate = _grant(form)
    except CertificationError as exc:
        db.session.rollback()
        form.form_errors.append(exc.sentence)
        return render_template("certification/exception_form.html", form=form), exc.status
    flash(_("Certificate %(code)s issued to %(holder)s for %(programme)s as an exception.",
            code=certificate.code, holder=certificate.holder_name,
            programme=certificate.programme.title), "success")
    return redirect(url_for("certification.certificates"))
