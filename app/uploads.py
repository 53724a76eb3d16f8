"""Per-view upload size limits, applied before anything reads the request body.

A larger limit is a privilege: the view's roles are checked here, before the CSRF check
or the view parse (and spool to disk) the body. Anyone else is answered at once, with
only the request line and headers read; they keep MAX_CONTENT_LENGTH in any case."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import Flask, abort, current_app, request
from flask_babel import gettext
from flask_login import current_user  # type: ignore[import-untyped]
from werkzeug.wrappers import Response

from app.auth.roles import Role

F = TypeVar("F", bound=Callable[..., object])
_ATTRIBUTE = "_cxr_upload_limit"


def large_upload(setting: str, *roles: Role) -> Callable[[F], F]:
    """Allow a view a larger body than MAX_CONTENT_LENGTH (the config ``setting`` in bytes)
    for signed-in users holding any of ``roles``; others are refused before the body is
    read. The view keeps its own role check as well."""

    def decorator(view: F) -> F:
        setattr(view, _ATTRIBUTE, (setting, roles))
        return view

    return decorator


def init_uploads(app: Flask) -> None:
    """Register first, so the check runs before the CSRF check parses the form."""

    @app.before_request
    def _apply_view_limit() -> Response | None:
        view = current_app.view_functions.get(request.endpoint or "")
        limit: tuple[str, tuple[Role, ...]] | None = getattr(view, _ATTRIBUTE, None)
        if limit is None:
            return None
        setting, roles = limit
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return None  # no body; the view's own checks answer
        if not current_user.is_authenticated:
            # The same answer as the view's login_required: a redirect to sign in (401 for JSON).
            return current_app.login_manager.unauthorized()  # type: ignore[attr-defined,no-any-return]
        if roles and not current_user.has_role(*roles):
            needed = ", ".join(str(r.label).lower() for r in roles)
            abort(403, description=gettext("This page is only for: %(roles)s.", roles=needed))
        request.max_content_length = int(current_app.config[setting])
        return None
