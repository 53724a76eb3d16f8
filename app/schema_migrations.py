"""Flask-Migrate, set up on first use.

Importing Flask-Migrate imports Alembic (about a tenth of a second of CPU), which only the
``db`` commands, ``demo`` and the migrations themselves use: every web worker and every
other command (``cases import`` above all) would pay for it at start. So the application
gets a stand-in for ``app.extensions["migrate"]`` and for the ``db`` command group; the
first use of either sets Flask-Migrate up for real, exactly as ``Migrate.init_app`` would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from flask import Flask
    from flask_sqlalchemy import SQLAlchemy

MIGRATE_OPTIONS: dict[str, Any] = {"render_as_batch": True, "compare_type": True}


def init_migrations(app: Flask, db: SQLAlchemy, directory: str) -> None:
    app.extensions["migrate"] = _MigrateOnFirstUse(app, db, directory)
    app.cli.add_command(_DbCommands(app, name="db", help="Perform database migrations."))


def _set_up(app: Flask, db: SQLAlchemy, directory: str) -> Any:
    """Flask-Migrate's own set-up: replaces both stand-ins with the real objects."""
    from flask_migrate import Migrate  # type: ignore[import-untyped]

    Migrate().init_app(app, db, directory=directory, **MIGRATE_OPTIONS)
    return app.extensions["migrate"]


class _MigrateOnFirstUse:
    """``app.extensions["migrate"]`` until flask_migrate (upgrade(), migrations/env.py)
    reads an attribute of it."""

    def __init__(self, app: Flask, db: SQLAlchemy, directory: str) -> None:
        self._args = (app, db, directory)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_args":  # copy/pickle probes: not a use
            raise AttributeError(name)
        return getattr(_set_up(*self._args), name)


class _DbCommands(click.Group):
    """The ``db`` group's name and help for listings; running it runs Flask-Migrate's
    group (click invokes the command of the context that make_context returns)."""

    def __init__(self, app: Flask, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._app = app

    def _real(self) -> click.Group:
        from flask_migrate.cli import db as migrate_commands  # type: ignore[import-untyped]

        migration = self._app.extensions.get("migrate")
        if isinstance(migration, _MigrateOnFirstUse):
            _set_up(*migration._args)
        return migrate_commands

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        return self._real().make_context(info_name, args, parent=parent, **extra)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._real().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._real().get_command(ctx, cmd_name)
