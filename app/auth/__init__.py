"""Sign-in, sign-out, passwords, invitations and role checks."""

from flask import Blueprint

bp = Blueprint("auth", __name__, url_prefix="/auth")
