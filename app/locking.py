"""Transaction-scoped locks for the decisions that concurrent requests must not make twice
(ending an attempt, issuing a certificate), and a bounded retry of transactions the
database chose to abort.

On PostgreSQL a row is locked with SELECT … FOR UPDATE and a decision without a row of
its own with a transaction-level advisory lock; both are held until commit or rollback.
SQLite has one writer at a time: taking its write lock (BEGIN IMMEDIATE) before reading
what decides gives the same order, for the whole database.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import inspect, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.base import ExecutableOption

from app.extensions import db

T = TypeVar("T")
M = TypeVar("M")

# PostgreSQL aborts one transaction of a deadlock (40P01) or of a serialisation conflict
# (40001); SQLite answers "database is locked" when its writer lock stays busy too long.
TRANSIENT_SQLSTATES = {"40P01", "40001", "55P03"}
RETRIES = 5


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def _sqlite_write_lock() -> None:
    """Make the current SQLite transaction the writer now (no-op when it already wrote)."""
    raw = db.session.connection().connection.dbapi_connection
    if raw is not None and not raw.in_transaction:
        raw.execute("BEGIN IMMEDIATE")


def lock_row(model: type[M], key: Any, *options: ExecutableOption) -> M | None:
    """Lock one row until the transaction ends and return it re-read from the database
    (what another transaction committed while we waited, not what this session cached).
    ``options`` may load related rows in the same statement: only ``model``'s row is locked
    (FOR UPDATE OF), so e.g. an exam's row joined to each attempt does not serialise its
    trainees."""
    if _dialect() == "sqlite":
        _sqlite_write_lock()
    mapper = inspect(model)
    [column] = mapper.primary_key
    return db.session.scalars(
        select(model).where(column == key).options(*options).with_for_update(of=model)
        .execution_options(populate_existing=True)
    ).first()


def lock_rows(model: type[M], keys: list[Any], *options: ExecutableOption) -> list[M]:
    """lock_row for several rows in one statement, in key order (two transactions locking
    overlapping sets wait for each other, never deadlock); rows no longer there are
    missing from the answer."""
    if _dialect() == "sqlite":
        _sqlite_write_lock()
    [column] = inspect(model).primary_key
    return list(db.session.scalars(
        select(model).where(column.in_(keys)).order_by(column).options(*options)
        .with_for_update(of=model).execution_options(populate_existing=True)))


def lock_key(namespace: str, *ids: int) -> None:
    """Lock a decision that has no row of its own, e.g. ("certificate", programme, user),
    until the transaction ends. Two keys hashing alike only make one wait for the other."""
    if _dialect() == "sqlite":
        _sqlite_write_lock()
        return
    digest = hashlib.blake2b(repr((namespace, *ids)).encode(), digest_size=8).digest()
    db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                       {"key": int.from_bytes(digest, "big", signed=True)})


def is_transient(exc: DBAPIError) -> bool:
    """A transaction the database aborted because of another one: worth running again."""
    original = exc.orig
    state = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    if state in TRANSIENT_SQLSTATES:
        return True
    return "database is locked" in str(original)


def retrying(work: Callable[[], T], busy: Callable[[], Exception],
             retries: int = RETRIES) -> T:
    """Run ``work`` (one whole transaction, committed by itself) again after a deadlock,
    serialisation failure or busy lock, at most ``retries`` times with a growing random
    pause; then raise ``busy()``, an error the person can act on (never a 500)."""
    for attempt in range(retries):
        try:
            return work()
        except DBAPIError as exc:
            db.session.rollback()
            if not is_transient(exc):
                raise
            # Random pauses so that the transactions that collided do not collide again.
            time.sleep(random.uniform(0, 0.05 * 2**attempt))  # noqa: S311
    raise busy()
