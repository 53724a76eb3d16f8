"""The settings page: the reader's language and time zone (app.i18n applies them)."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required  # type: ignore[import-untyped]
from flask_wtf import FlaskForm  # type: ignore[import-untyped]
from werkzeug.wrappers import Response
from wtforms import SelectField, StringField, SubmitField  # type: ignore[import-untyped]
from wtforms.validators import Length, ValidationError  # type: ignore[import-untyped]

from app import i18n
from app.auth.account_routes import bp
from app.extensions import db


def _language_choices() -> list[tuple[str, Any]]:
    return [("", _l("Automatic (your browser's language)")),
            *((code, name) for code, name in i18n.LANGUAGES.items())]


class SettingsForm(FlaskForm):
    language = SelectField(_l("Language"), choices=_language_choices, validate_choice=True)
    timezone = StringField(
        _l("Time zone"), validators=[Length(max=64)],
        description=_l("A name from the time-zone database, such as Africa/Nairobi, "
                       "America/Port-au-Prince or Asia/Dhaka. Leave it empty to use your "
                       "clinic's."))
    submit = SubmitField(_l("Save settings"))

    def validate_timezone(self, field: StringField) -> None:
        name = (field.data or "").strip()
        if name and not i18n.is_timezone_name(name):
            raise ValidationError(_l(
                "“%(name)s” is not a time zone name; choose one from the list, such as "
                "Africa/Nairobi.", name=name))


def save_settings(user: Any, language: str | None, timezone: str | None) -> None:
    """Store the reader's choices; an empty choice goes back to the automatic one."""
    user.language = language or None
    user.timezone = timezone or None
    db.session.commit()


@bp.route("/settings", methods=["GET", "POST"])
@login_required
def settings() -> Response | tuple[str, int]:
    form = SettingsForm(data={"language": current_user.language or "",
                              "timezone": current_user.timezone or ""})
    if request.method == "POST":
        form = SettingsForm()
        if form.validate_on_submit():
            save_settings(current_user, form.language.data,
                          (form.timezone.data or "").strip())
            if form.language.data:  # the session's earlier choice no longer applies
                i18n.forget_session_language()
            flash(_l("Your settings are saved."), "success")
            return redirect(url_for("account.settings"))
    status = 400 if request.method == "POST" else 200
    return render_template(
        "auth/settings.html", form=form, zones=i18n.common_timezones(),
        clinic_zone=i18n.country_timezone(i18n.clinic_country())), status
