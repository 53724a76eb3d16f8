"""Finding reporting schemes: the built-in JSON files and trainer-made versions in the
database. Definitions are parsed once per process (schemes are immutable once stored: a
change is a new version)."""

from __future__ import annotations

import json
from functools import cache, lru_cache
from importlib import resources
from typing import Any, Protocol

from sqlalchemy import select

from app.audit.services import record
from app.auth.models import User
from app.extensions import db
from app.schemes.definitions import parse_scheme
from app.schemes.errors import N_, SchemeError, phrase
from app.schemes.models import ReportingScheme
from app.schemes.parts import Scheme
from app.validation import JSONRefused, loads_strict

# The radiographers' image-quality scheme: a case may carry a reference read in it beside its
# diagnostic one (one diagnostic scheme per case, plus image quality).
IMAGE_QUALITY = "image_quality"


def is_image_quality(scheme_key: str) -> bool:
    return scheme_key == IMAGE_QUALITY


class UsesScheme(Protocol):
    """Anything that names a scheme version (an exercise, a reference read)."""

    scheme_key: str
    scheme_version: int


@cache
def _builtin() -> tuple[Scheme, ...]:
    folder = resources.files("app.schemes") / "builtin"
    return tuple(parse_scheme(json.loads(entry.read_text(encoding="utf-8")))
                 for entry in sorted(folder.iterdir(), key=lambda e: e.name)
                 if entry.name.endswith(".json"))


def builtin_schemes() -> dict[str, Scheme]:
    """The schemes shipped in builtin/, by key (a new dict each call; the schemes are shared)."""
    return {scheme.key: scheme for scheme in _builtin()}


@lru_cache(maxsize=256)
def _parse_stored(canonical: str) -> Scheme:
    return parse_scheme(json.loads(canonical))


def _parsed(definition: dict[str, Any]) -> Scheme:
    # Keyed by the definition itself, not by (key, version): two databases (tests, or a
    # restored backup) may hold different definitions under the same version.
    return _parse_stored(json.dumps(definition, sort_keys=True))


def all_schemes() -> dict[str, Scheme]:
    """Built-in schemes plus the newest version of each trainer-made one."""
    schemes = builtin_schemes()
    builtin = set(schemes)
    rows = db.session.scalars(select(ReportingScheme).order_by(ReportingScheme.version))
    for row in rows:
        if row.key not in builtin:
            schemes[row.key] = _parsed(row.definition)
    return schemes


def get_scheme(key: str, version: int | None = None) -> Scheme:
    builtin = builtin_schemes()
    if key in builtin and (version is None or builtin[key].version == version):
        return builtin[key]
    query = select(ReportingScheme).where(ReportingScheme.key == key)
    if version is not None:
        query = query.where(ReportingScheme.version == version)
    row = db.session.scalars(query.order_by(ReportingScheme.version.desc())).first()
    if row is None:
        if version:
            raise SchemeError(N_("no reporting scheme %(key)s version %(version)s"),
                              key=repr(key), version=version)
        raise SchemeError(N_("no reporting scheme %(key)s"), key=repr(key))
    return _parsed(row.definition)


def scheme_of(holder: UsesScheme) -> Scheme:
    """The scheme version an exercise or a read was made with."""
    return get_scheme(holder.scheme_key, holder.scheme_version)


def add_scheme(text: str, *, actor: User | None) -> Scheme:
    """Add a trainer-made scheme (or a new version of one) from its JSON definition."""
    try:
        data = loads_strict(text)
    except JSONRefused as exc:
        raise SchemeError(N_("the definition is refused: %(reason)s"),
                          reason=phrase(exc.message, **exc.params)) from None
    except json.JSONDecodeError as exc:
        raise SchemeError(N_("the definition is not valid JSON (line %(line)s)"),
                          line=exc.lineno) from None
    except ValueError:
        raise SchemeError(N_("the definition is not valid JSON")) from None
    scheme = parse_scheme(data)
    if scheme.key in builtin_schemes():
        raise SchemeError(N_("%(key)s is a built-in scheme; choose another key"),
                          key=repr(scheme.key))
    exists = db.session.scalar(
        select(ReportingScheme.id).where(
            ReportingScheme.key == scheme.key, ReportingScheme.version == scheme.version
        )
    )
    if exists:
        raise SchemeError(N_("%(scheme)s exists already; raise the version to change it"),
                          scheme=scheme.ref)
    db.session.add(
        ReportingScheme(
            key=scheme.key,
            version=scheme.version,
            definition=data,
            created_by_id=actor.id if actor else None,
        )
    )
    record("scheme.add", actor=actor, object_type="scheme", object_id=scheme.ref)
    db.session.commit()
    return scheme


def classification_item(scheme: Scheme) -> str | None:
    """The item that classifies the whole image: the first required single choice."""
    for item in scheme.items:
        if item.type == "choice" and item.required:
            return item.key
    return None
