"""The leads' page of QC flags: readers outside a programme's ongoing QC criterion, their
figures, error profile and suggested practice set, and a decision form for each."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user  # type: ignore[import-untyped]
from flask_wtf import FlaskForm  # type: ignore[import-untyped]
from werkzeug.wrappers import Response
from wtforms import RadioField, SelectChoice, TextAreaField  # type: ignore[import-untyped]
from wtforms.validators import DataRequired, InputRequired, Length  # type: ignore[import-untyped]

from app.auth.decorators import roles_required
from app.auth.lead_scope import countries_in_scope
from app.auth.roles import Role
from app.auth.services import country_name
from app.cases.models import Case
from app.extensions import db
from app.i18n import current_language
from app.qc import flags as flag_service
from app.qc.criteria import findings_item
from app.qc.models import QcFlag
from app.qc.routes import bp
from app.schemes.definitions import SchemeError
from app.schemes.registry import get_scheme

DECISIONS = {
    "assign_practice": _l("Assign the suggested practice set"),
    "keep_watching": _l("Keep watching"),
    "dismiss": _l("Dismiss"),
}


class FlagDecisionForm(FlaskForm):
    decision = RadioField(_l("Decision"),
                          choices=[SelectChoice(k, v) for k, v in DECISIONS.items()],
                          validators=[InputRequired(message=_l("choose a decision"))])
    reason = TextAreaField(
        _l("Your reason (recorded in the audit log)"),
        validators=[DataRequired(message=_l("give the reason for your decision")),
                    Length(max=flag_service.MAX_REASON)])


def _finding_labels(flags: list[QcFlag]) -> dict[str, str]:
    """Each finding's label in the reader's language, from the schemes the flags name."""
    labels: dict[str, str] = {}
    for key in {str(f.figures.get("scheme_key") or "") for f in flags}:
        try:
            scheme = get_scheme(key)
        except SchemeError:
            continue
        item = findings_item(scheme)
        for option in scheme.item(item).options if item else ():
            labels.setdefault(option.value, option.label_in(current_language()))
    return labels


def _render(form: FlagDecisionForm, failed: int | None = None) -> str:
    shown = flag_service.flags_for(countries_in_scope(current_user))
    open_flags = [f for f in shown if f.state == "open"]
    library = flag_service.practice_library() if open_flags else []
    suggestions: dict[int, list[Case]] = {f.id: flag_service.suggested_cases(f, library)
                                          for f in open_flags}
    return render_template(
        "qc/flags.html", form=form, failed=failed, open_flags=open_flags,
        decided=[f for f in shown if f.state == "decided"], suggestions=suggestions,
        finding_labels=_finding_labels(shown), decisions=DECISIONS, country_name=country_name)


@bp.route("/flags")
@roles_required(Role.PROGRAMME_LEAD, Role.ADMIN)
def flags() -> str:
    """Readers of the lead's countries outside an ongoing QC criterion: open flags first,
    then the latest decided ones."""
    return _render(FlagDecisionForm(formdata=None))


@bp.route("/flags/<int:flag_id>", methods=["POST"])
@roles_required(Role.PROGRAMME_LEAD, Role.ADMIN)
def decide_flag(flag_id: int) -> Response | tuple[str, int]:
    scope = countries_in_scope(current_user)
    flag = db.session.get(QcFlag, flag_id)
    if flag is None or not flag_service.in_scope(flag, scope):
        abort(404, description=_("There is no such flag in your countries."))
    form = FlagDecisionForm()
    if not form.validate_on_submit():
        return _render(form, failed=flag_id), 400
    try:
        decided = flag_service.decide(flag_id, decision=form.decision.data or "",
                                      reason=form.reason.data or "", actor=current_user,
                                      countries=scope)
    except flag_service.FlagError as exc:
        abort(exc.status, description=exc.sentence)
    if decided.exercise is not None:
        flash(_("%(reader)s: the practice set %(title)s is assigned; it is on their training "
                "page.", reader=decided.reader.full_name, title=decided.exercise.title),
              "success")
    else:
        flash(_("%(reader)s: decision recorded.", reader=decided.reader.full_name), "success")
    return redirect(url_for("qc.flags"))
