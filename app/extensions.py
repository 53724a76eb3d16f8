"""Extension singletons, bound to an application in ``create_app`` (init_app pattern)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from flask_babel import Babel
from flask_compress import Compress
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from flask_talisman import Talisman
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData, event
from sqlalchemy.orm import DeclarativeBase

# Named constraints keep Alembic migrations identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address)
talisman = Talisman()
compress = Compress()
babel = Babel()


def commit_keeping_loaded() -> None:
    """Commit without expiring what the session has loaded. For a request that has just read
    the rows it answers with (the signed-in user, the session row, an attempt): after a
    plain commit, Flask-Login's next look at the user reloads it and its roles, three more
    statements on every autosave of every trainee."""
    session = db.session()
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = True


_kept: ContextVar[list[Any] | None] = ContextVar("kept_loaded", default=None)
_kept_models: set[type] = set()
_kept_lock = threading.Lock()


def _keep(target: Any, _context: Any) -> None:
    kept = _kept.get()
    if kept is not None:
        kept.append(target)


@contextmanager
def keeping_loaded(model: type) -> Iterator[list[Any]]:
    """Rows of ``model`` loaded inside the block stay loaded while the yielded list lives.

    The session's identity map holds objects weakly: rows a helper loaded and dropped are
    gone when it returns, and the next ``session.get`` of one of them (with its eagerly
    loaded images) asks the database again. Keeping them lets a page reuse what a helper
    it calls has just loaded."""
    with _kept_lock:
        if model not in _kept_models:
            event.listen(model, "load", _keep)
            _kept_models.add(model)
    kept: list[Any] = []
    token = _kept.set(kept)
    try:
        yield kept
    finally:
        _kept.reset(token)
