"""Per-view upload size limits, applied before anything reads the request body."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import Flask, current_app, request

F = TypeVar("F", bound=Callable[..., object])
_ATTRIBUTE = "_cxr_upload_limit_setting"


def large_upload(setting: str) -> Callable[[F], F]:
    """Allow a view a larger body than MAX_CONTENT_LENGTH: the config ``setting`` in bytes."""

    def decorator(view: F) -> F:
        setattr(view, _ATTRIBUTE, setting)
        return view

    return decorator


def init_uploads(app: Flask) -> None:
    """Register first, so the limit is set before the CSRF check parses the form."""

    @app.before_request
    def _apply_view_limit() -> None:
        view = current_app.view_functions.get(request.endpoint or "")
        setting = getattr(view, _ATTRIBUTE, None)
        if setting:
            request.max_content_length = int(current_app.config[setting])
