"""Error pages: a clear reason for every 4xx, nothing internal on a 500, and a page that
needs no database while the database is out of reach (503 with Retry-After)."""

from __future__ import annotations

import redis
from flask import Flask, current_app, jsonify, render_template, request, session
from flask_babel import force_locale, gettext
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from limits.errors import StorageError
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.wrappers import Response

from app.audit import security_log
from app.extensions import db
from app.i18n import DEFAULT_LANGUAGE, LANGUAGES, N_, SESSION_KEY

# Errors that mean the database cannot be reached (stopped, restarting, its file gone), as
# opposed to a refused statement: the request may succeed once it is back.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError)
RETRY_AFTER_SECONDS = 30
UNAVAILABLE_TITLE = N_("Service Unavailable")
UNAVAILABLE_REASON = N_(
    "The portal cannot reach its database at the moment. Nothing was changed by this request. "
    "Please try again in a minute; answers not yet saved stay on this page and are sent when "
    "it is back."
)

# Errors that mean the shared store (Redis: rate limits, job queue) cannot be reached. The
# rate limiter wraps its storage's errors in StorageError (app.shared_services); the queue
# raises redis-py's own. A limit that cannot be counted refuses rather than lets through.
SHARED_STORE_UNAVAILABLE = (StorageError, redis.exceptions.ConnectionError,
                            redis.exceptions.TimeoutError)
SHARED_STORE_REASON = N_(
    "The portal cannot reach a service it shares between its servers (the store of sign-in "
    "limits and background jobs) at the moment. Please try again in a minute."
)

CSRF_REASON = _l(
    "The form could not be accepted because its security token is missing or has expired "
    "(CSRF check). Reload the page and try again."
)
SERVER_ERROR_REASON = _l(
    "Something went wrong on our side. Your last change may not have been saved; please try "
    "again. If it keeps happening, tell your administrator the time it happened.")

# The page titles of the errors a reader meets, in the reader's language (JSON keeps
# Werkzeug's English names: clients match on them).
HTTP_TITLES = {
    400: _l("Bad Request"),
    401: _l("Unauthorized"),
    403: _l("Forbidden"),
    404: _l("Not Found"),
    405: _l("Method Not Allowed"),
    409: _l("Conflict"),
    410: _l("Gone"),
    413: _l("Request Entity Too Large"),
    415: _l("Unsupported Media Type"),
    422: _l("Unprocessable Entity"),
    429: _l("Too Many Requests"),
    500: _l("Internal Server Error"),
}


def _wants_json() -> bool:
    if request.is_json or request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    accepted = request.accept_mimetypes
    return best == "application/json" and accepted[best] > accepted["text/html"]


def _render(code: int, title: str, reason: object) -> tuple[Response | str, int]:
    """``reason``: a sentence, or a lazy translation (English in JSON, the reader's
    language on a page)."""
    if _wants_json():
        with force_locale("en"):
            return jsonify(error=title, message=str(reason), status=code), code
    try:
        # The full page (menu, signed-in user) reads the database for the current user.
        page_title = HTTP_TITLES.get(code, title)
        return render_template("errors/error.html", code=code, title=page_title,
                               reason=reason), code
    except DATABASE_UNAVAILABLE:
        _forget_transaction()
        return _unavailable()


def _forget_transaction() -> None:
    """Drop the session's transaction; with the database gone even that may fail."""
    try:
        db.session.rollback()
    except DATABASE_UNAVAILABLE:
        db.session.close()


def _language_without_database() -> str:
    """The reader's language as far as it is known without the database (whose user row
    holds the setting): the session's choice, else the browser's."""
    chosen = session.get(SESSION_KEY)
    if chosen in LANGUAGES:
        return str(chosen)
    return request.accept_languages.best_match(list(LANGUAGES)) or DEFAULT_LANGUAGE


