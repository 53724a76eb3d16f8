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
import threading
import time
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
from app.cases.storage import CURRENT_FILES, EXACT_FILE, image_store
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


@pytest.fixture
def populated(app, make_user) -> Case:
    """A small portal: a trainer and one case with its image files."""
    trainer = make_user(Role.TRAINER)
    case = import_case(7, trainer)
    db.session.commit()
    return case


def backup_of(app: Flask, path: Path) -> Path:
    result = run(app, "backup", str(path))
    assert result.exit_code == 0, result.output
    return path


def refused(result: Any, *fragments: str) -> None:
    """A clear command-line error: non-zero exit, the reason, no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def untouched(target: Flask) -> None:
    """Nothing half-restored: no rows anywhere and an empty image store."""
    with target.app_context():
        from app.backup.database import tables_with_rows

        assert tables_with_rows(db.engine)[1] == []
        db.engine.dispose()
    root = Path(target.config["IMAGE_STORAGE_PATH"])
    assert not root.exists() or list(root.iterdir()) == []


def test_a_folder_gets_a_time_stamped_owner_only_file_and_nothing_is_overwritten(
        app, populated, tmp_path):
    folder = tmp_path / "backups"
    folder.mkdir()
    result = run(app, "backup", str(folder))
    assert result.exit_code == 0, result.output
    [written] = list(folder.iterdir())  # no temporary file left beside it
    assert written.name.startswith("cxr-academy-backup-") and written.suffix == ".tar"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    with tarfile.open(written) as tar:
        assert all(m.mode == 0o600 for m in tar.getmembers())

    refused(run(app, "backup", str(written)), "already exists")
    refused(run(app, "backup", str(tmp_path / "nowhere" / "b.tar")), "does not exist")


def rewrite(archive: Path, out: Path, change: Any) -> Path:
    """A copy of ``archive`` whose members pass through ``change(name, data)``, which returns
    the new data, or None to leave the member out."""
    with tarfile.open(archive) as src, tarfile.open(out, "w") as dst:
        for member in src.getmembers():
            data = change(member.name, src.extractfile(member).read())
            if data is not None:
                member.size = len(data)
                dst.addfile(member, io.BytesIO(data))
    return out


def test_a_missing_damaged_or_foreign_archive_is_refused(app, populated, empty_target,
                                                         tmp_path):
    archive = backup_of(app, tmp_path / "good.tar")
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(os.urandom(4096))
    no_manifest = rewrite(archive, tmp_path / "no-manifest.tar",
                          lambda name, data: None if name == "manifest.json" else data)
    foreign = tmp_path / "foreign.tar"
    with tarfile.open(foreign, "w") as tar:
        tar.add(__file__, arcname="../../etc/evil")

    for path, reason in [(tmp_path / "missing.tar", "no such backup file"),
                         (tmp_path, "is not a file"),
                         (truncated, "is not a readable backup"),
                         (garbage, "is not a readable backup"),
                         (no_manifest, "has no manifest.json"),
                         (foreign, "unexpected entry '../../etc/evil'")]:
        refused(run(empty_target, "restore", str(path)), reason)
        untouched(empty_target)


def test_a_file_that_does_not_match_the_manifest_is_named_and_nothing_is_restored(
        app, populated, empty_target, tmp_path):
    archive = backup_of(app, tmp_path / "good.tar")
    key = populated.images[0].storage_key
    image = f"images/{key[:2]}/{key}/{EXACT_FILE}"

    def flip(name: str, data: bytes) -> bytes:
        return data[:-1] + bytes([data[-1] ^ 1]) if name == image else data

    def extra(name: str, data: bytes) -> bytes:
        if name == "manifest.json":
            manifest = json.loads(data)
            del manifest["files"][image]
            return json.dumps(manifest).encode()
        return data

    cases = [
        (rewrite(archive, tmp_path / "flipped.tar", flip), [image, "SHA-256 checksum differs"]),
        (rewrite(archive, tmp_path / "short.tar", lambda n, d: d[:-1] if n == image else d),
         [image, "size differs"]),
        (rewrite(archive, tmp_path / "lost.tar", lambda n, d: None if n == image else d),
         [image, "listed in the manifest but missing"]),
        (rewrite(archive, tmp_path / "extra.tar", extra), [image, "not listed in the manifest"]),
    ]
    for path, reasons in cases:
        refused(run(empty_target, "restore", str(path)), *reasons)
        untouched(empty_target)
    # The intact backup restores into the same, untouched target.
    result = run(empty_target, "restore", str(archive))
    assert result.exit_code == 0, result.output
    assert "de-identification secret" not in result.output


# The warning does not depend on the database: SQLite alone.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_restore_under_another_de_identification_secret_warns(app, populated, tmp_path):
    archive = backup_of(app, tmp_path / "portal.tar")
    other = create_app({**base_config(f"sqlite:///{tmp_path / 'other.sqlite3'}",
                                      tmp_path / "other"),
                        "DEID_SECRET": "another-secret"})
    result = run(other, "restore", str(archive))
    with other.app_context():
        db.engine.dispose()
    assert result.exit_code == 0, result.output
    assert "de-identification secret" in result.output
    assert "another-secret" not in result.output


def test_a_target_that_is_not_empty_is_refused_unless_replacing_is_asked_for(
        app, populated, empty_target, make_user, tmp_path):
    archive = backup_of(app, tmp_path / "portal.tar")
    case_id = populated.id
    later = make_user(username="after-the-backup").id
    db.session.remove()  # the test's own transaction must not block the restore
    refused(run(app, "restore", str(archive)), "the target database is not empty",
            "--replace-existing")

    stray = Path(empty_target.config["IMAGE_STORAGE_PATH"]) / "ab" / "stray.txt"
    stray.parent.mkdir(parents=True)
    stray.write_text("left over")
    refused(run(empty_target, "restore", str(archive)), "image store", "is not empty")
    with empty_target.app_context():
        from app.backup.database import tables_with_rows

        assert tables_with_rows(db.engine)[1] == []
        db.engine.dispose()

    result = run(app, "restore", "--replace-existing", str(archive))
    assert result.exit_code == 0, result.output
    db.session.remove()
    assert db.session.get(User, later) is None  # the portal is the backup's again
    key = db.session.get_one(Case, case_id).images[0].storage_key
    assert image_store().read(key, "image.dcm")


def test_images_stored_after_the_snapshot_are_left_out(app, populated, tmp_path,
                                                       monkeypatch):
    kind = "snapshot_postgresql" if is_postgres(app) else "snapshot_sqlite"
    original = getattr(service.database, kind)
    late: list[str] = []

    def snapshot_then_import(*args: Any, **kwargs: Any) -> Any:
        snapshot = original(*args, **kwargs)
        late.append(import_case(99).images[0].storage_key)
        return snapshot

    monkeypatch.setattr(service.database, kind, snapshot_then_import)
    result = run(app, "backup", str(tmp_path / "b.tar"))
    assert result.exit_code == 0, result.output
    assert "1 images stored after the database snapshot were left out" in result.output
    with tarfile.open(tmp_path / "b.tar") as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
    assert not [n for n in names if late[0] in n]
    assert any(populated.images[0].storage_key in n for n in names)
    assert manifest["images"]["skipped_newer_than_snapshot"] == 1


def test_a_redaction_during_the_backup_makes_it_start_over(app, populated, make_user,
                                                           tmp_path, monkeypatch):
    image = populated.images[0]
    trainer = make_user(Role.TRAINER).id
    original = service._copy_images
    passes = []

    def copy_then_redact(*args: Any, **kwargs: Any) -> Any:
        copied = original(*args, **kwargs)
        passes.append(1)
        if len(passes) == 1:  # after the first pass copied the old pixels
            redact_image(db.session.get_one(CaseImage, image.id), [(0, 0, 8, 8)],
                         actor=db.session.get_one(User, trainer))
        return copied

    monkeypatch.setattr(service, "_copy_images", copy_then_redact)
    monkeypatch.setattr(service.time, "sleep", lambda seconds: None)
    archive = backup_of(app, tmp_path / "b.tar")
    assert len(passes) == 2
    member = f"images/{image.storage_key[:2]}/{image.storage_key}/image.dcm"
    with tarfile.open(archive) as tar:
        assert tar.extractfile(member).read() == image_store().read(image.storage_key,
                                                                    "image.dcm")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tar", "instance"]


@postgresql_only
def test_missing_pg_dump_or_pg_restore_is_a_clear_error(app, populated, empty_target,
                                                        tmp_path):
    archive = backup_of(app, tmp_path / "good.tar")
    empty = tmp_path / "no-tools"
    empty.mkdir()
    app.config["POSTGRES_BIN_DIR"] = str(empty)
    refused(run(app, "backup", str(tmp_path / "b.tar")), "pg_dump not found in")
    assert not (tmp_path / "b.tar").exists()
    empty_target.config["POSTGRES_BIN_DIR"] = str(empty)
    refused(run(empty_target, "restore", str(archive)), "pg_restore not found in")
    untouched(empty_target)


@postgresql_only
def test_the_database_password_stays_off_the_command_line(app, populated, tmp_path):
    from app.backup.database import pg_tool

    password = "s3cret-" + secrets.token_hex(4)  # the test server trusts anyone
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).set(password=password)
    seen = tmp_path / "seen"
    seen.mkdir()
    wrapper = seen / "pg_dump"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {seen}/args\n'
                       f'printf "%s" "$PGPASSWORD" > {seen}/password\n'
                       f'exec {pg_tool("pg_dump", None)} "$@"\n')
    wrapper.chmod(0o700)
    with_password = create_app({**base_config(url.render_as_string(hide_password=False),
                                              tmp_path / "instance"),
                                "POSTGRES_BIN_DIR": str(seen)})
    result = run(with_password, "backup", str(tmp_path / "b.tar"))
    with with_password.app_context():
        db.engine.dispose()
    assert result.exit_code == 0, result.output
    assert (seen / "password").read_text() == password
    assert password not in (seen / "args").read_text()
    assert password not in result.output
    with tarfile.open(tmp_path / "b.tar") as tar:
        assert password.encode() not in tar.extractfile("manifest.json").read()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_backup_of_a_newer_portal_is_refused(app, populated, empty_target, tmp_path):
    archive = backup_of(app, tmp_path / "portal.tar")

    def newer(name: str, data: bytes) -> bytes:
        if name != "manifest.json":
            return data
        return json.dumps({**json.loads(data), "alembic_revision": "f00dfeedbeef"}).encode()

    refused(run(empty_target, "restore", str(rewrite(archive, tmp_path / "newer.tar", newer))),
            "made by a newer portal", "f00dfeedbeef")
    untouched(empty_target)


@postgresql_only
def test_a_postgresql_backup_is_not_restored_into_sqlite(app, populated, tmp_path):
    archive = backup_of(app, tmp_path / "portal.tar")
    sqlite_target = create_app(base_config(f"sqlite:///{tmp_path / 'lite.sqlite3'}",
                                           tmp_path / "lite"))
    refused(run(sqlite_target, "restore", str(archive)),
            "holds a PostgreSQL database; this portal uses SQLite")
    untouched(sqlite_target)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_backup_that_never_settles_gives_up_and_leaves_no_file(app, populated, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setattr(service, "_changed_since", lambda images: True)
    monkeypatch.setattr(service.time, "sleep", lambda seconds: None)
    refused(run(app, "backup", str(tmp_path / "b.tar")),
            "redacted or deleted during each of 3 tries")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["instance"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_unreachable_database_is_a_clear_error(app, tmp_path):
    from tests.realservers import free_port

    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("pg_dump", "pg_restore"):  # never reached: the connection fails first
        (tools / name).write_text("#!/bin/sh\nexit 1\n")
        (tools / name).chmod(0o700)
    url = f"postgresql+psycopg://reader:hunter2-pw@127.0.0.1:{free_port()}/nothing"
    down = create_app({**base_config(url, tmp_path / "down"), "POSTGRES_BIN_DIR": str(tools)})
    backup = run(down, "backup", str(tmp_path / "b.tar"))
    refused(backup, "cannot read the database")
    restore = run(down, "restore", str(tmp_path / "b.tar"))
    refused(restore, "cannot open the target database")
    assert "hunter2-pw" not in backup.output + restore.output
    # No backup file begun (the instance folder "down" holds only the security log, whose
    # lines name the failures without the password either).
    assert [p.name for p in tmp_path.iterdir() if p.name != "down"] == ["tools"]
    assert [p.name for p in (tmp_path / "down").iterdir()] == ["security.log"]
    assert "hunter2-pw" not in (tmp_path / "down" / "security.log").read_text()


def test_a_backup_taken_while_cases_are_imported_restores_whole(app, populated, empty_target,
                                                                tmp_path):
    """Imports keep committing while the backup runs: every image the restored database
    knows has all its files, and the restored store holds no image it does not know."""
    stop, imported = threading.Event(), []

    def keep_importing() -> None:
        with app.app_context():
            for seed in range(100, 130):
                if stop.is_set():
                    break
                imported.append(import_case(seed).id)
            db.session.remove()

    worker = threading.Thread(target=keep_importing)
    worker.start()
    try:
        while len(imported) < 2:  # the backup starts among running imports
            time.sleep(0.05)
        archive = backup_of(app, tmp_path / "busy.tar")
    finally:
        stop.set()
        worker.join(120)
    assert run(empty_target, "restore", str(archive)).exit_code == 0
    with empty_target.app_context():
        keys = set(db.session.scalars(select(CaseImage.storage_key)))
        store = image_store()
        assert store.keys() and set(store.keys()) == keys
        for key in keys:
            assert all(store.path(key, name).is_file() for name in CURRENT_FILES), key
        db.session.remove()
        db.engine.dispose()
    assert 1 < len(keys) <= 1 + len(imported)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_image_deleted_while_copying_makes_the_backup_start_over(app, populated, tmp_path,
                                                                     monkeypatch):
    from app.backup.archive import ArchiveWriter

    original, vanished = ArchiveWriter.add_file, []

    def vanish_once(self: ArchiveWriter, name: str, source: Path) -> None:
        if name.startswith("images/") and not vanished:
            vanished.append(name)  # as when a failed library load removes its images
            raise FileNotFoundError(source)
        original(self, name, source)

    monkeypatch.setattr(ArchiveWriter, "add_file", vanish_once)
    monkeypatch.setattr(service.time, "sleep", lambda seconds: None)
    archive = backup_of(app, tmp_path / "b.tar")
    with tarfile.open(archive) as tar:
        assert vanished[0] in tar.getnames()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tar", "instance"]
