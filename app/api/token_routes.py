"""The account's API tokens page: create (the token shown once), list, revoke.

A new token is shown by post/redirect/get: the POST creates it and redirects, and the page
it redirects to shows it once. Between the two the token waits in the session, encrypted
(app.field_encryption: the session is a signed cookie, readable by whoever holds it), and
the showing takes it out, so a reload neither creates another token nor shows it again."""

from __future__ import annotations

from datetime import timedelta

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    session,
    url_for,
)
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required  # type: ignore[import-untyped]
from flask_wtf import FlaskForm  # type: ignore[import-untyped]
from werkzeug.wrappers import Response
from wtforms import (  # type: ignore[import-untyped]
    DateField,
    RadioField,
    SelectChoice,
    StringField,
)
from wtforms.validators import DataRequired, Length  # type: ignore[import-untyped]

from app.api import tokens
from app.api.models import ApiToken, TokenScope
from app.db_types import utcnow
from app.extensions import db
from app.field_encryption import UndecryptableField, decrypt, encrypt

bp = Blueprint("api_tokens", __name__, url_prefix="/account")

# The session key holding the token created, until it is shown (not itself a secret).
NEW_TOKEN = "api_token_to_show"  # noqa: S105

DEFAULT_LIFETIME_DAYS = 90


# A token's access as its owner reads it (TokenScope.label stays English for the API).
SCOPE_LABELS = {TokenScope.READ.value: _l("Read only"),
                TokenScope.WRITE.value: _l("Read and write")}


class NewTokenForm(FlaskForm):
    name = StringField(_l("Name"), description=_l("What the token is for, e.g. “registry export”."),
                       validators=[DataRequired(_l("Give the token a name.")),
                                   Length(max=tokens.NAME_MAX)])
    scope = RadioField(_l("Access"),
                       choices=[SelectChoice(s.value, SCOPE_LABELS[s.value]) for s in TokenScope],
                       default=TokenScope.READ.value,
                       validators=[DataRequired(_l("Choose the token's access."))])
    expires_on = DateField(_l("Expires on"), validators=[DataRequired(
        _l("Choose the date the token expires (YYYY-MM-DD)."))],
        description=_l("At most %(days)s days from today; the token works until the end of "
                       "that day (UTC).", days=tokens.MAX_LIFETIME_DAYS))


class RevokeForm(FlaskForm):
    pass


def _page(form: NewTokenForm, status: int = 200, *, new_secret: str | None = None
          ) -> tuple[str, int]:
    today = utcnow().date()
    return render_template(
        "auth/api_tokens.html", form=form, tokens=tokens.tokens_of(current_user),
        revoke_form=RevokeForm(), new_secret=new_secret, now=utcnow(), scope_labels=SCOPE_LABELS,
        max_date=tokens.latest_expiry(today).isoformat(), min_date=today.isoformat()), status


@bp.route("/api-tokens", methods=["GET", "POST"])
@login_required
def index() -> tuple[str, int] | Response:
    form = NewTokenForm()
    if not form.is_submitted():
        form.expires_on.data = utcnow().date() + timedelta(days=DEFAULT_LIFETIME_DAYS)
        return _page(form, new_secret=_take_new_secret())
    if not form.validate():
        return _page(form, 400)
    try:
        created = tokens.create_token(current_user, form.name.data or "",
                                      form.scope.data or "", form.expires_on.data)
    except tokens.TokenError as exc:
        form.form_errors.append(exc.sentence)
        return _page(form, 400)
    _hold_new_secret(created)
    return redirect(url_for("api_tokens.index"), 303)


def _keys() -> list[str]:
    return list(current_app.config["FIELD_ENCRYPTION_KEYS"])


def _hold_new_secret(created: tokens.NewToken) -> None:
    session[NEW_TOKEN] = {"user": current_user.id, "token": created.token.id,
                          "secret": encrypt(_keys(), created.secret)}


def _take_new_secret() -> str | None:
    """The token created just before, once: it leaves the session as it is shown. Only to
    the user who created it, and only while it is live (not revoked meanwhile)."""
    held = session.pop(NEW_TOKEN, None)
    if not isinstance(held, dict) or held.get("user") != current_user.id:
        return None
    token = db.session.get(ApiToken, held.get("token"))
    if token is None or token.user_id != current_user.id or token.revoked_at is not None:
        return None
    try:
        return decrypt(_keys(), str(held.get("secret")))
    except UndecryptableField:  # the keys were rotated in between: it cannot be shown
        return None


@bp.route("/api-tokens/<int:token_id>/revoke", methods=["POST"])
@login_required
def revoke(token_id: int) -> Response:
    if not RevokeForm().validate_on_submit():
        abort(400, description=gettext("Revoke from the API tokens page (its Revoke button)."))
    try:
        token = tokens.revoke_token(current_user, token_id)
    except tokens.TokenError as exc:
        abort(exc.status, description=exc.sentence)
    flash(gettext("The token “%(name)s” is revoked: programs using it are refused.",
                  name=token.name), "success")
    return redirect(url_for("api_tokens.index"))
