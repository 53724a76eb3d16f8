from __future__ import annotations

from flask import render_template
from flask_login import login_required

from app.viewer import bp


@bp.route("/")
@login_required
def index() -> str:
    return render_template("viewer/index.html")
