"""The account security page, for every signed-in user: two-step sign-in on or off, recovery
codes left, and the actions on them (app.auth.second_factor_account does the work)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required  # type: ignore[import-untyped]
from flask_wtf import FlaskForm  # type: ignore[import-untyped]
from werkzeug.wrappers import Response
from wtforms import PasswordField, StringField, SubmitField  # type: ignore[import-untyped]
from wtforms.validators import DataRequired, Length  # type: ignore[import-untyped]

from app.auth import second_factor as sf
from app.auth import second_factor_account as account
from app.auth.password_recheck import limit_password_rechecks

bp = Blueprint("account", __name__, url_prefix="/account")

ANY_CODE = _l("A code from your authenticator app, or one of your recovery codes")
ENTER_CODE = _l("Enter a code.")


# Each form's fields have their own names: the page shows all of them at once.
class RecoveryCodesForm(FlaskForm):
    recovery_code = StringField(ANY_CODE, validators=[DataRequired(ENTER_CODE), Length(max=64)])
    submit = SubmitField(_l("Make new recovery codes"))


class ReplaceForm(FlaskForm):
    replace_code = StringField(ANY_CODE, validators=[DataRequired(ENTER_CODE), Length(max=64)])
    submit = SubmitField(_l("Replace authenticator"))


class TurnOffForm(FlaskForm):
    off_password = PasswordField(_l("Your password"), validators=[
        DataRequired(_l("Enter your password.")), Length(max=256)])
    off_code = StringField(ANY_CODE, validators=[DataRequired(ENTER_CODE), Length(max=64)])
    submit = SubmitField(_l("Turn off two-step sign-in"))


class NewAppCodeForm(FlaskForm):
    new_code = StringField(_l("Code from your new authenticator app"),
                           validators=[DataRequired(ENTER_CODE), Length(max=64)])
    submit = SubmitField(_l("Use the new app"))


class CancelForm(FlaskForm):
    submit = SubmitField(_l("Cancel"))


def _page(status: int = 200, refusal: str | None = None,
          **submitted: FlaskForm) -> tuple[str, int]:
    forms: dict[str, Any] = {
        "recovery_form": RecoveryCodesForm(formdata=None),
        "replace_form": ReplaceForm(formdata=None),
        "off_form": TurnOffForm(formdata=None),
        **submitted,
    }
    return render_template("auth/account_security.html", status=account.status_of(current_user),
                           unreadable=gettext(sf.UNREADABLE), refusal=refusal, **forms), status


def _refused(exc: sf.SecondFactorError, form: FlaskForm, field: Any,
             name: str) -> tuple[str, int]:
    """The page again with the reason: beside the field for a wrong code or password, at the
    top for an action the account's state does not allow (its form may not be shown)."""
    if exc.status == 409:
        return _page(exc.status, refusal=exc.shown, **{name: form})
    field.errors = [exc.shown]
    return _page(exc.status, **{name: form})


@bp.get("/security")
@login_required
def security() -> tuple[str, int]:
    return _page()


@bp.post("/security/recovery-codes")
@login_required
def recovery_codes() -> str | tuple[str, int]:
    form = RecoveryCodesForm()
    if not form.validate_on_submit():
        return _page(400, recovery_form=form)
    try:
        codes = account.regenerate_recovery_codes(current_user, form.recovery_code.data or "")
    except sf.SecondFactorError as exc:
        return _refused(exc, form, form.recovery_code, "recovery_form")
    return render_template("auth/recovery_codes.html", codes=codes, regenerated=True,
                           target=url_for("account.security"))


# Wrong codes are limited by the second factor itself; this limits guessing the password
# from a borrowed signed-in browser.
@bp.post("/security/turn-off")
@limit_password_rechecks
@login_required
def turn_off() -> Response | tuple[str, int]:
    form = TurnOffForm()
    if not form.validate_on_submit():
        return _page(400, off_form=form)
    try:
        account.turn_off(current_user, form.off_password.data or "", form.off_code.data or "")
    except sf.SecondFactorError as exc:
        field = form.off_password if exc.sentence == account.WRONG_PASSWORD else form.off_code
        return _refused(exc, form, field, "off_form")
    flash(gettext("Two-step sign-in is off. You sign in with your password alone."), "success")
    return redirect(url_for("account.security"))


@bp.post("/security/replace/start")
@login_required
def start_replacement() -> Response | tuple[str, int]:
    form = ReplaceForm()
    if not form.validate_on_submit():
        return _page(400, replace_form=form)
    try:
        account.begin_replacement(current_user, form.replace_code.data or "")
    except sf.SecondFactorError as exc:
        return _refused(exc, form, form.replace_code, "replace_form")
    return redirect(url_for("account.replace_authenticator"))


@bp.route("/security/replace", methods=["GET", "POST"])
@login_required
def replace_authenticator() -> Response | str | tuple[str, int]:
    form = NewAppCodeForm()
    try:
        enrolment = account.replacement_enrolment(current_user)
    except sf.SecondFactorError as exc:  # none started in this session, or it timed out
        if request.method == "POST":
            return _page(exc.status, refusal=exc.shown)
        flash(exc.shown, "warn")
        return redirect(url_for("account.security"))
    if form.validate_on_submit():
        try:
            account.confirm_replacement(current_user, form.new_code.data or "")
        except sf.SecondFactorError as exc:
            form.new_code.errors = [exc.shown]
            return render_template("auth/replace_authenticator.html", form=form,
                                   cancel=CancelForm(), enrolment=enrolment), exc.status
        flash(gettext("Your new authenticator app is in use; codes from the old one no longer "
                      "work, and your other devices are signed out."), "success")
        return redirect(url_for("account.security"))
    status = 400 if form.is_submitted() else 200
    return render_template("auth/replace_authenticator.html", form=form, cancel=CancelForm(),
                           enrolment=enrolment), status


@bp.post("/security/replace/cancel")
@login_required
def cancel_replacement() -> Response:
    account.cancel_replacement(current_user)
    flash(gettext("The replacement was cancelled; your authenticator app is unchanged."), "info")
    return redirect(url_for("account.security"))
