"""Programmes and certificates: issued by rule (and only then), expiring, revocable,
verifiable by anyone from their code."""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import gettext
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.audit.services import record
from app.auth.models import User
from app.auth.roles import Role
from app.certification.models import Certificate, Programme, Requirement
from app.db_types import utcnow
from app.extensions import db
from app.locking import lock_key
from app.quizzes.models import ENDED_STATES, Attempt, AttemptState, Exercise
from app.user_errors import UserError

REQUIREMENT_KINDS = ("practice", "exam", "renewal")
VALID, EXPIRED, REVOKED = "valid", "expired", "revoked"


class CertificationError(UserError):
    """A refused certification action; the message is for the lead or trainee."""


def status(certificate: Certificate, now: datetime | None = None) -> str:
    """Computed, never stored: a certificate is expired the moment its date passes."""
    if certificate.revoked_at is not None:
        return REVOKED
    return EXPIRED if (now or utcnow()) >= certificate.expires_at else VALID


def eligible(user: User, programme: Programme) -> bool:
    """Whether the user holds one of the programme's roles (any role when none is set)."""
    roles = programme.eligible_roles or []
    return not roles or user.has_role(*(Role(r) for r in roles))


def new_code() -> str:
    # 16 characters from a 32-symbol alphabet: 80 bits, no look-alike characters.
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(16))


# Beyond a century, expiry dates overflow and the database's integer columns are at risk.
MAX_VALIDITY_DAYS = 36_500
TITLE_LENGTH = 200  # the column's length


@dataclass(frozen=True)
class ProgrammeFields:
    """A programme's editable fields, checked and normalised."""

    title: str
    description: str
    eligible_roles: list[str]
    validity_days: int
    renewal_window_days: int
    cme_hours: float
    requirements: list[tuple[int, str]]


def _validated_programme(
    *,
    title: str,
    requirements: Iterable[tuple[int, str]],
    eligible_roles: Iterable[str],
    validity_days: int,
    renewal_window_days: int,
    cme_hours: float,
    description: str,
    programme_id: int | None = None,
) -> ProgrammeFields:
    """The rules for creating and editing a programme alike; reads, never writes.

    ``programme_id``: the programme being edited, which may keep its own title."""
    title = title.strip()
    if not title:
        raise CertificationError(gettext("a programme needs a title"))
    if len(title) > TITLE_LENGTH:
        raise CertificationError(gettext("the title must be at most %(count)s characters",
                                          count=TITLE_LENGTH))
    reqs = list(requirements)
    if not any(kind == "exam" for _, kind in reqs):
        raise CertificationError(gettext("a programme needs at least one exam to pass"))
    for exercise_id, kind in reqs:
        if kind not in REQUIREMENT_KINDS:
            raise CertificationError(gettext("unknown requirement kind %(kind)s", kind=repr(kind)))
        if db.session.get(Exercise, exercise_id) is None:
            raise CertificationError(gettext("there is no exercise %(id)s", id=exercise_id))
    if len(set(reqs)) != len(reqs):
        raise CertificationError(
            gettext("the same exercise is listed twice with the same kind"))
    roles = sorted(set(eligible_roles))
    for role in roles:
        try:
            Role(role)
        except ValueError:
            raise CertificationError(gettext("unknown role %(role)s", role=repr(role))) from None
    if validity_days < 1 or not 0 <= renewal_window_days < validity_days:
        raise CertificationError(
            gettext("the validity must be positive and longer than the renewal window"))
    if validity_days > MAX_VALIDITY_DAYS:
        raise CertificationError(gettext("the validity can be at most %(days)s days",
                                          days=MAX_VALIDITY_DAYS))
    # NaN passes every comparison, and infinity is no number of hours.
    if not math.isfinite(cme_hours) or cme_hours < 0:
        raise CertificationError(gettext("CME/CPD hours must be a number of 0 or more"))
    # Case-insensitive: two programmes differing only in capitals would confuse trainees.
    # Both sides lowered by the database, so its own notion of case applies to both.
    same_title = select(Programme.id).where(func.lower(Programme.title) == func.lower(title))
    if programme_id is not None:
        same_title = same_title.where(Programme.id != programme_id)
    if db.session.scalar(same_title) is not None:
        raise CertificationError(
            gettext("a programme titled %(title)s already exists", title=repr(title)), 409)
    return ProgrammeFields(
        title=title,
        description=description,
        eligible_roles=roles,
        validity_days=validity_days,
        renewal_window_days=renewal_window_days,
        cme_hours=float(cme_hours),
        requirements=reqs,
    )


