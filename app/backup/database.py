"""Database snapshots and their restore: SQLite through its online backup API, PostgreSQL
through ``pg_dump`` (custom format) and ``pg_restore``.

Both snapshots are consistent while the portal keeps writing: SQLite's backup copies every
page under one read lock; ``pg_dump`` reads in one transaction, here the very snapshot our
own transaction exported, so the image list read alongside is exactly the dump's.
Connection details reach pg_dump/pg_restore through PG* environment variables, never the
command line (which ``ps`` shows to every user).
"""

from __future__ import annotations

import glob
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import URL, Connection

from app.backup.archive import DATABASE_DIR, BackupError

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
MEMBERS = {SQLITE: f"{DATABASE_DIR}/cxr_academy.sqlite3",
           POSTGRESQL: f"{DATABASE_DIR}/cxr_academy.pgdump"}
LABELS = {SQLITE: "SQLite", POSTGRESQL: "PostgreSQL"}
IMAGE_TABLE = "case_image"
ALEMBIC_TABLE = "alembic_version"
PG_TIMEOUT = 6 * 3600  # a stuck dump must end some day; a large one may take hours


@dataclass(frozen=True)
class Snapshot:
    file: Path
    images: dict[str, int]  # storage key -> image version, as of the snapshot
    alembic_revision: str | None


def database_kind(url: URL) -> str:
    backend = url.get_backend_name()
    if backend not in MEMBERS:
        raise BackupError(f"backups support SQLite and PostgreSQL databases, not {backend}")
    return backend


def _images_and_revision(conn: Connection | sqlite3.Connection) -> tuple[dict[str, int],
                                                                         str | None]:
    images_sql = f"SELECT storage_key, version FROM {IMAGE_TABLE}"  # noqa: S608  (constants)
    revision_sql = f"SELECT version_num FROM {ALEMBIC_TABLE}"  # noqa: S608
    if isinstance(conn, sqlite3.Connection):
        images = dict(conn.execute(images_sql).fetchall())
        revision = conn.execute(revision_sql).fetchone()
        return images, revision[0] if revision else None
    images = {key: version for key, version in conn.execute(text(images_sql))}
    return images, conn.execute(text(revision_sql)).scalar()


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
        raise BackupError("the SQLite database must be a file to back it up or restore it")
    return Path(url.database)


def snapshot_sqlite(url: URL, into: Path) -> Snapshot:
    source_path = _sqlite_path(url)
    if not source_path.is_file():
        raise BackupError(f"the database {source_path} does not exist")
    # Read-only: a backup never creates or changes the portal's database.
    source = sqlite3.connect(f"{source_path.resolve().as_uri()}?mode=ro", uri=True)
    target = sqlite3.connect(into)
    try:
        # pages=-1: the whole database in one step under one read lock, so the copy is one
        # consistent state even while the portal writes (busy retries are built in).
        source.backup(target)
        images, revision = _images_and_revision(target)
    except sqlite3.Error as exc:
        raise BackupError(f"the SQLite snapshot failed: {exc}") from None
    finally:
        source.close()
        target.close()
    return Snapshot(into, images, revision)


def restore_sqlite(url: URL, snapshot: Path) -> None:
    target_path = _sqlite_path(url)
    target_path.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"{snapshot.resolve().as_uri()}?mode=ro", uri=True)
    target = sqlite3.connect(target_path)
    try:
        # The backup API replaces the target's whole content in one transaction: a failure
        # leaves it as it was.
        source.backup(target)
    except sqlite3.Error as exc:
        raise BackupError(f"restoring the SQLite database failed: {exc}") from None
    finally:
        source.close()
        target.close()
    os.chmod(target_path, 0o600)


# ---- PostgreSQL ---------------------------------------------------------------------------

_PG_QUERY_ENV = {"sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT",
                 "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY", "connect_timeout":
                 "PGCONNECT_TIMEOUT", "application_name": "PGAPPNAME"}


def pg_environment(url: URL) -> dict[str, str]:
    """The connection as libpq environment variables (the password included: it must not be
    on the command line)."""
    env = dict(os.environ)
    for name, value in (("PGHOST", url.host), ("PGPORT", url.port), ("PGUSER", url.username),
                        ("PGPASSWORD", url.password), ("PGDATABASE", url.database)):
        if value is not None:
            env[name] = str(value)
    for key, name in _PG_QUERY_ENV.items():
        option = url.query.get(key)
        if isinstance(option, str):
            env[name] = option
    return env


def pg_tool(name: str, bin_dir: str | None) -> str:
    """``pg_dump``/``pg_restore``: in POSTGRES_BIN_DIR when configured, else on PATH, else the
    newest of Debian's /usr/lib/postgresql/<version>/bin."""
    if bin_dir:
        found = Path(bin_dir, name)
        if found.is_file() and os.access(found, os.X_OK):
            return str(found)
        raise BackupError(f"{name} not found in {bin_dir} (POSTGRES_BIN_DIR); install the "
                          "PostgreSQL client programs")
    on_path = shutil.which(name)
    if on_path:
        return on_path
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(v) if (v := Path(p).parts[-3]).isdigit() else 0)
    if candidates:
        return candidates[-1]
    raise BackupError(f"{name} not found on PATH or in /usr/lib/postgresql/*/bin; install the "
                      "PostgreSQL client programs (Debian: postgresql-client)")


def _run(args: list[str], env: dict[str, str], what: str) -> None:
    try:
        done = subprocess.run(args, env=env, capture_output=True, timeout=PG_TIMEOUT,  # noqa: S603
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackupError(f"{what} failed: {exc}") from None
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip()[-1500:]
        raise BackupError(f"{what} failed (exit {done.returncode}): {detail}")


def snapshot_postgresql(engine: Engine, url: URL, into: Path, bin_dir: str | None) -> Snapshot:
    pg_dump = pg_tool("pg_dump", bin_dir)
    conn = engine.connect().execution_options(isolation_level="REPEATABLE READ")
    try:
        with conn.begin():
            # pg_dump reads the snapshot this transaction exports, which must stay open
            # until the dump is done: the dump and our image list are one state.
            snapshot_id = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            images, revision = _images_and_revision(conn)
            _run([pg_dump, "--format=custom", "--no-owner", "--no-privileges",
                  f"--snapshot={snapshot_id}", f"--file={into}"],
                 pg_environment(url), "pg_dump")
    finally:
        conn.close()
    return Snapshot(into, images, revision)


def restore_postgresql(url: URL, dump: Path, bin_dir: str | None, *, clean: bool) -> None:
    pg_restore = pg_tool("pg_restore", bin_dir)
    args = [pg_restore, "--single-transaction", "--exit-on-error", "--no-owner",
            "--no-privileges", f"--dbname={url.database}"]
    if clean:  # a migrated, empty database (or --replace-existing): its tables go first
        args += ["--clean", "--if-exists"]
    _run([*args, str(dump)], pg_environment(url), "pg_restore")


# ---- the target --------------------------------------------------------------------------


def tables_with_rows(engine: Engine) -> tuple[list[str], list[str]]:
    """(every table, those holding rows) of the target database; the Alembic version row
    alone does not count: a database just brought to the schema is still empty."""
    with engine.connect() as conn:
        tables = sorted(inspect(conn).get_table_names())
        quote = engine.dialect.identifier_preparer.quote
        filled = [t for t in tables if t != ALEMBIC_TABLE and conn.execute(
            text(f"SELECT 1 FROM {quote(t)} LIMIT 1")).first() is not None]  # noqa: S608
    return tables, filled
