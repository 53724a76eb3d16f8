"""Writing the audit log: one event per change, in the transaction of the change
(app/admin/audit_log.py reads it)."""

from __future__ import annotations

from typing import Any

from flask import has_request_context, request
from flask_login import current_user

from app.audit import security_log
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
    # Security-relevant actions also go to the security log, once this transaction commits.
    security_log.note_audit_event(action, actor=actor, object_type=object_type,
                                  object_id=object_id, detail=detail)
    return event
