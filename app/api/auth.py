"""Who calls the API: a personal token (``Authorization: Bearer``) or the signed-in page.

A bearer request is its token's user for that request alone: nothing is put in the
session, and it needs no CSRF token (no browser sends the header by itself). A request
without the header is the session's user, and a change it asks for needs the CSRF token
as on every page. A read-only token is refused anything but reading.
"""

from __future__ import annotations

from flask import Flask, current_app, g, jsonify, request
from flask_login import AnonymousUserMixin  # type: ignore[import-untyped]
from werkzeug.exceptions import UnprocessableEntity
from werkzeug.wrappers import Response

from app.api import API_PREFIX, bp
from app.api.models import ApiToken, TokenScope
from app.api.tokens import TokenRefused, check_token
from app.audit import security_log
from app.auth.sessions import API_TOKEN, signed_in_by_token
from app.extensions import csrf
from app.validation import refusal_sentence, refused_fields

READING = frozenset({"GET", "HEAD", "OPTIONS"})
# Whom a refusal of a token not presented by its owner names: nobody, not the session's user.
_NOBODY = AnonymousUserMixin()


def _refusal(status: int, reason: str, message: str) -> tuple[Response, int]:
    name = {401: "Unauthorized", 403: "Forbidden"}[status]
    response = jsonify(error=name, message=message, status=status, reason=reason)
    if status == 401:
        response.headers["WWW-Authenticate"] = f'Bearer error="invalid_token", ' \
                                               f'error_description="{reason}"'
    return response, status


def _authenticate_bearer() -> tuple[Response, int] | None:
    if not (request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/")):
        return None
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, presented = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        _log_refusal(401, "malformed")
        return _refusal(401, "malformed", 'Send the token as "Authorization: Bearer '
                                          '<token>".')
    try:
        token = check_token(presented.strip())
    except TokenRefused as exc:
        _log_refusal(401, exc.reason, prefix=exc.prefix, token=exc.token,
                     genuine=exc.genuine)
        return _refusal(401, exc.reason, exc.message)
    g.setdefault(API_TOKEN, token)
    # Flask-Login's current user for this request only (its loader would read the session).
    g._login_user = token.user
    if token.scope == TokenScope.READ.value and request.method not in READING:
        _log_refusal(403, "read_only_token", prefix=token.prefix, token=token, genuine=True)
        return _refusal(403, "read_only_token", "This API token may only read: create a "
                                                "read and write token to change anything.")
    return None


def _log_refusal(status: int, reason: str, *, prefix: str | None = None,
                 token: ApiToken | None = None, genuine: bool = False) -> None:
    """An ``api_token.refused`` line: why, and the token's public prefix and id when it
    has them, never what was sent. The line names the token's owner only when the token
    itself was presented (revoked, expired, read-only): a wrong secret after a known prefix
    is someone else's guess, given as the stored token's id alone."""
    fields: dict[str, object] = {"reason": reason}
    if prefix is not None:
        fields["token_prefix"] = prefix
    if token is not None:
        fields.update(object_type="api_token", object_id=str(token.id))
    security_log.emit("api_token.refused", outcome="failure", status=status,
                      user=token.user if genuine and token is not None else _NOBODY,
                      **fields)


def bearer_request() -> bool:
    return signed_in_by_token()


@bp.before_request
def _session_requests_need_csrf() -> None:
    """The blueprint is exempt from the app-wide CSRF check so that bearer requests pass;
    a request on the session cookie is checked here instead."""
    if (not bearer_request() and request.method not in READING
            and current_app.config.get("WTF_CSRF_ENABLED", True)):
        csrf.protect()


@bp.errorhandler(UnprocessableEntity)
def _invalid_input(exc: UnprocessableEntity) -> tuple[Response, int]:
    """A body or query string its schema refuses: each refused field and why."""
    messages = (getattr(exc, "data", None) or {}).get("messages") or {}
    # webargs nests the messages under the location ("json", "query").
    errors = {field: reason for where in messages.values()
              for field, reason in refused_fields(where).items()}
    # The sentence the pages' JSON endpoints give for the same refusal.
    return jsonify(error="Unprocessable Entity", status=422, errors=errors,
                   message=refusal_sentence(errors)), 422


def init_api_auth(app: Flask) -> None:
    """Before the blueprints: the second-factor check of privileged sessions (an app-wide
    before-request of the auth blueprint) must see the token's user."""
    app.before_request(_authenticate_bearer)
    csrf.exempt(bp)
