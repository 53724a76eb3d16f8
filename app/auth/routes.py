from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from app.audit.services import record
from app.auth import bp, second_factor
from app.auth import sign_in_throttle as throttle
from app.auth.forms import ChangePasswordForm, ForgotPasswordForm, LoginForm, SetPasswordForm
from app.auth.invitations import InvitationError, user_for_invitation
from app.auth.resets import (
    ResetLinkError,
    ResetUnavailable,
    request_password_reset,
    reset_available,
    reset_link_minutes,
    reset_password,
    user_for_reset,
)
from app.auth.services import AccountError, change_password, set_password
from app.auth.sessions import end_current_session, remember_hint, start_session
from app.auth.sign_in import Outcome, check_sign_in
from app.extensions import db, limiter
from app.home import home_url_for
from app.i18n import N_
from app.urls import same_site_path

WRONG_CREDENTIALS = N_("Wrong user name or password.")
LOCKED_WRONG = N_("The password or the code is not right.")
TOO_MANY_FAILURES = N_(
    "Too many failed sign-in attempts from your network. Wait 15 minutes and try again, "
    "or ask your administrator to reset your password."
)


def _address_limit() -> str:
    return current_app.config["LOGIN_FAILURE_LIMIT_PER_ADDRESS"]


def _reset_limit() -> str:
    return current_app.config["PASSWORD_RESET_LIMIT"]


def _reset_identifier_key() -> str:
    """One limit per account whatever identifier names it (as the sign-in counter), keyed
    by a hash: the limiter's storage never holds what was typed."""
    typed = request.form.get("identifier") or ""
    return "reset:" + throttle.counter_key(throttle.user_for_identifier(typed), typed)


TOO_MANY_RESETS = N_(
    "Too many password reset requests. Wait a while and try again, "
    "or ask your administrator to reset your password."
)


def _failed(response: Response) -> bool:
    """A refused sign-in, counted against the client's address (the account's own counter
    is app.auth.sign_in_throttle)."""
    return response.status_code in (401, 429)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(
    _address_limit,
    key_func=get_remote_address,
    methods=["POST"],
    deduct_when=_failed,
    error_message=lambda: gettext(TOO_MANY_FAILURES),
)
def login() -> Response | str | tuple[str, int]:
    if current_user.is_authenticated:
        return redirect(home_url_for(current_user))
    form = LoginForm(next=request.args.get("next", ""))
    form.remember.description = remember_hint()
    if not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        # A form sent from the locked page keeps its code box.
        return render_template("auth/login.html", form=form, locked="code" in request.form,
                               minutes=_window_minutes()), status
    attempt = check_sign_in(form.username.data or "", form.password.data or "",
                            form.code.data or "")
    if attempt.outcome is Outcome.WRONG:
        form.password.errors = [gettext(WRONG_CREDENTIALS)]
        return render_template("auth/login.html", form=form), 401
    if attempt.outcome in (Outcome.LOCKED, Outcome.LOCKED_WRONG):
        if attempt.outcome is Outcome.LOCKED_WRONG:
            form.code.errors = [gettext(LOCKED_WRONG)]
        form.code.data = ""
        return render_template("auth/login.html", form=form, locked=True,
                               minutes=_window_minutes()), 429
    user = attempt.user
    assert user is not None  # a right password names its account
    remember = bool(form.remember.data)
    target = same_site_path(form.next.data)
    if attempt.outcome is Outcome.RIGHT_WITH_CODE:
        # Both factors came in one form: the two steps of app.auth.second_factor at once.
        second_factor.hold_for_second_step(user, target, remember=remember)
        second_factor.complete_sign_in(user, attempt.how or "code")
        db.session.commit()
        return redirect(target or home_url_for(user))
    if second_factor.step_needed(user):
        second_factor.hold_for_second_step(user, target, remember=remember)
        db.session.commit()
        return redirect(url_for("auth.second_step"))
    start_session(user, remember=remember)
    record("login", actor=user, object_type="user", object_id=user.id)
    db.session.commit()
    return redirect(target or home_url_for(user))


def _window_minutes() -> int:
    return int(current_app.config["LOGIN_ACCOUNT_WINDOW"].total_seconds() // 60)


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    # The CSRF token is checked by CSRFProtect before this runs.
    if current_user.is_authenticated:
        record("logout", object_type="user", object_id=current_user.id)
        end_current_session()
        db.session.commit()
    flash(gettext("You have signed out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/password", methods=["GET", "POST"])
@login_required
def password() -> Response | str | tuple[str, int]:
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            change_password(current_user, form.current.data or "", form.password.data or "")
        except AccountError as exc:
            form.password.errors = [exc.sentence]
            return render_template("auth/change_password.html", form=form), 400
        flash(gettext("Your password has been changed. Other devices have been signed out."),
              "success")
        return redirect(home_url_for(current_user))
    status = 400 if request.method == "POST" else 200
    return render_template("auth/change_password.html", form=form), status


@bp.route("/invitation/<token>", methods=["GET", "POST"])
def accept_invitation(token: str) -> Response | str | tuple[str, int]:
    try:
        user = user_for_invitation(token)
    except InvitationError as exc:
        return render_template("auth/invitation_invalid.html", reason=str(exc)), 400
    form = SetPasswordForm()
    if form.validate_on_submit():
        try:
            set_password(user, form.password.data or "", via="invitation")
        except AccountError as exc:
            form.password.errors = [exc.sentence]
            return render_template("auth/accept_invitation.html", form=form, user=user), 400
        flash(gettext("Your password is set. Sign in with your user name and new password."),
              "success")
        return redirect(url_for("auth.login"))
    status = 400 if request.method == "POST" else 200
    return render_template("auth/accept_invitation.html", form=form, user=user), status


@bp.route("/password/forgot", methods=["GET", "POST"])
@limiter.limit(_reset_limit, key_func=get_remote_address, methods=["POST"],
               error_message=lambda: gettext(TOO_MANY_RESETS))
@limiter.limit(_reset_limit, key_func=_reset_identifier_key, methods=["POST"],
               error_message=lambda: gettext(TOO_MANY_RESETS))
def forgot_password() -> str | tuple[str, int]:
    form = ForgotPasswordForm()
    if not reset_available():
        # Without a mail server only an administrator can hand out a new link.
        status = 400 if request.method == "POST" else 200
        return render_template("auth/forgot_password.html", form=None), status
    if not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        return render_template("auth/forgot_password.html", form=form), status
    try:
        request_password_reset(form.identifier.data or "")
    except ResetUnavailable:  # the configuration changed under us
        return render_template("auth/forgot_password.html", form=None), 400
    return render_template("auth/reset_requested.html", minutes=reset_link_minutes())


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset_password_page(token: str) -> Response | str | tuple[str, int]:
    try:
        user = user_for_reset(token)
    except ResetLinkError as exc:
        return render_template("auth/reset_invalid.html", reason=str(exc)), 400
    form = SetPasswordForm()
    if form.validate_on_submit():
        try:
            reset_password(token, form.password.data or "")
        except ResetLinkError as exc:
            return render_template("auth/reset_invalid.html", reason=str(exc)), 400
        except AccountError as exc:
            form.password.errors = [exc.sentence]
            return render_template("auth/reset_password.html", form=form, user=user), 400
        flash(
            gettext("Your password is reset and you are signed out everywhere. Sign in with "
                    "your new password."),
            "success",
        )
        return redirect(url_for("auth.login"))
    status = 400 if request.method == "POST" else 200
    return render_template("auth/reset_password.html", form=form, user=user), status
