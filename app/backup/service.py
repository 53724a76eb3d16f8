"""Back up a running portal and restore it into an empty instance.

Order matters for consistency while the portal runs: the database snapshot first, then the
image files it references. Image folders are written once (staged and renamed into place);
the one later change is a redaction, which rewrites an image's files and raises its
``version``. So after copying, each image's version is read again: a redaction during the
backup makes it start over (up to ``ATTEMPTS`` times). Images stored after the snapshot are
skipped: the snapshot does not know them, and a restore would only hold orphan files.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from flask import current_app
from sqlalchemy import select
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from app.auth.second_factor import unreadable_secret_count
from app.backup import database
from app.backup.archive import (
    FORMAT,
    FORMAT_VERSION,
    ArchiveWriter,
    BackupError,
    image_member,
    unpack,
)
from app.cases.models import CaseImage
from app.cases.storage import FILES, image_store
from app.extensions import db

ATTEMPTS = 3
RESTORE_STAGING_PREFIX = ".restore-"


@dataclass
class BackupReport:
    path: Path
    database: str
    alembic_revision: str | None
    images: int
    files: int
    size: int
    skipped_newer: int  # image folders stored after the snapshot
    missing: list[str] = field(default_factory=list)  # referenced but absent from the store


@dataclass
class RestoreReport:
    database: str
    alembic_revision: str | None
    head_revision: str | None
    images: int
    files: int
    created_at: str
    portal_version: str
    same_deid_secret: bool
    # Second factors this instance's FIELD_ENCRYPTION_KEYS cannot open (the old key missing).
    unreadable_second_factors: int = 0


def portal_version() -> str:
    try:
        return metadata.version("cxr-academy")
    except metadata.PackageNotFoundError:
        return "unknown"


def deid_fingerprint() -> str:
    """Names the de-identification secret without revealing it (a hash of 256 random bits),
    so a restore can tell whether the new instance keys replacement UIDs, date shifts and
    pseudonyms as the backed-up one did. The secret itself is not in the backup: with it, a
    leaked backup's pseudonyms could be matched against guessed patient ids."""
    secret = str(current_app.config["DEID_SECRET"]).encode()
    return hashlib.sha256(b"cxr-academy/deid-secret-fingerprint\x00" + secret).hexdigest()[:16]


def default_name(now: datetime) -> str:
    return f"cxr-academy-backup-{now:%Y%m%dT%H%M%SZ}.tar"


def create_backup(path: Path) -> BackupReport:
    """Write a backup of the database and image store to ``path`` (a new .tar file, or a
    folder to put a time-stamped one in)."""
    if path.is_dir():
        path = path / default_name(datetime.now(UTC))
    if path.exists():
        raise BackupError(f"{path} already exists; choose a new name")
    if not path.parent.is_dir():
        raise BackupError(f"the folder {path.parent} does not exist")
    url = db.engine.url  # as Flask-SQLAlchemy resolved it (relative SQLite paths included)
    kind = database.database_kind(url)
    for _ in range(ATTEMPTS):
        try:
            report = _try_backup(path, url, kind)
        except OSError as exc:
            raise BackupError(f"could not write the backup: {exc}") from None
        except SQLAlchemyError as exc:
            raise BackupError(
                f"cannot read the database: {getattr(exc, 'orig', None) or exc}") from None
        if report is not None:
            return report
        time.sleep(1)
    raise BackupError(f"images were redacted or deleted during each of {ATTEMPTS} tries; back "
                      "up again when the library is quieter")


def _try_backup(path: Path, url: URL, kind: str) -> BackupReport | None:
    """One pass; None when an image changed under it (the partial file is removed)."""
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix=".cxr-backup-", dir=path.parent) as scratch:
        snapshot_file = Path(scratch) / "database"
        if kind == database.SQLITE:
            snapshot = database.snapshot_sqlite(url, snapshot_file)
        else:
            snapshot = database.snapshot_postgresql(
                db.engine, url, snapshot_file, current_app.config.get("POSTGRES_BIN_DIR"))
        writer = ArchiveWriter(path)
        try:
            writer.add_file(database.MEMBERS[kind], snapshot.file)
            try:
                missing, copied = _copy_images(writer, snapshot.images)
            except FileNotFoundError:  # an image deleted (its case undone) while copying
                writer.abort()
                return None
            if _changed_since(snapshot.images):
                writer.abort()
                return None
            store = image_store()
            skipped = len(set(store.keys()) - set(snapshot.images))
            writer.finish({
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "portal_version": portal_version(),
                "alembic_revision": snapshot.alembic_revision,
                "database": kind,
                "deid_secret_fingerprint": deid_fingerprint(),
                "created_at": started.isoformat(timespec="seconds").replace("+00:00", "Z"),
                "created_at_epoch": int(started.timestamp()),
                "images": {"count": copied, "skipped_newer_than_snapshot": skipped,
                           "missing_from_store": missing},
            })
        except BaseException:
            writer.abort()
            raise
    return BackupReport(path, kind, snapshot.alembic_revision, copied, len(writer.files),
                        path.stat().st_size, skipped, missing)


