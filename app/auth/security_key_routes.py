"""Pages of security keys: the account's list (add, name, remove) and the sign-in's second
step by key. The browser's part (navigator.credentials) is static/js/security_keys.js: it
asks for a ceremony's options as JSON, lets the key answer, and posts the answer in the
page's own form, so each action is an ordinary form post with its CSRF token."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, url_for
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required  # type: ignore[import-untyped]
from flask_wtf import FlaskForm  # type: ignore[import-untyped]
from werkzeug.wrappers import Response
from wtforms import HiddenField, PasswordField, StringField  # type: ignore[import-untyped]
from wtforms.validators import DataRequired, Length  # type: ignore[import-untyped]

from app.auth import bp as auth_bp
from app.auth import second_factor as sf
from app.auth import security_keys as keys
from app.auth.password_recheck import limit_password_rechecks
from app.auth.second_factor_routes import SIGN_IN_AGAIN, CodeForm
from app.auth.security_key_models import KEY_NAME_MAX
from app.extensions import db
from app.home import home_url_for

bp = Blueprint("security_keys", __name__, url_prefix="/account")


class AddKeyForm(FlaskForm):
    name = StringField(_l("Name of the new key"), validators=[
        DataRequired(message=_l("Name the key.")), Length(max=KEY_NAME_MAX)])
    credential = HiddenField(validators=[Length(max=keys.MAX_RESPONSE_CHARS)])


class RemoveKeyForm(FlaskForm):
    password = PasswordField(_l("Your password"), validators=[
        DataRequired(message=_l("Enter your password to remove a key.")), Length(max=1024)])


class KeySignInForm(FlaskForm):
    assertion = HiddenField(validators=[Length(max=keys.MAX_RESPONSE_CHARS)])


def _json_refusal(exc: keys.SecurityKeyError) -> tuple[Response, int]:
    # The page's script shows the message: in the reader's language.
    return jsonify(error="Refused", message=exc.shown, status=exc.status), exc.status


# ---- the account's keys ----------------------------------------------------------------------


@bp.route("/security-keys")
@login_required
def index() -> str:
    return render_template("auth/security_keys.html")


@bp.route("/security-keys/options", methods=["POST"])
@login_required
def registration_options() -> Response | tuple[Response, int]:
    """The options for navigator.credentials.create(), with a new challenge."""
    try:
        options = keys.registration_options(current_user)
    except keys.SecurityKeyError as exc:
        return _json_refusal(exc)
    return Response(options, mimetype="application/json")


@bp.route("/security-keys/add", methods=["POST"])
@login_required
def add() -> Response | tuple[str, int]:
    form = AddKeyForm()
    if not form.validate_on_submit():
        errors = [str(e) for f in (form.name, form.credential) for e in f.errors]
        return _page_with_error(" ".join(errors) or gettext(keys.MALFORMED), 400, form.name.data)
    if not form.credential.data:
        return _page_with_error(
            gettext("Your security key did not answer: this page needs JavaScript to reach it."),
            400, form.name.data)
    try:
        key = keys.register_key(current_user, form.name.data or "", form.credential.data)
    except keys.SecurityKeyError as exc:
        return _page_with_error(exc.shown, exc.status, form.name.data)
    flash(gettext("Security key “%(name)s” added. Use it at your next sign-in.", name=key.name),
          "success")
    return redirect(url_for("security_keys.index"))


@bp.route("/security-keys/<int:key_id>/remove", methods=["POST"])
@login_required
# A signed-in session must not become a way to guess the account's password.
@limit_password_rechecks
def remove(key_id: int) -> Response | tuple[str, int]:
    form = RemoveKeyForm()
    if not form.validate_on_submit():
        problems = " ".join(map(str, form.password.errors))
        return _page_with_error(problems or gettext(keys.WRONG_PASSWORD), 400)
    try:
        keys.remove_key(current_user, key_id, form.password.data or "")
    except keys.SecurityKeyError as exc:
        return _page_with_error(exc.shown, exc.status)
    flash(gettext("Security key removed."), "success")
    return redirect(url_for("security_keys.index"))


def _page_with_error(sentence: str, status: int, name: str | None = None) -> tuple[str, int]:
    return render_template("auth/security_keys.html", security_key_error=sentence,
                           security_key_name=name or ""), status


# ---- the sign-in's second step by key -------------------------------------------------------


@auth_bp.route("/second-factor/security-key/options", methods=["POST"])
def security_key_sign_in_options() -> Response | tuple[Response, int]:
    """The options for navigator.credentials.get() for the user held after the password."""
    user = sf.pending_user()
    if user is None:
        return _json_refusal(keys.SecurityKeyError(SIGN_IN_AGAIN, 400))
    try:
        options = keys.sign_in_options(user)
    except keys.SecurityKeyError as exc:
        return _json_refusal(exc)
    return Response(options, mimetype="application/json")


@auth_bp.route("/second-factor/security-key", methods=["POST"])
def security_key_sign_in() -> Response | tuple[str, int]:
    """A key's answer passes the second step exactly as an authenticator code does."""
    user = sf.pending_user()
    if user is None:
        sf.abandon_pending()
        return render_template("auth/second_factor_refused.html",
                               reason=gettext(SIGN_IN_AGAIN)), 400
    form = KeySignInForm()
    try:
        if not form.validate_on_submit() or not form.assertion.data:
            raise keys.SecurityKeyError(keys.MALFORMED)
        keys.verify_sign_in(user, form.assertion.data)
    except keys.SecurityKeyError as exc:
        return render_template("auth/second_step.html", form=CodeForm(formdata=None),
                               security_key_error=exc.shown), exc.status
    target = sf.pending_next()
    sf.complete_sign_in(user, "security key")
    db.session.commit()
    return redirect(target or home_url_for(user))


# ---- what the partial templates read -------------------------------------------------------


@bp.app_context_processor
def _security_key_helpers() -> dict[str, Any]:
    """Callables, so pages that never include the partials query nothing."""

    def sign_in_offered() -> bool:
        user = sf.pending_user()
        return (user is not None and keys.relying_party() is not None
                and keys.has_security_key(user))

    def keys_only() -> bool:
        user = sf.pending_user()
        factor = sf.factor_of(user) if user is not None else None
        return factor is None or factor.enrolled_at is None

    return {
        "security_keys_of": keys.keys_of,
        "security_keys_only": keys_only,
        "security_keys_available": lambda: keys.relying_party() is not None,
        "security_keys_unavailable": keys.unavailable_sentence,
        "security_key_sign_in_offered": sign_in_offered,
    }