def _flush_or_title_conflict(title: str) -> None:
    """A concurrent request may take the title between our check and the write: a clear
    409 then, not an IntegrityError."""
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise CertificationError(gettext("a programme titled %(title)s already exists",
                                         title=repr(title)), 409) from None


def create_programme(
    *,
    title: str,
    requirements: Iterable[tuple[int, str]],
    eligible_roles: Iterable[str] = (),
    validity_days: int = 730,
    renewal_window_days: int = 90,
    cme_hours: float = 0.0,
    description: str = "",
    actor: User | None = None,
) -> Programme:
    fields = _validated_programme(
        title=title,
        requirements=requirements,
        eligible_roles=eligible_roles,
        validity_days=validity_days,
        renewal_window_days=renewal_window_days,
        cme_hours=cme_hours,
        description=description,
    )
    programme = Programme(
        title=fields.title,
        description=fields.description,
        eligible_roles=fields.eligible_roles,
        validity_days=fields.validity_days,
        renewal_window_days=fields.renewal_window_days,
        cme_hours=fields.cme_hours,
        requirements=[Requirement(exercise_id=e, kind=k) for e, k in fields.requirements],
    )
    db.session.add(programme)
    _flush_or_title_conflict(fields.title)
    record("programme.create", actor=actor, object_type="programme", object_id=programme.id)
    db.session.commit()
    return programme


def update_programme(
    programme: Programme,
    *,
    title: str,
    description: str,
    eligible_roles: Iterable[str],
    validity_days: int,
    renewal_window_days: int,
    cme_hours: float,
    active: bool,
    requirements: Iterable[tuple[int, str]],
    actor: User | None,
) -> Programme:
    """Change a programme under the same rules as ``create_programme``; nothing is written
    unless all of them hold.

    Certificates already issued are untouched: their expiry date, CME/CPD hours and
    evidence were fixed when they were issued, so new validity, hours or requirements
    apply to certificates issued (or renewed) from now on. Deactivating stops new
    certificates without ending the ones held.
    """
    fields = _validated_programme(
        title=title,
        requirements=requirements,
        eligible_roles=eligible_roles,
        validity_days=validity_days,
        renewal_window_days=renewal_window_days,
        cme_hours=cme_hours,
        description=description,
        programme_id=programme.id,
    )
    before = {
        "title": programme.title,
        "description": programme.description,
        "eligible_roles": sorted(programme.eligible_roles or []),
        "validity_days": programme.validity_days,
        "renewal_window_days": programme.renewal_window_days,
        "cme_hours": programme.cme_hours,
        "active": programme.active,
        "requirements": [[r.exercise_id, r.kind] for r in programme.requirements],
    }
    after = {
        "title": fields.title,
        "description": fields.description,
        "eligible_roles": fields.eligible_roles,
        "validity_days": fields.validity_days,
        "renewal_window_days": fields.renewal_window_days,
        "cme_hours": fields.cme_hours,
        "active": bool(active),
        "requirements": [[e, k] for e, k in fields.requirements],
    }
    changed = [name for name in before if before[name] != after[name]]
    if not changed:
        return programme
    for name in changed:
        if name != "requirements":
            setattr(programme, name, after[name])
    if "requirements" in changed:
        # Rows no longer listed are deleted (delete-orphan); nothing else refers to them.
        programme.requirements = [
            Requirement(exercise_id=e, kind=k) for e, k in fields.requirements
        ]
    _flush_or_title_conflict(fields.title)
    # The description may be long: the log says that it changed, not what it says.
    shown = [name for name in changed if name != "description"]
    record(
        "programme.update",
        actor=actor,
        object_type="programme",
        object_id=programme.id,
        changed=changed,
        before={name: before[name] for name in shown},
        after={name: after[name] for name in shown},
    )
    db.session.commit()
    return programme


