from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import current_user
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from app.admin import bp
from app.admin.audit_log import (
    AuditFilter,
    AuditFilterError,
    events_query,
    known_actions,
    known_object_types,
    make_filter,
    readable_events,
)
from app.admin.audit_sentences import action_label, object_type_label
from app.admin.forms import (
    ActionForm,
    AuditFilterForm,
    ClinicForm,
    SelectChoice,
    UserCreateForm,
    UserEditForm,
)
from app.auth import second_factor
from app.auth.decorators import roles_required
from app.auth.invitations import Invitation, issue_invitation
from app.auth.models import Clinic, User
from app.auth.roles import Role
from app.auth.services import (
    AccountError,
    country_name,
    create_clinic,
    create_user,
    set_active,
    update_user,
)
from app.extensions import db


@bp.before_request
@roles_required(Role.ADMIN)
def _admins_only() -> None:
    """Every page in this area is for administrators."""


def _clinic_choices() -> list[tuple[int, str]]:
    clinics = db.session.scalars(select(Clinic).order_by(Clinic.name)).all()
    return [(c.id, f"{c.name} ({c.city}, {c.country_code})") for c in clinics]


def _clinic_or_none(clinic_id: int | None) -> Clinic | None:
    return db.session.get(Clinic, clinic_id) if clinic_id else None


def _user_or_404(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404, description=gettext("There is no user %(id)s.", id=user_id))
    return user


@bp.route("/")
def index() -> str:
    counts = {
        "users": db.session.scalar(select(func.count(User.id)).where(User.active)),
        "clinics": db.session.scalar(select(func.count(Clinic.id))),
    }
    recent = readable_events(db.session.scalars(events_query().limit(10)).all())
    return render_template("admin/index.html", counts=counts, recent=recent)


@bp.route("/users")
def users() -> str:
    rows = db.session.scalars(select(User).order_by(User.full_name)).all()
    return render_template("admin/users.html", users=rows)


@bp.route("/users/new", methods=["GET", "POST"])
def new_user() -> Response | str | tuple[str, int]:
    form = UserCreateForm(clinics=_clinic_choices())
    if form.validate_on_submit():
        try:
            user = create_user(
                email=form.email.data or "",
                full_name=form.full_name.data or "",
                username=form.username.data or None,
                roles=form.roles.data or [],
                clinic=_clinic_or_none(form.clinic.data),
                lead_countries=form.lead_countries.data or [],
                lead_all_countries=bool(form.lead_all_countries.data),
            )
        except AccountError as exc:
            form.form_errors.append(exc.sentence)
            return render_template("admin/user_new.html", form=form), 400
        return _render_user(user, invitation=issue_invitation(user), status=201)
    status = 400 if request.method == "POST" else 200
    return render_template("admin/user_new.html", form=form), status


def _render_user(
    user: User,
    *,
    form: UserEditForm | None = None,
    invitation: Invitation | None = None,
    status: int = 200,
) -> tuple[str, int]:
    if form is None:
        form = UserEditForm(
            clinics=_clinic_choices(),
            formdata=None,
            full_name=user.full_name,
            clinic=user.clinic_id or 0,
            roles=[r.value for r in user.roles],
            lead_all_countries=user.lead_all_countries,
            lead_countries=user.lead_countries,
        )
    return render_template(
        "admin/user.html",
        user=user,
        form=form,
        action=ActionForm(),
        invitation=invitation,
        country_name=country_name,
        second_factor_on=second_factor.is_enrolled(user),
    ), status


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
def user(user_id: int) -> Response | tuple[str, int]:
    target = _user_or_404(user_id)
    if request.method == "GET":
        return _render_user(target)
    form = UserEditForm(clinics=_clinic_choices())
    if not form.validate_on_submit():
        return _render_user(target, form=form, status=400)
    try:
        update_user(
            target,
            full_name=form.full_name.data,
            roles=form.roles.data or [],
            clinic=_clinic_or_none(form.clinic.data),
            lead_countries=form.lead_countries.data or [],
            lead_all_countries=bool(form.lead_all_countries.data),
        )
    except AccountError as exc:
        db.session.rollback()
        form.form_errors.append(exc.sentence)
        return _render_user(target, form=form, status=400)
    flash(gettext("Saved."), "success")
    return redirect(url_for("admin.user", user_id=target.id))


