from __future__ import annotations

from flask import render_template

from app.auth.decorators import roles_required
from app.auth.roles import Role
from app.quizzes import bp


@bp.route("/")
@roles_required(Role.TRAINEE_RADIOLOGIST, Role.TRAINEE_RADIOGRAPHER, Role.TRAINER)
def index() -> str:
    return render_template("quizzes/index.html")
