"""Public verification of a certificate from its code: no sign-in, nothing but the holder,
programme, dates and status."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from app.certification.models import Certificate
from app.certification.services import find_by_code, status
from app.extensions import limiter
from app.i18n import language_of

bp = Blueprint("verify", __name__, url_prefix="/verify")

# The page's words, shown in the holder's language with the English beside them.
LABELS = {
    "title": _l("Certificate verification"),
    "valid": _l("Valid"),
    "expired": _l("Expired"),
    "revoked": _l("Revoked"),
    "holder": _l("Holder"),
    "programme": _l("Programme"),
    "issued": _l("Issued"),
    "expires": _l("Expires"),
    "code": _l("Code"),
}

# Codes carry 80 bits, but guessing is slowed down as well.
GUESS_LIMIT = "30 per minute;300 per hour"


def public_record(code: str) -> dict | None:
    """What anyone may know of the certificate with ``code`` (None: no such code); the
    page, its JSON and the API's verify answer with it."""
    return _record(find_by_code(code))


def _record(certificate: Certificate | None) -> dict | None:
    if certificate is None:
        return None
    return {
        "code": certificate.code,
        "holder": certificate.holder_name,
        "programme": certificate.programme.title,
        "issued": certificate.issued_at.date().isoformat(),
        "expires": certificate.expires_at.date().isoformat(),
        "status": status(certificate),
    }


@bp.route("/", methods=["GET"])
@limiter.limit(GUESS_LIMIT)
def form() -> Response | str:
    code = (request.args.get("code") or "").strip()
    if code:
        return redirect(url_for("verify.show", code=code))
    return render_template("certification/verify_form.html")


@bp.route("/<code>")
@limiter.limit(GUESS_LIMIT)
def show(code: str) -> str | tuple[str, int]:
    certificate = find_by_code(code)
    found = _record(certificate)
    if certificate is None:
        return render_template("certification/verify.html", found=None, labels=LABELS,
                               holder_language=None), 404
    return render_template("certification/verify.html", found=found, labels=LABELS,
                           holder_language=language_of(certificate.user))


@bp.route("/<code>.json")
@limiter.limit(GUESS_LIMIT)
def show_json(code: str) -> Response:
    found = public_record(code)
    if found is None:
        abort(404, description="No certificate has this code.")
    return jsonify(found)
