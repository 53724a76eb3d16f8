"""The programme's QC figures as PNGs, for programme leads (their countries) and admins."""

from __future__ import annotations

from flask import Response, abort, request
from flask_babel import gettext as _
from flask_login import current_user  # type: ignore[import-untyped]

from app.auth.decorators import roles_required
from app.auth.lead_scope import countries_in_scope
from app.auth.roles import Role
from app.qc.routes import bp, programme_or_404, requested_period


def _png(body: bytes) -> Response:
    response = Response(body, mimetype="image/png")
    response.headers["Cache-Control"] = "private, no-cache"
    return response


@bp.route("/programmes/<int:programme_id>/funnel.png")
@roles_required(Role.PROGRAMME_LEAD, Role.ADMIN)
def funnel_png(programme_id: int) -> Response:
    """Each clinic's or reader's major-discrepancy rate against its number of QC reads."""
    programme = programme_or_404(programme_id)
    period = requested_period()
    by = request.args.get("by") or "clinic"
    # Imported here: matplotlib costs every process start a third of a second otherwise.
    from app.qc.figure_data import FUNNEL_UNITS, programme_funnel
    from app.qc.figures import funnel_png as draw

    if by not in FUNNEL_UNITS:
        abort(400, description=_("The funnel plot is drawn per clinic or per reader."))
    return _png(draw(programme_funnel(programme, countries_in_scope(current_user), period, by)))


@bp.route("/programmes/<int:programme_id>/readers/<int:user_id>/cusum.png")
@roles_required(Role.PROGRAMME_LEAD, Role.ADMIN)
def cusum_png(programme_id: int, user_id: int) -> Response:
    """One reader's CUSUM chart of major discrepancies against the programme's target."""
    programme = programme_or_404(programme_id)
    period = requested_period()
    from app.qc.figure_data import reader_cusum, reader_in_view
    from app.qc.figures import cusum_png as draw

    countries = countries_in_scope(current_user)
    reader = reader_in_view(programme, countries, user_id)
    if reader is None:
        abort(404, description=_("There is no such reader in your countries."))
    return _png(draw(reader_cusum(programme, countries, period, reader)))
