"""Pages of the second factor: the sign-in's second step, enrolment, and the guard that keeps
privileged pages from a session that did not pass the second factor."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, session, url_for
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required  # type: ignore[import-untyped]
from flask_wtf import FlaskForm  # type: ignore[import-untyped]
from werkzeug.wrappers import Response
from wtforms import StringField, SubmitField  # type: ignore[import-untyped]
from wtforms.validators import DataRequired, Length  # type: ignore[import-untyped]

from app.audit import security_log
from app.auth import bp
from app.auth import second_factor as sf
from app.auth.sessions import end_current_session, signed_in_by_token
from app.extensions import db
from app.home import home_url_for
from app.i18n import N_
from app.static_cache import is_static_endpoint

SIGN_IN_AGAIN = N_("Your sign-in has expired or was not started. Sign in with your password.")


class CodeForm(FlaskForm):
    code = StringField(
        _l("Code"),
        validators=[DataRequired(message=_l("Enter a code.")), Length(max=64)],
        description=_l("The 6-digit code from your authenticator app, or one of your recovery "
                       "codes."),
    )
    submit = SubmitField(_l("Verify"))


class EnrolForm(FlaskForm):
    code = StringField(
        _l("Code from your authenticator app"),
        validators=[DataRequired(message=_l("Enter a code.")), Length(max=64)],
    )
    submit = SubmitField(_l("Turn on"))


def _refused(sentence: str, status: int) -> tuple[str, int]:
    sf.abandon_pending()
    return render_template("auth/second_factor_refused.html", reason=gettext(sentence)), status


@bp.route("/second-factor", methods=["GET", "POST"])
def second_step() -> Response | str | tuple[str, int]:
    """After the password: a code (or recovery code), or enrolment if none is set up yet."""
    user = sf.pending_user()
    if user is None:
        return _refused(SIGN_IN_AGAIN, 400 if request.method == "POST" else 200)
    if not sf.is_enrolled(user):
        return _enrol_during_sign_in(user)
    form = CodeForm()
    if not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        return render_template("auth/second_step.html", form=form), status
    try:
        how = sf.verify_second_step(user, form.code.data or "")
    except sf.SecondFactorLocked as exc:
        return _refused(exc.sentence, 429)  # _refused translates
    except sf.SecondFactorError as exc:  # a wrong code; or a key no configured key opens
        form.code.errors = [exc.shown]
        return render_template("auth/second_step.html", form=form), exc.status
    target = sf.pending_next()
    sf.complete_sign_in(user, how)
    db.session.commit()
    return redirect(target or home_url_for(user))


def _enrol_during_sign_in(user) -> str | tuple[str, int]:  # type: ignore[no-untyped-def]
    form = EnrolForm()
    if form.validate_on_submit():
        try:
            codes = sf.confirm_enrolment(user, form.code.data or "")
        except sf.SecondFactorError as exc:
            form.code.errors = [exc.shown]
        else:
            target = sf.pending_next() or home_url_for(user)
            sf.complete_sign_in(user, "enrolment")
            db.session.commit()
            return render_template("auth/recovery_codes.html", codes=codes, target=target)
    status = 400 if request.method == "POST" else 200
    enrolment = sf.begin_enrolment(user)
    return render_template("auth/enrol.html", form=form, enrolment=enrolment,
                           required=True), status


@bp.route("/second-factor/set-up", methods=["GET", "POST"])
@login_required
def enrol() -> Response | str | tuple[str, int]:
    """A signed-in user (a trainee, for whom it is optional) sets up a second factor."""
    factor = sf.factor_of(current_user)  # not is_enrolled: a security key alone may add one
    if factor is not None and factor.enrolled_at is not None:
        flash(gettext("Your second factor is already on. To move it to a new phone, use "
                      "“Replace authenticator”."), "info")
        return redirect(url_for("account.security"))
    form = EnrolForm()
    if form.validate_on_submit():
        try:
            codes = sf.confirm_enrolment(current_user, form.code.data or "")
        except sf.SecondFactorError as exc:
            form.code.errors = [exc.shown]
        else:
            session[sf.PASSED] = True
            return render_template("auth/recovery_codes.html", codes=codes,
                                   target=url_for("account.security"))
    status = 400 if request.method == "POST" else 200
    enrolment = sf.begin_enrolment(current_user)
    return render_template("auth/enrol.html", form=form, enrolment=enrolment,
                           required=False), status


# Pages a signed-in privileged user may reach without the second factor: signing out (and
# the public static files, checked without loading the user).
_OPEN_ENDPOINTS = frozenset({"auth.logout"})


@bp.before_app_request
def _privileged_pages_need_second_factor() -> Response | None:
    """A privileged session that did not pass the second factor (begun before the user was
    given the role, or before the requirement) is ended and sent to sign in again."""
    if (is_static_endpoint(request.endpoint) or request.endpoint in _OPEN_ENDPOINTS
            or not current_user.is_authenticated):
        return None
    if signed_in_by_token():  # a personal API token, made in a session that passed it
        return None
    if sf.session_passed() or not sf.required_for(current_user):
        return None
    security_log.emit("session.ended", outcome="success", reason="second_factor_required")
    end_current_session()
    db.session.commit()
    flash(gettext("This account needs a second factor. Sign in again to set it up."), "info")
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
