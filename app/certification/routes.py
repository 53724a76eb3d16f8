from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from app.auth.decorators import roles_required
from app.auth.models import Clinic, User
from app.auth.roles import Role
from app.auth.services import country_name
from app.cases.forms import ActionForm
from app.certification import bp
from app.certification.dashboard import clinic_rows, programmes, rows_csv, rows_xlsx
from app.certification.models import Certificate, Programme
from app.certification.pdf import certificate_pdf
from app.certification.services import (
    CertificationError,
    current_certificate,
    progress,
    reinstate,
    revoke,
    status,
)
from app.extensions import db
from app.urls import external_url


def _scope() -> list[str] | None:
    if current_user.has_role(Role.ADMIN) or current_user.lead_all_countries:
        return None
    return current_user.lead_countries


@bp.route("/programmes/<int:programme_id>")
@roles_required(Role.PROGRAMME_LEAD, Role.ADMIN)
def programme_dashboard(programme_id: int) -> Response | str:
    programme = db.session.get(Programme, programme_id)
    if programme is None:
        abort(404, description="There is no such programme.")
    rows = clinic_rows(programme, _scope())
    country = request.args.get("country")
    if country:
        rows = [r for r in rows if r.clinic.country_code == country.upper()]
    if request.args.get("format") == "xlsx":
        response = Response(
            rows_xlsx(rows, programme.title),
            mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        response.headers["Content-Disposition"] = (
            f'attachment; filename="programme-{programme.id}-clinics.xlsx"')
        return response
    if request.args.get("format") == "csv":
        response = Response(rows_csv(rows), mimetype="text/csv")
        response.headers["Content-Disposition"] = (
            f'attachment; filename="programme-{programme.id}-clinics.csv"')
        return response
    return render_template("certification/programme.html", programme=programme, rows=rows,
                           country=country, country_name=country_name)


@bp.route("/")
@roles_required(Role.PROGRAMME_LEAD, Role.ADMIN)
def index() -> str:
    """Programme-lead dashboard: the clinics in the lead's countries."""
    query = (
        select(Clinic, func.count(User.id))
        .outerjoin(User, (User.clinic_id == Clinic.id) & User.active)
        .group_by(Clinic.id)
        .order_by(Clinic.country_code, Clinic.name)
    )
    all_countries = current_user.lead_all_countries or current_user.has_role(Role.ADMIN)
    if not all_countries:
        query = query.where(Clinic.country_code.in_(current_user.lead_countries))
    rows = db.session.execute(query).all()
    return render_template(
        "certification/index.html",
        rows=rows,
        all_countries=all_countries,
        countries=[(c, country_name(c)) for c in current_user.lead_countries],
        country_name=country_name,
        programmes=programmes(),
    )


def _certificate_or_404(certificate_id: int) -> Certificate:
    certificate = db.session.get(Certificate, certificate_id)
    if certificate is None:
        abort(404, description="There is no such certificate.")
    return certificate


def _lead_scope_allows(certificate: Certificate) -> bool:
    scope = _scope()
    if scope is None:
        return True
    clinic = certificate.user.clinic
    return clinic is not None and clinic.country_code in scope


@bp.route("/mine")
@login_required
def mine() -> str:
    """A trainee's programmes, progress towards each requirement, and certificates."""
    programmes = db.session.scalars(select(Programme).where(Programme.active)).all()
    rows = [
        (p, progress(current_user, p), current_certificate(current_user, p))
        for p in programmes
        if not p.eligible_roles or current_user.has_role(*(Role(r) for r in p.eligible_roles))
    ]
    certificates = db.session.scalars(
        select(Certificate)
        .where(Certificate.user_id == current_user.id)
        .order_by(Certificate.issued_at.desc())
    ).all()
    return render_template(
        "certification/mine.html", rows=rows, certificates=certificates, status=status
    )


@bp.route("/certificates")
@roles_required(Role.PROGRAMME_LEAD, Role.ADMIN)
def certificates() -> str:
    # Scope and holders in the query itself: no per-certificate lookups of users or clinics.
    query = (
        select(Certificate)
        .join(User, User.id == Certificate.user_id)
        .outerjoin(Clinic, Clinic.id == User.clinic_id)
        .options(joinedload(Certificate.user), joinedload(Certificate.programme))
        .order_by(Certificate.issued_at.desc())
    )
    scope = _scope()
    if scope is not None:
        query = query.where(Clinic.country_code.in_(scope))
    return render_template("certification/certificates.html",
                           certificates=db.session.scalars(query).unique().all(),
                           status=status, action_form=ActionForm())


@bp.route("/certificates/<int:certificate_id>/<action>", methods=["POST"])
@roles_required(Role.PROGRAMME_LEAD, Role.ADMIN)
def change(certificate_id: int, action: str) -> Response:
    certificate = _certificate_or_404(certificate_id)
    if not _lead_scope_allows(certificate):
        abort(404, description="There is no such certificate.")
    reason = request.form.get("reason", "")
    try:
        if action == "revoke":
            revoke(certificate, reason=reason, actor=current_user)
        elif action == "reinstate":
            reinstate(certificate, reason=reason, actor=current_user)
        else:
            abort(404, description="Unknown action.")
    except CertificationError as exc:
        abort(exc.status, description=exc.sentence)
    flash(f"Certificate {certificate.code}: {status(certificate)}.", "success")
    return redirect(url_for("certification.certificates"))


@bp.route("/certificates/<int:certificate_id>.pdf")
@login_required
def pdf(certificate_id: int) -> Response:
    certificate = _certificate_or_404(certificate_id)
    own = certificate.user_id == current_user.id
    lead = current_user.has_role(Role.PROGRAMME_LEAD, Role.ADMIN) and _lead_scope_allows(
        certificate
    )
    if not own and not lead:
        abort(404, description="There is no such certificate.")
    url = external_url("verify.show", code=certificate.code)
    response = Response(certificate_pdf(certificate, url), mimetype="application/pdf")
    response.headers["Content-Disposition"] = (
        f'inline; filename="certificate-{certificate.code}.pdf"'
    )
    return response