@dataclass(frozen=True)
class RequirementProgress:
    requirement: Requirement
    met: bool
    attempt: Attempt | None


def _ended_attempts(user: User, exercise_id: int) -> list[Attempt]:
    return list(
        db.session.scalars(
            select(Attempt)
            .where(
                Attempt.user_id == user.id,
                Attempt.exercise_id == exercise_id,
                Attempt.state.in_(ENDED_STATES),
            )
            .order_by(Attempt.ended_at)
            # What other transactions committed, not attempts this session read earlier.
            .execution_options(populate_existing=True)
        )
    )


def progress(
    user: User, programme: Programme, since: datetime | None = None
) -> list[RequirementProgress]:
    """Each requirement and the attempt that meets it (attempts before ``since`` ignored)."""
    out = []
    for req in programme.requirements:
        attempts = [
            a
            for a in _ended_attempts(user, req.exercise_id)
            if since is None or (a.ended_at and a.ended_at >= since)
        ]
        if req.kind == "practice":
            meeting = next(
                (a for a in reversed(attempts) if a.state == AttemptState.SUBMITTED.value), None
            )
        else:
            meeting = next((a for a in reversed(attempts) if a.passed), None)
        out.append(RequirementProgress(req, meeting is not None, meeting))
    return out


def current_certificate(user: User, programme: Programme) -> Certificate | None:
    return db.session.scalars(
        select(Certificate)
        .where(
            Certificate.user_id == user.id,
            Certificate.programme_id == programme.id,
            Certificate.revoked_at.is_(None),
        )
        .order_by(Certificate.expires_at.desc())
    ).first()


def issue_if_met(
    user: User, programme: Programme, now: datetime | None = None
) -> Certificate | None:
    """Issue a certificate when every requirement holds (and only then); renew one in its
    renewal window when the renewal exam is passed. The caller commits.

    The decision is taken under a lock per trainee and programme, held until the caller's
    transaction ends: of two attempts ending at the same moment (two exams of one
    programme), the second decides after the first committed and sees both passes; and
    no two requests issue the same certificate twice."""
    now = now or utcnow()
    if not programme.active:
        return None
    lock_key("certificate", programme.id, user.id)
    if not eligible(user, programme):
        return None
    current = current_certificate(user, programme)
    if current is not None and status(current, now) == VALID:
        window = current.expires_at - timedelta(days=programme.renewal_window_days)
        if now < window:
            return None  # still valid and not yet renewable
        renewal = [
            p for p in progress(user, programme, since=window) if p.requirement.kind == "renewal"
        ]
        if not renewal or not all(p.met for p in renewal):
            return None
        return _issue(user, programme, renewal, now, renewed=current)
    initial = [p for p in progress(user, programme) if p.requirement.kind != "renewal"]
    if not initial or not all(p.met for p in initial):
        return None
    return _issue(user, programme, initial, now)


def _issue(
    user: User,
    programme: Programme,
    met: list[RequirementProgress],
    now: datetime,
    renewed: Certificate | None = None,
    exception: str | None = None,
    granted_by: User | None = None,
) -> Certificate:
    evidence = {
        "requirements": [
            {
                "kind": p.requirement.kind,
                "exercise": p.requirement.exercise.title,
                "attempt_id": p.attempt.id if p.attempt else None,
                "ended_at": p.attempt.ended_at.isoformat()
                if p.attempt and p.attempt.ended_at
                else None,
                "metrics": {
                    k: v
                    for k, v in ((p.attempt.metrics or {}).get("metrics") or {}).items()
                    if k in ("sensitivity", "specificity", "accuracy", "kappa", "auc")
                }
                if p.attempt
                else {},
            }
            for p in met
        ],
        "renews": renewed.code if renewed else None,
    }
    start = max(now, renewed.expires_at) if renewed else now
    certificate = Certificate(
        code=new_code(),
        programme=programme,
        user=user,
        holder_name=user.full_name,
        issued_at=now,
        expires_at=start + timedelta(days=programme.validity_days),
        cme_hours=programme.cme_hours,
        evidence=evidence,
        exception_reason=exception,
    )
    db.session.add(certificate)
    db.session.flush()
    record(
        "certificate.issue",
        actor=granted_by or user,  # an exception is the granting lead's act, not the holder's
        object_type="certificate",
        object_id=certificate.id,
        programme=programme.id,
        exception=bool(exception),
        renews=renewed.id if renewed else None,
    )
    return certificate


