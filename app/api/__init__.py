"""The JSON API, /api/v1, described by an OpenAPI 3.1 document at /api/v1/openapi.json.

flask-smorest (marshmallow + apispec) rather than APIFlask or spectree: it is an extension
of the portal's own Flask app (APIFlask replaces the Flask class, and with it the portal's
error pages), it documents only its own blueprints, and apispec writes OpenAPI 3.1
(``OPENAPI_VERSION``); marshmallow schemas validate every body and query string.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Request
from flask_smorest import Api  # type: ignore[import-untyped]
from flask_smorest import Blueprint as ApiBlueprint  # type: ignore[import-untyped]
from webargs.flaskparser import FlaskParser

from app.api.schemas import ApiError
from app.validation import json_body

API_PREFIX = "/api/v1"


class PortalApi(Api):
    ERROR_SCHEMA = ApiError

    def _register_error_handlers(self) -> None:
        # The portal's own handlers (app/errors.py) answer every error under /api/ in JSON,
        # with the reason; flask-smorest's would also turn the HTML error pages into JSON.
        pass


class StrictJSONParser(FlaskParser):  # type: ignore[misc]
    """Bodies are read as the pages' JSON endpoints read theirs (app.validation.json_body):
    webargs' own reading takes NaN and Infinity, raises RecursionError (a 500) on deep
    nesting, and reads a body that is not JSON as an empty one, which would save an empty
    answer over the last one."""

    def _raw_load_json(self, req: Request) -> Any:
        return json_body()


class PortalBlueprint(ApiBlueprint):  # type: ignore[misc]
    ARGUMENTS_PARSER = StrictJSONParser()


api = PortalApi()
bp = PortalBlueprint("api", __name__, url_prefix=API_PREFIX,
                  description="Cases, exercises and attempts, certificates, jobs, QC "
                              "records, users and clinics of the portal.")

BEARER: dict[str, list[str]] = {"bearerAuth": []}


def init_api(app: Flask) -> None:
    from app.api import auth, docs, job_routes, qc_routes, routes  # noqa: F401  (views on bp)

    app.config.setdefault("API_TITLE", "CXR Academy API")
    app.config.setdefault("API_VERSION", "v1")
    app.config.setdefault("OPENAPI_VERSION", "3.1.0")
    app.config.setdefault("OPENAPI_URL_PREFIX", API_PREFIX)
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    app.config.setdefault("API_SPEC_OPTIONS", {
        "info": {"description": "Call with `Authorization: Bearer <token>`: create a personal "
                                "API token on your account's API tokens page. A token acts "
                                "with its owner's roles; a read-only token is refused any "
                                "change."},
        "security": [BEARER],
        "components": {"securitySchemes": {"bearerAuth": {
            "type": "http", "scheme": "bearer",
            "description": "A personal API token (cxr_…)."}}},
    })
    auth.init_api_auth(app)
    api.init_app(app)
    from app.validation import MAX_DB_INTEGER, BoundedIntegerConverter

    # Ids past what the database holds are a 404 like any unknown id: the document says so.
    api.register_converter(BoundedIntegerConverter, lambda converter: {
        "type": "integer", "minimum": 0, "maximum": MAX_DB_INTEGER})
    api.register_blueprint(bp)
    app.register_blueprint(docs.bp)
