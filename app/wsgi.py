"""The portal as a production server loads it: ``gunicorn "app.wsgi:create_server_app()"``.

The same app as ``create_app()``, and a server that cannot reach the shared stores its
configuration names (Redis for rate limits and the job queue) stops at start with the reason,
instead of answering every request with an error.
"""

from __future__ import annotations

import sys
import threading

from flask import Flask

from app import create_app
from app.shared_services import (
    SharedServiceUnreachable,
    check_shared_services,
    layout_warnings,
)

# The exit status of a gunicorn worker that cannot boot: the gunicorn master then stops
# (Arbiter.WORKER_BOOT_ERROR) instead of starting the worker again and again. Any other
# server simply stops with it.
CANNOT_START = 3


def create_server_app() -> Flask:
    app = create_app()
    try:
        check_shared_services(app)
    except SharedServiceUnreachable as exc:
        # One sentence on standard error (the server's log), no traceback: nothing in the
        # portal's code is wrong, the configuration or Redis is.
        print(f"CXR Academy cannot start: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(CANNOT_START) from None
    for warning in layout_warnings(app.config):
        app.logger.warning("%s", warning)
    start_warm_up(app)
    return app


def start_warm_up(app: Flask) -> threading.Thread:
    """Load what the first request of a kind would otherwise wait for, in a thread, so that
    the server answers at once meanwhile: the programme dashboard's figure (matplotlib and
    its fonts: ~0.5 s the first time in a process) and the QC CUSUM chart at the default
    target rate (choosing its decision interval: ~0.7 s). Here, not in create_app: the commands
    draw no figure and must start fast. Each gunicorn worker calls this as it boots (the
    portal is not preloaded in the master: a thread does not survive a fork)."""

    def warm() -> None:
        from app.certification.figures import warm_up
        from app.qc.figures import warm_up as warm_up_qc

        try:
            app.logger.debug("figures warmed up in %.2f s", warm_up() + warm_up_qc())
        except Exception:  # a warm-up that fails costs the first figure its time, no more
            app.logger.warning("warming up the figures failed", exc_info=True)

    thread = threading.Thread(target=warm, name="warm-up", daemon=True)
    app.extensions["warm_up"] = thread
    thread.start()
    return thread
