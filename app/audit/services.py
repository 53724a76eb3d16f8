"""Writing and reading the audit log."""

from __future__ import annotations

from typing import Any

from flask import has_request_context, request
from flask_login import current_user
from sqlalchemy import Select, func, select

from app.audit.models import AuditEvent
from app.auth.models import User
from app.extensions import db


def record(
    action: str,
    *,
    actor: User | None = None,
    object_type: str | None = None,
    object_id: object = None,
    **detail: Any,
) -> AuditEvent:
    """Add an audit event to the current transaction (the caller commits).

    The actor defaults to the logged-in user. Never put passwords, tokens or patient data
    in ``detail``.
    """
    ip = None
    if has_request_context():
        ip = request.remote_addr
        if actor is None and current_user and current_user.is_authenticated:
            actor = current_user._get_current_object()  # type: ignore[attr-defined]
    event = AuditEvent(
        action=action,
        actor=actor,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        detail=detail,
        ip_address=ip,
    )
    db.session.add(event)
    return event


def events_query(action: str | None = None) -> Select[tuple[AuditEvent]]:
    query = select(AuditEvent).order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
    if action:
        query = query.where(AuditEvent.action == action)
    return query


def known_actions() -> list[str]:
    rows = db.session.execute(
        select(AuditEvent.action, func.count()).group_by(AuditEvent.action)
    ).all()
    return sorted(action for action, _ in rows)
