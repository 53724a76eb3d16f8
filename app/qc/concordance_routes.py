"""The programme lead's QC concordance pages: a programme's table by reader, clinic or
country (with its exports), and one reader's summary, CUSUM and QC records."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, current_app, render_template, request
from flask_babel import format_decimal, format_percent
from flask_babel import gettext as _
from flask_login import current_user  # type: ignore[import-untyped]

from app.auth.decorators import roles_required
from app.auth.lead_scope import countries_in_scope
from app.auth.roles import Role
from app.auth.services import country_name
from app.certification.dashboard import programmes
from app.certification.models import Programme
from app.certification.routes import spreadsheet_download
from app.qc.concordance import (
    GROUPINGS,
    grouping_from_args,
    programme_table,
    reader_concordance,
    reader_in_scope,
    reader_records,
)
from app.qc.concordance_export import table_csv, table_xlsx
from app.qc.flags import open_flag
from app.qc.promote import is_discordant
from app.qc.routes import bp, programme_or_404, requested_period
from app.qc.scope import QcPeriod, QcRequestError
from app.validation import bounded_int

RECORDS_PER_PAGE = 50


def _page_common(programme: Programme, period: QcPeriod) -> dict[str, Any]:
    # Figures come from another module; a page shows them only where their view exists.
    return {"programme": programme, "period": period, "country_name": country_name,
            "endpoints": current_app.view_functions, "number": format_decimal,
            "fine_percent": lambda value: format_percent(value, "#,##0.0 %")}


@bp.route("/programmes/<int:programme_id>")
@roles_required(Role.PROGRAMME_LEAD, Role.ADMIN)
def programme(programme_id: int) -> Response | str:
    """The programme's QC concordance by reader, clinic or country over a period, each
    reader's latest exam beside; ``format=csv|xlsx`` downloads the table."""
    chosen = programme_or_404(programme_id)
    period = requested_period()
    try:
        by = grouping_from_args(request.args)
    except QcRequestError as exc:
        abort(exc.status, description=exc.sentence)
    export = request.args.get("format")
    if export not in (None, "csv", "xlsx"):
        abort(400, description=_("The export format is csv or xlsx."))
    table = programme_table(chosen, countries_in_scope(current_user), period, by)
    if export:
        body = table_csv(table) if export == "csv" else table_xlsx(table, chosen.title)
        return spreadsheet_download(body, export, f"programme-{chosen.id}-qc-by-{by}")
    return render_template("qc/programme.html", table=table, by=by, groupings=GROUPINGS,
                           programmes=programmes(), **_page_common(chosen, period))


@bp.route("/programmes/<int:programme_id>/readers/<int:user_id>")
@roles_required(Role.PROGRAMME_LEAD, Role.ADMIN)
def reader(programme_id: int, user_id: int) -> str:
    """One reader's QC summary beside their latest exam, their CUSUM against the
    programme's target and their QC records (no images)."""
    chosen = programme_or_404(programme_id)
    period = requested_period()
    page = bounded_int(request.args, "page", default=1) or 1
    countries = countries_in_scope(current_user)
    person = reader_in_scope(chosen, countries, user_id)
    if person is None:
        abort(404, description=_("There is no such reader of this programme in your "
                                 "countries."))
    concordance = reader_concordance(chosen, countries, person, period)
    records = reader_records(countries, person, period, page, RECORDS_PER_PAGE)
    return render_template("qc/reader.html", reader=person, concordance=concordance,
                           records=records, countries=countries, is_discordant=is_discordant,
                           can_promote=current_user.has_role(Role.TRAINER, Role.ADMIN),
                           open_flag=open_flag(person.id, chosen),
                           **_page_common(chosen, period))

