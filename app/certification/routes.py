from __future__ import annotations

from flask import render_template
from flask_login import current_user
from sqlalchemy import func, select

from app.auth.decorators import roles_required
from app.auth.models import Clinic, User
from app.auth.roles import Role
from app.auth.services import country_name
from app.certification import bp
from app.extensions import db


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
    )
