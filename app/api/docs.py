"""The API's browsable documentation: Swagger UI, vendored (app/static/vendor/swagger-ui),
on the portal's own OpenAPI document."""

from __future__ import annotations

from flask import Blueprint, render_template, url_for

from app.api import API_PREFIX

bp = Blueprint("api_docs", __name__, url_prefix=API_PREFIX)


@bp.route("/docs")
def index() -> str:
    return render_template("api_docs.html", spec_url=url_for("api-docs.openapi_json"))
