"""The audit log as administrators read it: filters, and each event in words (names for
ids, a sentence per event). The writing side, ``record``, stays in app/audit, below every
area; reading needs names from every area, so it lives here, above them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask_babel import gettext
from sqlalchemy import Select, select

from app.admin.audit_sentences import ACTION_LABELS, Names, action_label, describe, object_label
from app.audit.models import AuditEvent
from app.auth.models import User
from app.extensions import db
from app.user_errors import UserError


class AuditFilterError(UserError):
    """A filter of the audit log that cannot be applied; the message says why."""


@dataclass(frozen=True)
class AuditFilter:
    """Which events to list. Dates are whole UTC days, both ends included."""

    actor: User | None = None
    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    since: date | None = None
    until: date | None = None


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def make_filter(
    *,
    actor: str = "",
    action: str = "",
    object_type: str = "",
    object_id: str = "",
    since: date | None = None,
    until: date | None = None,
) -> AuditFilter:
    """Check typed filter values; raises AuditFilterError naming the one that is wrong."""
    who = None
    ref = actor.strip().lower()
    if ref:
        who = db.session.scalar(select(User).where((User.username == ref) | (User.email == ref)))
        if who is None:
            raise AuditFilterError(gettext("there is no user %(name)s", name=repr(actor.strip())))
    if action and action not in known_actions():
        raise AuditFilterError(gettext("unknown action %(action)s", action=repr(action)))
    if object_type and object_type not in known_object_types():
        raise AuditFilterError(gettext("unknown kind of object %(kind)s",
                                         kind=repr(object_type)))
    object_id = object_id.strip()
    if object_id and not object_type:
        raise AuditFilterError(gettext("choose the kind of object the number belongs to"))
    if since and until and since > until:
        raise AuditFilterError(gettext(
            "the start date %(since)s is after the end date %(until)s",
            since=f"{since:%Y-%m-%d}", until=f"{until:%Y-%m-%d}"))
    return AuditFilter(
        actor=who,
        action=action or None,
        object_type=object_type or None,
        object_id=object_id or None,
        since=since,
        until=until,
    )


def events_query(filters: AuditFilter | None = None) -> Select[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
    f = filters or AuditFilter()
    if f.actor is not None:
        query = query.where(AuditEvent.actor_id == f.actor.id)
    if f.action:
        query = query.where(AuditEvent.action == f.action)
    if f.object_type:
        query = query.where(AuditEvent.object_type == f.object_type)
    if f.object_id:
        query = query.where(AuditEvent.object_id == f.object_id)
    if f.since:
        query = query.where(AuditEvent.occurred_at >= _start_of(f.since))
    if f.until:
        query = query.where(AuditEvent.occurred_at < _start_of(f.until + timedelta(days=1)))
    return query


def known_actions() -> list[str]:
    """Every action the code writes, and any older one still in the log."""
    logged = db.session.scalars(select(AuditEvent.action).distinct()).all()
    return sorted(set(ACTION_LABELS) | set(logged), key=action_label)


def known_object_types() -> list[str]:
    logged = db.session.scalars(
        select(AuditEvent.object_type).where(AuditEvent.object_type.is_not(None)).distinct()
    ).all()
    return sorted({t for t in logged if t} | {"user", "clinic", "certificate", "programme"})


@dataclass(frozen=True)
class ReadableEvent:
    occurred_at: datetime
    actor: str
    action: str
    action_label: str
    object_label: str
    sentence: str


def _names(events: Sequence[AuditEvent]) -> Names:
    from app.auth.models import Clinic
    from app.auth.services import country_name
    from app.certification.models import Programme

    def ids(kind: str, *detail_keys: str) -> set[int]:
        found: set[int] = set()
        for e in events:
            refs: list[Any] = [e.object_id] if e.object_type == kind else []
            refs += [(e.detail or {}).get(key) for key in detail_keys]
            found |= {int(r) for r in refs if str(r).isdigit()}
        return found

    user_ids, clinic_ids = ids("user"), ids("clinic", "clinic_id", "before", "after")
    programme_ids = ids("programme", "programme")
    users = db.session.execute(
        select(User.id, User.full_name, User.username).where(User.id.in_(user_ids))
    ).all()
    clinics = db.session.execute(
        select(Clinic.id, Clinic.name).where(Clinic.id.in_(clinic_ids))
    ).all()
    programmes = db.session.execute(
        select(Programme.id, Programme.title).where(Programme.id.in_(programme_ids))
    ).all()
    return Names(
        users={i: f"{name} ({username})" for i, name, username in users},
        clinics=dict((i, n) for i, n in clinics),
        programmes=dict((i, t) for i, t in programmes),
        country=country_name,
    )


def readable_events(events: Sequence[AuditEvent]) -> list[ReadableEvent]:
    """The events in words, for the audit pages (a fixed number of queries per page)."""
    names = _names(events)
    return [
        ReadableEvent(
            occurred_at=e.occurred_at,
            actor=(f"{e.actor.full_name} ({e.actor.username})" if e.actor
                   else gettext("nobody signed in")),
            action=e.action,
            action_label=action_label(e.action),
            object_label=object_label(e, names),
            sentence=describe(e, names),
        )
        for e in events
    ]
