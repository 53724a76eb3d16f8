"""Caching of the portal's own static files (stylesheets, scripts, icons).

A page names each file with the hash of its content (``?v=…``, added by ``url_for``): that
URL never changes meaning, so the browser keeps it for a year without asking again. Without
this every page of an exam asked again for each of its ~12 files (304 Not Modified): at
1,000 trainees moving to a new case every minute or so, some 200 requests a second for
nothing. Files a script imports by a relative name (``./viewer.js``) carry no hash; they are
kept for a few minutes, so after an upgrade a page may run with modules at most that old.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, request

VERSIONED_MAX_AGE = 365 * 24 * 3600
UNVERSIONED_MAX_AGE = 300


def _static_folder(app: Flask, endpoint: str) -> str | None:
    if endpoint == "static":
        return app.static_folder
    blueprint = app.blueprints.get(endpoint.rsplit(".", 1)[0])
    return blueprint.static_folder if blueprint is not None else None


def init_static_cache(app: Flask) -> None:
    versions: dict[tuple[str, str], str | None] = {}

    def version(endpoint: str, filename: str) -> str | None:
        key = (endpoint, filename)
        if key not in versions or app.debug:
            folder = _static_folder(app, endpoint)
            path = os.path.join(folder, filename) if folder else None
            try:
                with open(path, "rb") as handle:  # type: ignore[arg-type]
                    versions[key] = hashlib.sha256(handle.read()).hexdigest()[:12]
            except (OSError, TypeError):
                versions[key] = None  # a missing file: its URL stays as it was
        return versions[key]

    @app.url_defaults
    def _add_version(endpoint: str, values: dict[str, Any]) -> None:
        if (endpoint == "static" or endpoint.endswith(".static")) and "v" not in values:
            found = version(endpoint, values.get("filename", ""))
            if found is not None:
                values["v"] = found

    def max_age(endpoint: str, filename: str | None) -> int:
        if filename and request.args.get("v") == version(endpoint, filename):
            return VERSIONED_MAX_AGE
        return UNVERSIONED_MAX_AGE

    def max_age_of(endpoint: str) -> Callable[[str | None], int]:
        return lambda filename: max_age(endpoint, filename)

    app.get_send_file_max_age = max_age_of("static")  # type: ignore[method-assign,assignment]
    for name, blueprint in app.blueprints.items():
        if isinstance(blueprint, Blueprint) and blueprint.static_folder:
            versioned = max_age_of(f"{name}.static")
            blueprint.get_send_file_max_age = versioned  # type: ignore[method-assign,assignment]
