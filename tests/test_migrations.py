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
from sqlalchemy import inspect, select, text

from app import MIGRATIONS_DIR
from app.auth.roles import Role
from app.extensions import db
from app.quizzes.answers import save_answer
from app.quizzes.exercises import create_exercise
from app.quizzes.models import Attempt, PeerAccuracy, PeerCaseCalls, PeerCaseShare, PeerStanding
from app.quizzes.services import start_attempt, submit_attempt
from tests.test_attempts import cases  # noqa: F401 (fixture)


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


def test_migrations_keep_the_scores_of_ended_attempts(cases, make_user):  # noqa: F811
    """Down past the sensitivity/specificity columns (b8e0aca72c64) and up again: they are
    refilled from the stored scores, as are the compact case scores. The tallies table
    dropped at the head comes back empty on the way down (nothing reads it)."""
    exam = create_exercise(title="Migrated", kind="exam", scheme_key="ds3030",
                           case_ids=[c.id for c in cases], actor=None)
    for n in range(4):
        trainee = make_user(Role.TRAINEE_RADIOLOGIST)
        attempt = start_attempt(exam, trainee)
        for m, case_id in enumerate(attempt.case_order):
            answers = ({"overall": "abnormal", "findings": ["cavitary_lesion"]}
                       if (n + m) % 3 else {"overall": "normal"})
            save_answer(attempt, trainee, case_id, answers, [])
        submit_attempt(attempt, trainee)

    def kept() -> dict:
        return {a.id: (a.sensitivity, a.specificity, a.accuracy, a.case_set, a.case_scores)
                for a in db.session.scalars(select(Attempt))}

    def standings() -> list:
        with db.engine.connect() as conn:
            return [conn.execute(select(table).order_by(*table.primary_key)).all()
                    for table in (PeerStanding.__table__, PeerAccuracy.__table__,
                                  PeerCaseCalls.__table__, PeerCaseShare.__table__)]

    before, counted = kept(), standings()
    calls = {a.id: a.metrics["calls"] for a in db.session.scalars(select(Attempt))}
    # Attempts scored before the calls were kept: the migration derives them from the
    # right/wrong decisions and the cases' reference.
    for attempt in db.session.scalars(select(Attempt)):
        attempt.metrics = {k: v for k, v in attempt.metrics.items() if k != "calls"}
    db.session.commit()
    assert len(before) == 4 and len(counted[0]) == 4
    assert all(s is not None and a is not None and scores
               for s, _, a, _, scores in before.values())
    db.session.remove()
    downgrade(directory=str(MIGRATIONS_DIR), revision="6ab502a69065")
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM exercise_case_tally")).scalar() == 0
    downgrade(directory=str(MIGRATIONS_DIR), revision="b8e0aca72c64")
    upgrade(directory=str(MIGRATIONS_DIR))
    assert "exercise_case_tally" not in inspect(db.engine).get_table_names()
    assert kept() == before
    # The peer standings are refilled from the stored scores as they were kept.
    assert standings() == counted
    assert {a.id: a.metrics["calls"] for a in db.session.scalars(select(Attempt))} == calls
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
