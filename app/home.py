"""The landing page and each role's home page."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from app.auth.models import User
from app.auth.roles import Role

bp = Blueprint("home", __name__)

# A user holding several roles lands on the first of these they hold.
HOME_ENDPOINTS: list[tuple[Role, str]] = [
    (Role.TRAINEE_RADIOLOGIST, "home.trainee"),
    (Role.TRAINEE_RADIOGRAPHER, "home.trainee"),
    (Role.TRAINER, "cases.index"),
    (Role.PROGRAMME_LEAD, "certification.index"),
    (Role.ADMIN, "admin.index"),
]


def home_url_for(user: User) -> str:
    for role, endpoint in HOME_ENDPOINTS:
        if user.has_role(role):
            return url_for(endpoint)
    return url_for("home.index")


@bp.route("/")
def index() -> Response | str:
    if current_user.is_authenticated:
        target = home_url_for(current_user)
        if target != url_for("home.index"):
            return redirect(target)
    return render_template("home.html")
