"""Migrations: upgrade from empty works and the models agree with the migration head."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from app import MIGRATIONS_DIR
from app.extensions import db


def _differences() -> list:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, db.metadata)


def test_models_and_migration_head_agree(app):
    # The database fixture was brought up with ``upgrade`` from empty.
    assert _differences() == []


def test_downgrade_to_empty_and_upgrade_again(app):
    db.session.remove()
    downgrade(directory=str(MIGRATIONS_DIR), revision="base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    upgrade(directory=str(MIGRATIONS_DIR))
    assert _differences() == []


def test_flask_db_upgrade_command_on_an_empty_sqlite_file(tmp_path):
    env = {**os.environ, "CXR_ACADEMY_INSTANCE_PATH": str(tmp_path)}
    env.pop("CXR_ACADEMY_SQLALCHEMY_DATABASE_URI", None)
    flask = Path(sys.executable).parent / "flask"
    result = subprocess.run([str(flask), "--app", "app", "db", "upgrade"], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "cxr_academy.sqlite3").exists()
    check = subprocess.run([str(flask), "--app", "app", "db", "check"], env=env,
                           capture_output=True, text=True, timeout=120, check=False)
    assert check.returncode == 0, check.stderr + check.stdout


@pytest.mark.postgres
def test_flask_db_upgrade_command_on_an_empty_postgresql_database(postgres_base_url, tmp_path):
    from tests.realservers import create_database

    url = create_database(postgres_base_url, "cxr_cli_upgrade")
    env = {**os.environ, "CXR_ACADEMY_INSTANCE_PATH": str(tmp_path),
           "CXR_ACADEMY_SQLALCHEMY_DATABASE_URI": url}
    flask = Path(sys.executable).parent / "flask"
    for command in (["db", "upgrade"], ["db", "check"]):
        result = subprocess.run([str(flask), "--app", "app", *command], env=env,
                                capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr + result.stdout
