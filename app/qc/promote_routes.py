"""Page: promote a discordant QC study to the case library (trainers and administrators).

The study reference is typed into a POST form and goes to the pseudonym check and the PACS
only: it never appears in a URL, a log, the audit or the answer (app.qc.promote)."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_login import current_user  # type: ignore[import-untyped]
from flask_wtf import FlaskForm  # type: ignore[import-untyped]
from werkzeug.wrappers import Response
from wtforms import SelectChoice, SelectField, StringField  # type: ignore[import-untyped]
from wtforms.validators import DataRequired, Length  # type: ignore[import-untyped]

from app.auth.decorators import roles_required
from app.auth.roles import Role
from app.extensions import db
from app.pacs.models import PacsEndpoint
from app.pacs.services import endpoints
from app.qc import promote as promotion
from app.qc.models import QcRecord
from app.qc.promote import PromoteError, import_in_progress, is_discordant, refusal
from app.qc.pseudonyms import MAX_REFERENCE_LENGTH
from app.qc.routes import bp


class PromoteForm(FlaskForm):
    reference = StringField(
        _l("Study reference"),
        validators=[DataRequired(), Length(max=MAX_REFERENCE_LENGTH)],
        description=_l("The Study Instance UID or the accession number of the live study, as "
                       "the QC import was given it. It is checked against this record, sent "
                       "to the PACS, and not stored."),
        render_kw={"autocomplete": "off", "spellcheck": "false"})
    endpoint = SelectField(_l("PACS"), coerce=int)


def _form() -> PromoteForm:
    form = PromoteForm()
    form.endpoint.choices = [SelectChoice(e.id, e.name) for e in endpoints()]
    return form


def _record_or_404(record_id: int) -> QcRecord:
    qc = db.session.get(QcRecord, record_id)
    if qc is None:
        abort(404, description=gettext("There is no QC record %(number)s.", number=record_id))
    return qc


@bp.route("/records/<int:record_id>/promote", methods=["GET", "POST"])
@roles_required(Role.TRAINER, Role.ADMIN)
def promote(record_id: int) -> Response | tuple[str, int]:
    qc = _record_or_404(record_id)
    form = _form()
    error: str | None = None
    status = 200
    if form.is_submitted():
        refused = refusal(qc)
        if refused is not None:
            error, status = refused.sentence, refused.status
        elif not form.validate_on_submit():
            status = 400
        else:
            endpoint = db.session.get(PacsEndpoint, form.endpoint.data)
            if endpoint is None:  # removed since the page was shown
                error, status = gettext("There is no such PACS endpoint."), 400
            else:
                try:
                    promotion.promote(qc, form.reference.data or "", endpoint, actor=current_user)
                except PromoteError as exc:
                    db.session.rollback()
                    error, status = exc.sentence, exc.status
                else:
                    flash(gettext("The study is being imported from the PACS as a draft "
                                  "teaching case; both reads are attached to it as candidate "
                                  "reference reads when it is made."), "success")
                    return redirect(url_for("qc.promote", record_id=record_id), 303)
        form.reference.data = ""  # never shown back
        qc = _record_or_404(record_id)
    return render_template(
        "qc/promote.html", record=qc, form=form, error=error,
        discordant=is_discordant(qc), in_progress=import_in_progress(qc),
        blocked=refusal(qc)), status
