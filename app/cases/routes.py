from __future__ import annotations

from flask import render_template

from app.auth.decorators import roles_required
from app.auth.roles import Role
from app.cases import bp


@bp.route("/")
@roles_required(Role.TRAINER, Role.ADMIN)
def index() -> str:
    return render_template("cases/index.html")
