"""HTTP security: headers on every response, cookie flags, proxy trust."""

from __future__ import annotations

from flask import Flask, Response, abort, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user
from werkzeug.middleware.proxy_fix import ProxyFix

from app.extensions import talisman
from app.static_cache import is_static_endpoint

# No inline scripts or styles anywhere: every script is a file served by the portal.
# 'wasm-unsafe-eval' lets the viewer's worker compile the vendored HTJ2K and JPEG-LS
# decoders (WebAssembly) and allows no JavaScript eval; workers come from the portal's own files.
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "script-src": ["'self'", "'wasm-unsafe-eval'"],
    "style-src": "'self'",
    "img-src": ["'self'", "data:", "blob:"],
    "worker-src": "'self'",
    "connect-src": "'self'",
    "font-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


class RequestAwareSessionInterface(SecureCookieSessionInterface):
    """Session cookies are Secure whenever the request came over HTTPS (or always, when
    SESSION_COOKIE_SECURE is set), so the plain-HTTP demo still works."""

    def get_cookie_secure(self, app: Flask) -> bool:
        if app.config["SESSION_COOKIE_SECURE"]:
            return True
        return has_request_context() and request.is_secure


def init_security(app: Flask) -> None:
    proxies = int(app.config["TRUSTED_PROXY_COUNT"])
    if proxies:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies
        )
    app.session_interface = RequestAwareSessionInterface()
    talisman.init_app(
        app,
        force_https=bool(app.config["FORCE_HTTPS"]),
        session_cookie_secure=False,  # decided per request above
        session_cookie_http_only=True,
        session_cookie_samesite="Lax",
        frame_options="DENY",
        content_security_policy=CONTENT_SECURITY_POLICY,
        referrer_policy="same-origin",
        permissions_policy={"camera": "()", "microphone": "()", "geolocation": "()"},
        x_xss_protection=False,  # obsolete header; the CSP does this job
    )

    @app.before_request
    def _refuse_nul_characters() -> None:
        # PostgreSQL text cannot hold NUL; refuse such input up front as a clear 400
        # rather than letting it fail deep inside a query.
        values = [*request.args.values(), *request.form.values(), request.path]
        values += [v for v in (request.view_args or {}).values() if isinstance(v, str)]
        if any("\x00" in value for value in values):
            abort(400, description="The request contains a NUL character, which is not allowed.")

    @app.after_request
    def _no_store_private_pages(response: Response) -> Response:
        # Signed-in pages must not be replayed from the browser cache after sign-out.
        if ("Cache-Control" not in response.headers and not is_static_endpoint(request.endpoint)
                and current_user.is_authenticated):
            response.headers["Cache-Control"] = "no-store"
        return response