def issue_after_attempt(attempt: Attempt) -> list[Certificate]:
    """When an attempt ends, in its transaction: every programme that uses its exercise is
    checked (in programme order, so that locks are always taken in one order)."""
    programmes = (
        db.session.scalars(
            select(Programme)
            .join(Requirement)
            .where(Requirement.exercise_id == attempt.exercise_id)
            .order_by(Programme.id)
        )
        .unique()
        .all()
    )
    issued = [issue_if_met(attempt.user, p) for p in programmes]
    return [c for c in issued if c is not None]


def on_attempt_ended(sender: object, *, attempt: Attempt, **_: object) -> None:
    """Receiver of quizzes.signals.attempt_ended: certificates follow from the scores at
    once, in the transaction that ended the attempt."""
    issue_after_attempt(attempt)


def revoke(certificate: Certificate, *, reason: str, actor: User) -> Certificate:
    if not reason.strip():
        raise CertificationError(gettext("give the reason for revoking"))
    if certificate.revoked_at is not None:
        raise CertificationError(gettext("the certificate is already revoked"), 409)
    certificate.revoked_at = utcnow()
    certificate.revoke_reason = reason.strip()
    record(
        "certificate.revoke",
        actor=actor,
        object_type="certificate",
        object_id=certificate.id,
        reason=reason.strip(),
    )
    db.session.commit()
    return certificate


def reinstate(certificate: Certificate, *, reason: str, actor: User) -> Certificate:
    if not reason.strip():
        raise CertificationError(gettext("give the reason for reinstating"))
    if certificate.revoked_at is None:
        raise CertificationError(gettext("the certificate is not revoked"), 409)
    certificate.revoked_at = None
    certificate.revoke_reason = None
    record(
        "certificate.reinstate",
        actor=actor,
        object_type="certificate",
        object_id=certificate.id,
        reason=reason.strip(),
    )
    db.session.commit()
    return certificate


def grant_exception(user: User, programme: Programme, *, reason: str, actor: User) -> Certificate:
    """A certificate without the requirements, with the lead's reason on record."""
    if not reason.strip():
        raise CertificationError(gettext("give the reason for the exception"))
    if not eligible(user, programme):
        # An exception waives the requirements, never who the programme is for.
        roles = ", ".join(str(Role(r).label) for r in sorted(programme.eligible_roles))
        raise CertificationError(
            gettext("%(name)s is not eligible for %(programme)s: it is for %(roles)s only",
                    name=user.full_name, programme=programme.title, roles=roles),
            409,
        )
    lock_key("certificate", programme.id, user.id)
    certificate = _issue(user, programme, [], utcnow(), exception=reason.strip(),
                         granted_by=actor)
    record(
        "certificate.exception",
        actor=actor,
        object_type="certificate",
        object_id=certificate.id,
        reason=reason.strip(),
    )
    db.session.commit()
    return certificate


def find_by_code(code: str) -> Certificate | None:
    cleaned = "".join(ch for ch in code.upper() if ch.isalnum())
    if not 8 <= len(cleaned) <= 32:
        return None
    return db.session.scalar(select(Certificate).where(Certificate.code == cleaned))


def programme_requiring(sender: object, *, exercise: Exercise, **_: object) -> str | None:
    """Receiver of quizzes.signals.exercise_deleting: an exercise a programme requires stays
    (its certificates point at its passes)."""
    requirement = db.session.scalars(
        select(Requirement).where(Requirement.exercise_id == exercise.id).limit(1)
    ).first()
    if requirement is None:
        return None
    return gettext("the certification programme %(title)s requires it",
                   title=repr(requirement.programme.title))