def _copy_images(writer: ArchiveWriter, images: dict[str, int]) -> tuple[list[str], int]:
    store = image_store()
    missing, copied = [], 0
    for key in sorted(images):
        folder = store.folder(key)
        present = [name for name in FILES if (folder / name).is_file()]
        if not present:
            missing.append(key)
            continue
        for name in present:
            writer.add_file(image_member(key, name), folder / name)
        copied += 1
    return missing, copied


def _changed_since(images: dict[str, int]) -> bool:
    """Whether any image the snapshot knows was redacted (its version raised) since."""
    db.session.rollback()  # a fresh transaction sees every commit since the snapshot
    try:
        now = dict(db.session.execute(select(CaseImage.storage_key, CaseImage.version)).all())
    finally:
        db.session.rollback()
    return any(key in now and now[key] != version for key, version in images.items())


# ---- restore -----------------------------------------------------------------------------


def restore_backup(archive: Path, *, replace_existing: bool = False) -> RestoreReport:
    """Restore ``archive`` into this (empty) instance: everything is verified before the
    database or image store is touched, and a failure leaves both as they were."""
    url = db.engine.url
    kind = database.database_kind(url)
    store = image_store()
    tables, filled = _target_tables()
    if filled and not replace_existing:
        shown = ", ".join(filled[:5]) + (" ..." if len(filled) > 5 else "")
        raise BackupError(f"the target database is not empty (rows in {shown}); restore into "
                          "an empty database, or pass --replace-existing to replace its content")
    present = _store_entries(store.root)
    if present and not replace_existing:
        raise BackupError(f"the image store {store.root} is not empty ({len(present)} entries); "
                          "restore into an empty one, or pass --replace-existing")
    try:
        store.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=RESTORE_STAGING_PREFIX, dir=store.root))
    except OSError as exc:
        raise BackupError(f"cannot write to the image store {store.root}: {exc}") from None
    try:
        unpacked = unpack(archive, staging, database.MEMBERS)
        manifest = unpacked.manifest
        if manifest["database"] != kind:
            raise BackupError(
                f"{archive} holds a {database.LABELS.get(manifest['database'], '?')} database; "
                f"this portal uses {database.LABELS[kind]}: restore it into an instance "
                f"configured for {database.LABELS.get(manifest['database'], '?')}")
        revision = manifest.get("alembic_revision")
        head = _check_revision(archive, revision)
        db.session.remove()
        db.engine.dispose()  # nothing of ours holds the target open while it is replaced
        snapshot = unpacked.path(unpacked.database_member)
        if kind == database.SQLITE:
            database.restore_sqlite(url, snapshot)
        else:
            database.restore_postgresql(url, snapshot, current_app.config.get("POSTGRES_BIN_DIR"),
                                        clean=bool(tables))
        _move_images_into_place(store.root, staging, present)
    except OSError as exc:
        raise BackupError(f"restore failed: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        db.engine.dispose()
    return RestoreReport(kind, revision, head, len(unpacked.images),
                         len(manifest["files"]), str(manifest.get("created_at")),
                         str(manifest.get("portal_version")),
                         manifest.get("deid_secret_fingerprint") == deid_fingerprint(),
                         unreadable_secret_count())


def _target_tables() -> tuple[list[str], list[str]]:
    try:
        return database.tables_with_rows(db.engine)
    except Exception as exc:  # any driver error: say it, no traceback
        raise BackupError(f"cannot open the target database: {exc}") from None


def _store_entries(root: Path) -> list[Path]:
    """What the image store holds, leaving out empty staging leftovers."""
    if not root.exists():
        return []
    return [p for p in root.iterdir()
            if not (p.is_dir() and p.name.startswith((".staging", RESTORE_STAGING_PREFIX))
                    and not any(p.iterdir()))]


def _check_revision(archive: Path, revision: str | None) -> str | None:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    from app import MIGRATIONS_DIR

    scripts = ScriptDirectory(str(MIGRATIONS_DIR))
    if revision is not None:
        try:
            found = scripts.get_revision(revision)
        except CommandError:
            found = None
        if found is None:
            raise BackupError(f"{archive} was made by a newer portal (database revision "
                              f"{revision} is unknown here); upgrade this portal first")
    return scripts.get_current_head()


def _move_images_into_place(root: Path, staging: Path, previous: list[Path]) -> None:
    """Rename the verified image folders into the store (same filesystem: no copying).
    With --replace-existing, what the store held before is removed once the new is in."""
    images = staging / "images"
    old = staging / "previous"
    if previous:
        old.mkdir()
        for entry in previous:
            entry.rename(old / entry.name)
    if images.is_dir():
        for shard in images.iterdir():
            shard.rename(root / shard.name)