@bp.route("/users/<int:user_id>/invite", methods=["POST"])
def invite(user_id: int) -> tuple[str, int]:
    target = _user_or_404(user_id)
    if not target.active:
        abort(409, description=gettext("Reactivate this account before inviting its user."))
    return _render_user(target, invitation=issue_invitation(target))


@bp.route("/users/<int:user_id>/deactivate", methods=["POST"])
def deactivate(user_id: int) -> Response:
    target = _user_or_404(user_id)
    if target.id == current_user.id:
        abort(409, description=gettext("You cannot deactivate your own account."))
    set_active(target, False)
    flash(gettext("%(name)s is deactivated and signed out everywhere.", name=target.full_name),
          "success")
    return redirect(url_for("admin.user", user_id=target.id))


@bp.route("/users/<int:user_id>/activate", methods=["POST"])
def activate(user_id: int) -> Response:
    target = _user_or_404(user_id)
    set_active(target, True)
    flash(gettext("%(name)s is active again.", name=target.full_name), "success")
    return redirect(url_for("admin.user", user_id=target.id))


@bp.route("/users/<int:user_id>/reset-second-factor", methods=["POST"])
def reset_second_factor(user_id: int) -> Response:
    target = _user_or_404(user_id)
    if not second_factor.reset_second_factor(target):
        abort(409, description=gettext("This account has no second factor to reset."))
    flash(
        gettext("The second factor of %(name)s is reset and they are signed out everywhere; "
                "they set it up again at their next sign-in.", name=target.full_name),
        "success",
    )
    return redirect(url_for("admin.user", user_id=target.id))


@bp.route("/clinics", methods=["GET", "POST"])
def clinics() -> tuple[str, int]:
    form = ClinicForm()
    status = 200
    if form.validate_on_submit():
        try:
            clinic = create_clinic(
                form.name.data or "", form.city.data or "", form.country.data or ""
            )
        except AccountError as exc:
            form.form_errors.append(exc.sentence)
            status = 400
        else:
            flash(gettext("Clinic %(name)s added.", name=clinic.name), "success")
            form = ClinicForm(formdata=None)
    elif request.method == "POST":
        status = 400
    rows = db.session.execute(
        select(Clinic, func.count(User.id))
        .outerjoin(User, User.clinic_id == Clinic.id)
        .group_by(Clinic.id)
        .order_by(Clinic.country_code, Clinic.name)
    ).all()
    return render_template(
        "admin/clinics.html", form=form, rows=rows, country_name=country_name
    ), status


def _audit_filter(form: AuditFilterForm) -> AuditFilter | None:
    """The filter the form asks for, or None (with the reason on the form) if it is bad."""
    if not any(request.args.get(name) for name in form.data):
        return AuditFilter()
    if not form.validate():
        return None
    try:
        return make_filter(
            actor=form.actor.data or "",
            action=form.action.data or "",
            object_type=form.object_type.data or "",
            object_id=form.object_id.data or "",
            since=form.since.data,
            until=form.until.data,
        )
    except AuditFilterError as exc:
        form.form_errors.append(exc.sentence)
        return None


@bp.route("/audit")
def audit() -> tuple[str, int]:
    form = AuditFilterForm(
        formdata=request.args,
        actions=[SelectChoice(a, action_label(a)) for a in known_actions()],
        object_types=[SelectChoice(t, object_type_label(t)) for t in known_object_types()],
    )
    filters = _audit_filter(form)
    if filters is None:
        # A filter that cannot be applied lists nothing rather than everything.
        return render_template("admin/audit.html", form=form, page=None, events=[], args={}), 400
    page = db.paginate(
        events_query(filters),
        per_page=int(current_app.config["AUDIT_PAGE_SIZE"]),
        error_out=False,
    )
    # The pager keeps the filters; only filled-in boxes go into its links.
    args = {name: value for name, value in request.args.items() if value and name in form.data}
    return render_template(
        "admin/audit.html",
        form=form,
        page=page,
        events=readable_events(page.items),
        args=args,
    ), 200
