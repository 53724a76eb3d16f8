"""Access rules as decorators."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from flask import abort
from flask_babel import gettext
from flask_login import current_user, login_required

from app.auth.roles import Role

P = ParamSpec("P")
R = TypeVar("R")


def roles_required(*roles: Role) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Signed-in users holding any of ``roles``; others get 403 with the reason."""
    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @wraps(view)
        @login_required
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            if not current_user.has_role(*roles):
                # The role names in the reader's language: read per request.
                needed = ", ".join(r.label.lower() for r in roles)
                abort(403, description=gettext("This page is only for: %(roles)s.",
                                               roles=needed))
            return view(*args, **kwargs)

        return wrapped

    return decorator
