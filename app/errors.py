"""Error pages: a clear reason for every 4xx, nothing internal on a 500."""

from __future__ import annotations

from flask import Flask, current_app, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.wrappers import Response

from app.extensions import db

CSRF_REASON = (
    "The form could not be accepted because its security token is missing or has expired "
    "(CSRF check). Reload the page and try again."
)


def _wants_json() -> bool:
    if request.is_json or request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    accepted = request.accept_mimetypes
    return best == "application/json" and accepted[best] > accepted["text/html"]


def _render(code: int, title: str, reason: str) -> tuple[Response | str, int]:
    if _wants_json():
        return jsonify(error=title, message=reason, status=code), code
    return render_template("errors/error.html", code=code, title=title, reason=reason), code


def handle_http_error(exc: HTTPException) -> tuple[Response | str, int] | HTTPException:
    if exc.code is None or exc.code < 400:
        return exc
    if exc.code >= 500:
        return handle_server_error(exc)
    if exc.code == 413:
        limit = request.max_content_length
        size = f" of {limit // 1024**2} MB" if limit else ""
        return _render(413, exc.name, f"The upload is larger than the limit{size}. Send fewer "
                       "or smaller files at a time.")
    return _render(exc.code, exc.name, exc.description or exc.name)


def handle_csrf_error(exc: CSRFError) -> tuple[Response | str, int]:
    return _render(400, "Bad Request", CSRF_REASON)


def handle_server_error(exc: Exception) -> tuple[Response | str, int]:
    # The session may hold a half-done transaction; drop it so nothing partial is committed.
    db.session.rollback()
    original = getattr(exc, "original_exception", None)
    if original is not None:
        current_app.logger.error(
            "Unhandled error on %s %s", request.method, request.path, exc_info=original
        )
    return _render(
        500,
        "Internal Server Error",
        "Something went wrong on our side. Your last change may not have been saved; "
        "please try again. If it keeps happening, tell your administrator the time it happened.",
    )


def init_errors(app: Flask) -> None:
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(InternalServerError, handle_server_error)
