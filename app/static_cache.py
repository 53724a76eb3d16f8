"""Caching of the portal's own static files (stylesheets, scripts, icons).

A page names each file with the hash of its content (``?v=…``, added by ``url_for``): that
URL never changes meaning, so the browser keeps it for a year without asking again. Without
this every page of an exam asked again for each of its ~12 files (304 Not Modified): at
1,000 trainees moving to a new case every minute or so, some 200 requests a second for
nothing. Files a script imports by a relative name (``./viewer.js``) carry no hash; they are
kept for a few minutes, so after an upgrade a page may run with modules at most that old.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import threading
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, request

VERSIONED_MAX_AGE = 365 * 24 * 3600
UNVERSIONED_MAX_AGE = 300
# Compressed static files kept in memory: the portal has a few dozen, each version once.
_GZIP_ENTRIES = 256


def is_static_endpoint(endpoint: str | None) -> bool:
    """The portal's own public files (``static`` and each blueprint's ``<name>.static``):
    served to anyone, so no hook needs the signed-in user for them. Loading it would cost
    a database round trip on each of the ~15 files a fresh browser fetches per page."""
    return endpoint is not None and (endpoint == "static" or endpoint.endswith(".static"))


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
        if is_static_endpoint(endpoint) and "v" not in values:
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


def init_static_gzip(app: Flask) -> None:
    """Each static file gzipped once per version, not on every download.

    Flask-Compress compresses every response anew; its own cache would cover every response
    (pages and JSON too), keyed by whatever the key function returns, so it does not fit
    here. A fresh browser downloads some 15 scripts and stylesheets, the HTJ2K decoder
    (300 KB of WebAssembly) among them, and compressing them again for each of 1,000
    trainees was a large share of the workers' CPU. Registered after Flask-Compress, this
    runs before it (Flask runs after-request hooks last-registered first); Flask-Compress
    leaves a response that says its Content-Encoding alone.
    """
    mimetypes = set(app.config.get("COMPRESS_MIMETYPES") or ())
    minimum = int(app.config.get("COMPRESS_MIN_SIZE", 500))
    level = int(app.config.get("COMPRESS_LEVEL", 6))
    cache: dict[tuple[str, str], bytes] = {}
    lock = threading.Lock()

    @app.after_request
    def _gzip_static(response: Response) -> Response:
        if (not is_static_endpoint(request.endpoint) or response.status_code != 200
                or response.mimetype not in mimetypes or "Content-Encoding" in response.headers
                or not request.accept_encodings["gzip"]):
            return response
        etag, weak = response.get_etag()
        if not etag or weak:
            return response  # a file served without its validator: left to Flask-Compress
        key = (request.path, etag)  # the ETag changes with the file's time and size
        body = cache.get(key)
        response.direct_passthrough = False
        if body is None:
            data = response.get_data()
            if len(data) < minimum:
                return response
            body = gzip.compress(data, compresslevel=level)
            with lock:
                if len(cache) >= _GZIP_ENTRIES:
                    cache.clear()
                cache[key] = body
        response.close()  # the file it was to send: replaced by the compressed bytes
        response.set_data(body)
        response.headers["Content-Encoding"] = "gzip"
        vary = response.headers.get("Vary")
        if not vary or "accept-encoding" not in vary.lower():
            response.headers["Vary"] = f"{vary}, Accept-Encoding" if vary else "Accept-Encoding"
        # As Flask-Compress names a compressed body, so that a revalidation gets its 304.
        response.set_etag(f"{etag}:gzip")
        response.make_conditional(request)  # turns it into a 304 in place when unchanged
        return response
