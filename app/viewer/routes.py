from __future__ import annotations

from flask import abort, jsonify, render_template
from flask_babel import gettext
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.cases.access import can_view_case
from app.cases.models import Case
from app.extensions import db
from app.viewer import bp
from app.viewer.services import case_payload, may_curate, shown_title

RECENT_CASES = 30


@bp.route("/")
@login_required
def index() -> str:
    """For trainers and administrators (the menu shows it to them alone): the library's
    latest cases, each a click from the viewer where reference marks are drawn. Trainees
    read cases inside their exercises, which open the viewer themselves."""
    cases = []
    if may_curate(current_user):
        cases = list(db.session.scalars(
            select(Case).order_by(Case.updated_at.desc(), Case.id.desc()).limit(RECENT_CASES)))
    return render_template("viewer/index.html", cases=cases,
                           curator=may_curate(current_user))


def _viewable_case(case_id: int) -> Case:
    case = db.session.get(Case, case_id)
    if case is None or not can_view_case(current_user, case):
        abort(404, description=gettext("There is no such case."))
    return case


@bp.route("/cases/<int:case_id>")
@login_required
def case(case_id: int) -> str:
    viewed = _viewable_case(case_id)
    # The case data travels in the page itself: one round trip less before the first image.
    return render_template("viewer/case.html", case=viewed,
                           title=shown_title(viewed, current_user),
                           payload=case_payload(viewed, current_user))


@bp.route("/api/cases/<int:case_id>")
@login_required
def case_data(case_id: int) -> Response:
    response = jsonify(case_payload(_viewable_case(case_id), current_user))
    response.headers["Cache-Control"] = "no-store"
    return response
