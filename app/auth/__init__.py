"""Sign-in, sign-out, passwords, invitations and role checks."""

from flask import Blueprint

bp = Blueprint("auth", __name__, url_prefix="/auth")


@bp.app_context_processor
def _password_rule() -> dict[str, str]:
    """Every page that sets a password states the same rule the server applies."""
    from flask import current_app

    from app.auth.password_policy import rule_sentence

    return {"password_rule": rule_sentence(current_app.config["PASSWORD_MIN_LENGTH"])}
