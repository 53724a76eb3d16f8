"""`cxr-academy backup` and `restore`: a populated portal round-trips through one .tar file
(every row of every table, every image file byte for byte) on SQLite and PostgreSQL; bad
archives, a non-empty target and missing PostgreSQL tools are refused with a reason."""

from __future__ import annotations

import io
import json
import os
import secrets
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import MetaData, create_engine, func, select
from sqlalchemy.engine import Engine, make_url

from app import create_app
from app.audit.models import AuditEvent
from app.auth.models import User
from app.auth.roles import Role
from app.backup import service
from app.cases.ingest import ImportOptions, Source, import_files
from app.cases.models import Case, CaseImage
from app.cases.services import complete_pixel_review, redact_image
from app.cases.storage import image_store
from app.extensions import db
from tests.conftest import IsolatedClient, base_config, login, postgresql_only
from tests.dicom_factory import cr_dataset, to_bytes
from tests.realservers import create_database


def run(app: Flask, *args: str) -> Any:
    """The command as ``cxr-academy`` runs it, in ``app``'s own context (the test's own
    context may be another instance's)."""
    with app.app_context():
        return app.test_cli_runner().invoke(args=list(args))


def is_postgres(app: Flask) -> bool:
    return app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")


@pytest.fixture
def empty_target(request: pytest.FixtureRequest, app: Flask, tmp_path: Path) -> Flask:
    """A second instance on a new, empty database of the same kind (not migrated)."""
    if is_postgres(app):
        base = request.getfixturevalue("postgres_base_url")
        url = create_database(base, f"restore_{secrets.token_hex(4)}")
    else:
        url = f"sqlite:///{tmp_path / 'target.sqlite3'}"
    target = create_app(base_config(url, tmp_path / "target-instance"))
    yield target
    with target.app_context():
        db.engine.dispose()


def import_case(seed: int, trainer: User | None = None) -> Case:
    data = to_bytes(cr_dataset(seed=seed, rows=64, columns=48))
    [result] = import_files([Source(f"c{seed}.dcm", lambda: data)], actor=trainer,
                            options=ImportOptions()).results
    return db.session.get_one(Case, result.case_id)


def all_rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, reflected from the database itself, in primary-key order."""
    metadata = MetaData()
    metadata.reflect(bind=engine)
    rows = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            order = list(table.primary_key.columns) or list(table.columns)
            rows[table.name] = [tuple(r) for r in conn.execute(select(table).order_by(*order))]
    return rows


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def engine_of(app: Flask) -> Engine:
    return create_engine(make_url(app.config["SQLALCHEMY_DATABASE_URI"]))


def test_a_populated_portal_round_trips_row_for_row_and_byte_for_byte(
        app, empty_target, make_user, tmp_path):
    from tests.test_demo_world import seed_everything

    passwords = seed_everything()  # users, cases, reads, exercises, attempts, certificates, audit
    trainer = make_user(Role.TRAINER)
    case = import_case(1, trainer)
    redact_image(case.images[0], [(0, 0, 10, 10)], actor=trainer)  # image version 2
    complete_pixel_review(case, actor=trainer)
    db.session.commit()
    assert db.session.scalar(select(func.count(AuditEvent.id))) > 10
    assert db.session.scalar(select(func.max(CaseImage.version))) == 2

    archive = tmp_path / "portal.tar"
    result = run(app, "backup", str(archive))
    assert result.exit_code == 0, result.output
    assert "backup written to" in result.output
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest["format_version"] == 1 and manifest["portal_version"]
    assert manifest["database"] == ("postgresql" if is_postgres(app) else "sqlite")
    assert manifest["alembic_revision"] and manifest["created_at"].endswith("Z")
    assert all(len(f["sha256"]) == 64 for f in manifest["files"].values())

    result = run(empty_target, "restore", str(archive))
    assert result.exit_code == 0, result.output
    source_engine, target_engine = engine_of(app), engine_of(empty_target)
    try:
        source_rows, target_rows = all_rows(source_engine), all_rows(target_engine)
    finally:
        source_engine.dispose()
        target_engine.dispose()
    assert set(target_rows) == set(source_rows)
    for table, rows in source_rows.items():
        assert target_rows[table] == rows, table
    for table in ("user_account", "attempt", "attempt_answer", "certificate", "audit_event",
                  "reference_read", "case_image", "exercise", "teaching_case"):
        assert source_rows.get(table), f"no rows in {table}: the round trip proves little"
    source_files = all_files(Path(app.config["IMAGE_STORAGE_PATH"]))
    assert len(source_files) >= 4 * len(source_rows["case_image"])
    assert all_files(Path(empty_target.config["IMAGE_STORAGE_PATH"])) == source_files

    # The restored portal serves: its users sign in with their old passwords.
    empty_target.test_client_class = IsolatedClient
    signed_in = login(empty_target.test_client(), "demo-admin", passwords["demo-admin"])
    assert signed_in.status_code == 302
