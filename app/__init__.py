"""CXR Academy: training and certification of chest X-ray readers for TB screening."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

# Importing this package costs nothing: the sandboxed process that parses uploaded files
# imports app.cases modules (and so this package) without the web application, and must
# start in a fraction of a second. Everything the application needs is imported by
# create_app.

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the application. No database or network work happens here."""
    from flask import Flask

    from app import models  # noqa: F401  (every table known to Alembic)
    from app.config import load_config
    from app.extensions import compress, csrf, db, limiter
    from app.schema_migrations import init_migrations

    _listen_to_engines()
    app = Flask(__name__, instance_relative_config=True, instance_path=_instance_path(config))
    load_config(app, config)

    from app.uploads import init_uploads

    init_uploads(app)  # before CSRFProtect, which reads the body
    db.init_app(app)
    init_migrations(app, db, str(MIGRATIONS_DIR))  # Alembic only when a migration runs
    csrf.init_app(app)
    limiter.init_app(app)
    _init_login(app)
    from app.extensions import babel
    from app.i18n import init_i18n

    init_i18n(app, babel)
    from app.schemes.display import init_scheme_display

    init_scheme_display(app)
    from app.cases.notes import teaching_note

    app.add_template_global(teaching_note, "teaching_note")

    from app.audit.security_log import init_security_log
    from app.errors import init_errors
    from app.security import init_security
    from app.validation import init_validation

    init_security(app)
    compress.init_app(app)
    init_security_log(app)
    init_errors(app)
    init_validation(app)  # before the blueprints: their <int:...> rules use its converter
    from app.api import init_api

    init_api(app)  # before the blueprints: a bearer token names the user of the request
    _register_blueprints(app)
    from app.static_cache import init_static_cache, init_static_gzip

    init_static_cache(app)  # after the blueprints: their static files are versioned too
    init_static_gzip(app)  # after Flask-Compress: its hook then runs after this one

    from app.certification.reminder_jobs import register_reminders
    from app.jobs.services import init_jobs
    from app.quizzes.rescoring_job import register_rescoring

    # Kinds of job whose work lives in the training and certification areas.
    register_rescoring()
    register_reminders()
    init_jobs(app)

    from app.cli import register_cli

    register_cli(app)
    _register_template_helpers(app)
    return app


def _instance_path(config: dict[str, Any] | None) -> str | None:
    path = (config or {}).get("INSTANCE_PATH") or os.environ.get("CXR_ACADEMY_INSTANCE_PATH")
    return str(Path(path).resolve()) if path else None


def _init_login(app: Flask) -> None:
    from flask import request

    from app.auth.sessions import load_user
    from app.extensions import login_manager

    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    from app.i18n import N_

    login_manager.login_message = N_("Please sign in to see this page.")
    login_manager.login_message_category = "info"
    # "basic": a changed IP or browser marks the session non-fresh instead of ending it;
    # clinics on unstable links change address mid-exam.
    login_manager.session_protection = "basic"
    login_manager.user_loader(load_user)

    @login_manager.unauthorized_handler
    def _unauthorized():  # type: ignore[no-untyped-def]
        from flask import abort, flash, g, redirect, url_for
        from flask_babel import gettext

        from app.audit import security_log
        from app.auth.sessions import IDLE_ENDED, idle_message
        from app.errors import _wants_json

        idle = bool(g.get(IDLE_ENDED))
        if request.path.startswith("/api/"):
            abort(401, description="Send a personal API token (Authorization: Bearer "
                                   "<token>), or sign in.")
        if _wants_json():  # the 401 handler logs the refusal
            abort(401, description=idle_message() if idle else "Sign in first.")
        security_log.emit("access.refused", outcome="failure", reason="sign_in_required")
        if idle:
            flash(idle_message(), "info")
        else:
            flash(gettext(login_manager.login_message), login_manager.login_message_category)
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def _register_blueprints(app: Flask) -> None:
    # Importing each area's routes module attaches its views to the area's blueprint (the
    # certification editor's join certification_routes.bp, registered once below).
    from app import home, trainee_home  # noqa: F401  (trainee_home: routes on home's bp)
    from app.admin import routes as admin_routes
    from app.api import token_routes
    from app.auth import (
        account_routes,
        second_factor_routes,  # noqa: F401  (on the auth blueprint)
        settings,  # noqa: F401  (on the account blueprint)
    )
    from app.auth import routes as auth_routes
    from app.auth import security_key_routes as key_routes  # /account, and sign-in by key
    from app.cases import routes as cases_routes
    from app.certification import editor as certification_editor  # noqa: F401
    from app.certification import routes as certification_routes
    from app.certification import verify
    from app.help import routes as help_routes
    from app.jobs import routes as jobs_routes
    from app.pacs import routes as pacs_routes
    from app.qc import (
        concordance_routes,  # noqa: F401  (on the QC blueprint)
        promote_routes,  # noqa: F401  (on the QC blueprint)
    )
    from app.qc import entry_routes as qc_entry_routes  # noqa: F401  (views on qc_routes.bp)
    from app.qc import figure_routes as qc_figure_routes  # noqa: F401  (on qc_routes.bp)
    from app.qc import flag_pages as qc_flag_pages  # noqa: F401
    from app.qc import routes as qc_routes
    from app.quizzes import authoring as quizzes_authoring  # noqa: F401
    from app.quizzes import routes as quizzes_routes
    from app.viewer import routes as viewer_routes

    for module in (
        home,
        auth_routes,
        account_routes,
        key_routes,
        token_routes,
        admin_routes,
        cases_routes,
        quizzes_routes,
        viewer_routes,
        certification_routes,
        verify,
        help_routes,
        jobs_routes,
        pacs_routes,
        qc_routes,
    ):
        app.register_blueprint(module.bp)


def _register_template_helpers(app: Flask) -> None:
    from flask import has_request_context
    from flask_login import current_user

    from app.auth.forms import LogoutForm
    from app.auth.roles import Role

    @app.template_filter("replace_tie")
    def _tie_item(tie: str) -> str:
        """A consensus tie "item:option" names its item."""
        return tie.partition(":")[0]

    @app.context_processor
    def _globals() -> dict[str, Any]:
        # Templates are also rendered outside requests (e-mails from the command line).
        signed_in = has_request_context() and current_user.is_authenticated
        return {"Role": Role, "logout_form": LogoutForm(formdata=None) if signed_in else None}


def _listen_to_engines() -> None:
    """The connection hooks below, on every engine (once per process)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    for name, hook in (("connect", _sqlite_foreign_keys),
                       ("do_connect", _sqlite_file_owner_only)):
        if not event.contains(Engine, name, hook):
            event.listen(Engine, name, hook)


def _sqlite_foreign_keys(dbapi_connection: Any, connection_record: Any) -> None:
    # SQLite ignores foreign keys unless asked, per connection.
    import sqlite3

    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def _sqlite_file_owner_only(dialect: Any, connection_record: Any, cargs: list[Any],
                            cparams: dict[str, Any]) -> None:
    """Create a new SQLite database file readable by its owner alone (0600), as the secrets
    in the instance folder: it holds password hashes and the audit log. SQLite would create
    it under the process umask (usually 0644) and gives its -journal and -wal files the
    database file's permissions, so creating the file first covers those too."""
    if dialect.name != "sqlite" or cparams.get("uri") or not cargs:
        return
    path = str(cargs[0])
    if path in ("", ":memory:"):
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:  # it exists already, or its folder is missing: SQLite says so itself
        return
    os.close(fd)
