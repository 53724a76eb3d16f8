"""One limit on passwords typed again by a signed-in user (turning two-step sign-in off,
removing a security key).

A borrowed signed-in browser must not become a way to guess the account's password, and the
pages that ask for it share one counter per account, so asking on two pages does not double
the guesses.
"""

from __future__ import annotations

from flask import current_app
from flask_babel import gettext
from flask_login import current_user  # type: ignore[import-untyped]
from werkzeug.wrappers import Response

from app.extensions import limiter
from app.i18n import N_

TOO_MANY_WRONG_PASSWORDS = N_("Too many wrong passwords. Wait 15 minutes and try again.")


def _limit() -> str:
    return str(current_app.config["ACCOUNT_PASSWORD_RECHECK_LIMIT"])


def _per_account() -> str:
    return f"password-recheck:{current_user.get_id()}"


def _wrong_password(response: Response) -> bool:
    return response.status_code == 401


limit_password_rechecks = limiter.limit(
    _limit, key_func=_per_account, methods=["POST"], deduct_when=_wrong_password,
    error_message=lambda: gettext(TOO_MANY_WRONG_PASSWORDS),
)