def _unavailable(reason: str = UNAVAILABLE_REASON,
                 code: str = "database_unavailable") -> tuple[Response, int]:
    """The 503 of an unreachable database (or shared store): rendered from a template that
    reads nothing from the database (no menu, no current user), with Retry-After."""
    response: Response
    if _wants_json():
        response = jsonify(error=UNAVAILABLE_TITLE, reason=code,
                           message=reason, status=503,
                           retry_after=RETRY_AFTER_SECONDS)
    else:
        # Straight from the template environment: render_template would run the context
        # processors, which ask the database who is signed in; the language is forced, as
        # the usual selector would read the signed-in user's setting from the database.
        language = _language_without_database()
        with force_locale(language):
            page = current_app.jinja_env.get_template("errors/unavailable.html")
            response = Response(page.render(code=503, title=gettext(UNAVAILABLE_TITLE),
                                            reason=gettext(reason), current_language=language),
                                mimetype="text/html")
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    # Set here so that the after-request hook need not ask who is signed in (the database).
    response.headers["Cache-Control"] = "no-store"
    return response, 503


def handle_database_unavailable(exc: Exception) -> tuple[Response, int]:
    _forget_transaction()
    current_app.logger.error("Database unavailable on %s %s: %s", request.method,
                             request.path, type(exc).__name__)
    return _unavailable()


def handle_shared_store_unavailable(exc: Exception) -> tuple[Response, int]:
    _forget_transaction()
    current_app.logger.error("Shared store (Redis) unavailable on %s %s: %s", request.method,
                             request.path, exc)
    return _unavailable(SHARED_STORE_REASON, "shared_store_unavailable")


def handle_http_error(exc: HTTPException) -> tuple[Response | str, int] | HTTPException:
    if exc.code is None or exc.code < 400:
        return exc
    if exc.code >= 500:
        return handle_server_error(exc)
    if exc.code == 429:
        _log_rate_limit(exc)
    if exc.code == 413 and exc.description == type(exc).description:
        limit = request.max_content_length
        if limit:
            return _render(413, exc.name, _l(
                "The upload is larger than the limit of %(megabytes)s MB. Send fewer or "
                "smaller files at a time.", megabytes=limit // 1024**2))
        return _render(413, exc.name, _l(
            "The upload is larger than the limit. Send fewer or smaller files at a time."))
    return _render(exc.code, exc.name, exc.description or exc.name)


def _log_rate_limit(exc: HTTPException) -> None:
    # Flask-Limiter's refusal names the limit ("10 per 15 minute"). Refused access (401,
    # 403) is logged by the security log from the response, however the page refused.
    limit = getattr(getattr(exc, "limit", None), "limit", None)
    security_log.emit("rate_limit.refused", outcome="failure", status=429,
                      limit=str(limit) if limit is not None else None)


def handle_csrf_error(exc: CSRFError) -> tuple[Response | str, int]:
    # flask-wtf's reason ("The CSRF token is missing.") names no value of the request.
    security_log.emit("csrf.refused", outcome="failure", status=400, reason=exc.description)
    return _render(400, "Bad Request", CSRF_REASON)


def handle_server_error(exc: Exception) -> tuple[Response | str, int]:
    # The session may hold a half-done transaction; drop it so nothing partial is committed.
    original = getattr(exc, "original_exception", None)
    if isinstance(original, SHARED_STORE_UNAVAILABLE):
        # Raised after the view, where the rate limiter counts a refused sign-in.
        return handle_shared_store_unavailable(original)
    _forget_transaction()
    if original is not None:
        current_app.logger.error(
            "Unhandled error on %s %s", request.method, request.path, exc_info=original
        )
    return _render(500, "Internal Server Error", SERVER_ERROR_REASON)


def init_errors(app: Flask) -> None:
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(InternalServerError, handle_server_error)
    for error in DATABASE_UNAVAILABLE:
        app.register_error_handler(error, handle_database_unavailable)
    for store_error in SHARED_STORE_UNAVAILABLE:
        app.register_error_handler(store_error, handle_shared_store_unavailable)
