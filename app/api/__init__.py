"""The JSON API, /api/v1, described by an OpenAPI 3.1 document at /api/v1/openapi.json.

flask-smorest (marshmallow + apispec) rather than APIFlask or spectree: it is an extension
of the portal's own Flask app (APIFlask replaces the Flask class, and with it the portal's
error pages), it documents only its own blueprints, and apispec writes OpenAPI 3.1
(``OPENAPI_VERSION``); marshmallow schemas validate every body and query string.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Request, abort
from flask_smorest import Api  # type: ignore[import-untyped]
from flask_smorest import Blueprint as ApiBlueprint  # type: ignore[import-untyped]
from webargs.core import missing
from webargs.flaskparser import FlaskParser, is_json_request

from app.api.schemas import ApiError
from app.validation import JSON_TOO_LARGE, MAX_JSON_BYTES, JSONRefused, loads_strict

API_PREFIX = "/api/v1"


class PortalApi(Api):
    ERROR_SCHEMA = ApiError

    def _register_error_handlers(self) -> None:
        # The portal's own handlers (app/errors.py) answer every error under /api/ in JSON,
        # with the reason; flask-smorest's would also turn the HTML error pages into JSON.
        pass


class StrictJSONParser(FlaskParser):  # type: ignore[misc]
    """webargs reads JSON bodies with json.loads, which takes NaN and Infinity and raises
    RecursionError (a 500) on deep nesting: bodies are read as every JSON the portal reads
    (app.validation.loads_strict), a refusal being a 400 with the reason as on the pages."""

    def _raw_load_json(self, req: Request) -> Any:
        if not is_json_request(req):
            return missing
        data = req.get_data(cache=True)
        if len(data) > MAX_JSON_BYTES:
            abort(413, description=JSON_TOO_LARGE)
        try:
            return loads_strict(data)
        except JSONRefused as exc:
            abort(400, description=f"The body is refused: {exc}.")


class PortalBlueprint(ApiBlueprint):  # type: ignore[misc]
    ARGUMENTS_PARSER = StrictJSONParser()


api = PortalApi()
bp = PortalBlueprint("api", __name__, url_prefix=API_PREFIX,
                  description="Cases, exercises and attempts, certificates, jobs, users "
                              "and clinics of the portal.")

BEARER: dict[str, list[str]] = {"bearerAuth": []}


def init_api(app: Flask) -> None:
    from app.api import auth, docs, job_routes, routes  # noqa: F401  (views on bp)

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
