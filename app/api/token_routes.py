"""The account's API tokens page: create (the token shown once), list, revoke."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, abort, flash, redirect, render_template, url_for
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
from app.api.models import TokenScope
from app.db_types import utcnow

bp = Blueprint("api_tokens", __name__, url_prefix="/account")

DEFAULT_LIFETIME_DAYS = 90


class NewTokenForm(FlaskForm):
    name = StringField("Name", description="What the token is for, e.g. \"registry export\".",
                       validators=[DataRequired("Give the token a name."),
                                   Length(max=tokens.NAME_MAX)])
    scope = RadioField("Access", choices=[SelectChoice(s.value, s.label) for s in TokenScope],
                       default=TokenScope.READ.value,
                       validators=[DataRequired("Choose the token's access.")])
    expires_on = DateField("Expires on", validators=[DataRequired(
        "Choose the date the token expires (YYYY-MM-DD).")],
        description=f"At most {tokens.MAX_LIFETIME_DAYS} days from today; the token works "
                    "until the end of that day (UTC).")


class RevokeForm(FlaskForm):
    pass


def _page(form: NewTokenForm, status: int = 200, new_secret: str | None = None
          ) -> tuple[str, int]:
    today = utcnow().date()
    return render_template(
        "auth/api_tokens.html", form=form, tokens=tokens.tokens_of(current_user),
        revoke_form=RevokeForm(), new_secret=new_secret, now=utcnow(),
        max_date=tokens.latest_expiry(today).isoformat(), min_date=today.isoformat()), status


@bp.route("/api-tokens", methods=["GET", "POST"])
@login_required
def index() -> tuple[str, int]:
    form = NewTokenForm()
    if not form.is_submitted():
        form.expires_on.data = utcnow().date() + timedelta(days=DEFAULT_LIFETIME_DAYS)
        return _page(form)
    if not form.validate():
        return _page(form, 400)
    try:
        created = tokens.create_token(current_user, form.name.data or "",
                                      form.scope.data or "", form.expires_on.data)
    except tokens.TokenError as exc:
        form.form_errors.append(exc.sentence)
        return _page(form, 400)
    # Shown on this response only: only its hash is kept.
    return _page(NewTokenForm(formdata=None, expires_on=form.expires_on.data), 201,
                 new_secret=created.secret)


@bp.route("/api-tokens/<int:token_id>/revoke", methods=["POST"])
@login_required
def revoke(token_id: int) -> Response:
    if not RevokeForm().validate_on_submit():
        abort(400, description="Revoke from the API tokens page (its Revoke button).")
    try:
        token = tokens.revoke_token(current_user, token_id)
    except tokens.TokenError as exc:
        abort(exc.status, description=exc.sentence)
    flash(f"The token \"{token.name}\" is revoked: programs using it are refused.", "success")
    return redirect(url_for("api_tokens.index"))
