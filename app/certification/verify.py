"""Public verification of a certificate from its code: no sign-in, nothing but the holder,
programme, dates and status."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from app.certification.services import find_by_code, status
from app.extensions import limiter

bp = Blueprint("verify", __name__, url_prefix="/verify")

# Codes carry 80 bits, but guessing is slowed down as well.
GUESS_LIMIT = "30 per minute;300 per hour"


def public_record(code: str) -> dict | None:
    """What anyone may know of the certificate with ``code`` (None: no such code); the
    page, its JSON and the API's verify answer with it."""
    certificate = find_by_code(code)
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
    found = public_record(code)
    if found is None:
        return render_template("certification/verify.html", found=None), 404
    return render_template("certification/verify.html", found=found)


@bp.route("/<code>.json")
@limiter.limit(GUESS_LIMIT)
def show_json(code: str) -> Response:
    found = public_record(code)
    if found is None:
        abort(404, description="No certificate has this code.")
    return jsonify(found)
