"""QC concordance pages: the blueprint the QC route modules attach their views to, and
what their views share (the programme asked for, the period asked for)."""

from __future__ import annotations

from flask import Blueprint, abort, request
from flask_babel import gettext

from app.certification.models import Programme
from app.extensions import db
from app.qc.scope import QcPeriod, QcRequestError

bp = Blueprint("qc", __name__, url_prefix="/qc")


def programme_or_404(programme_id: int) -> Programme:
    programme = db.session.get(Programme, programme_id)
    if programme is None:
        abort(404, description=gettext("There is no such programme."))
    return programme


def requested_period() -> QcPeriod:
    """The period of the request's arguments, or a 400 saying why it cannot be read."""
    try:
        return QcPeriod.from_args(request.args)
    except QcRequestError as exc:
        abort(exc.status, description=exc.sentence)
