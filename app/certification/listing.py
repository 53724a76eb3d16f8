"""The lead's list of certificates: filters by programme, status, country, clinic and a
holder's name or code, with the status computed in SQL the same way as ``status()``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_babel import gettext
from sqlalchemy import Select, literal, or_, select
from sqlalchemy.orm import joinedload

from app.auth.models import Clinic, User
from app.certification.models import Certificate
from app.certification.services import EXPIRED, REVOKED, VALID, CertificationError
from app.db_types import UTCDateTime, utcnow
from app.validation import MAX_DB_INTEGER

STATUSES = (VALID, EXPIRED, REVOKED)


@dataclass(frozen=True)
class CertificateFilters:
    programme_id: int | None = None
    status: str | None = None
    country: str | None = None
    clinic_id: int | None = None
    search: str = ""

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> CertificateFilters:
        numbers: dict[str, int | None] = {}
        for key in ("programme", "clinic"):
            text = (args.get(key) or "").strip()
            if text and not (text.isascii() and text.isdigit() and int(text) <= MAX_DB_INTEGER):
                raise CertificationError(gettext("the %(name)s filter takes a number", name=key))
            numbers[key] = int(text) if text else None
        status = (args.get("status") or "").strip() or None
        if status is not None and status not in STATUSES:
            raise CertificationError(
                gettext("the status filter takes valid, expired or revoked"))
        country = (args.get("country") or "").strip().upper() or None
        if country is not None and not (len(country) == 2 and country.isalpha()):
            raise CertificationError(gettext("the country filter takes a two-letter ISO code"))
        search = (args.get("q") or "").strip()
        if len(search) > 200:
            raise CertificationError(
                gettext("the search text is too long (200 characters at most)"))
        return cls(numbers["programme"], status, country, numbers["clinic"], search)

    def args(self) -> dict[str, Any]:
        pairs = (("programme", self.programme_id), ("status", self.status),
                 ("country", self.country), ("clinic", self.clinic_id), ("q", self.search or None))
        return {k: v for k, v in pairs if v is not None}


def certificate_query(
    filters: CertificateFilters, scope: list[str] | None, now: datetime | None = None
) -> Select[Any]:
    """``scope``: the lead's countries (None = all). Holders, clinics and programmes are
    loaded in the same query."""
    now_param = literal(now or utcnow(), UTCDateTime())
    query = (
        select(Certificate)
        .join(User, User.id == Certificate.user_id)
        .outerjoin(Clinic, Clinic.id == User.clinic_id)
        .options(joinedload(Certificate.user), joinedload(Certificate.programme))
        .order_by(Certificate.issued_at.desc(), Certificate.id.desc())
    )
    if scope is not None:
        query = query.where(Clinic.country_code.in_(scope))
    if filters.programme_id is not None:
        query = query.where(Certificate.programme_id == filters.programme_id)
    if filters.country:
        query = query.where(Clinic.country_code == filters.country)
    if filters.clinic_id is not None:
        query = query.where(Clinic.id == filters.clinic_id)
    if filters.status == REVOKED:
        query = query.where(Certificate.revoked_at.is_not(None))
    elif filters.status == VALID:
        query = query.where(Certificate.revoked_at.is_(None), Certificate.expires_at > now_param)
    elif filters.status == EXPIRED:
        query = query.where(Certificate.revoked_at.is_(None), Certificate.expires_at <= now_param)
    if filters.search:
        # The holder's name as printed, or a code typed with or without separators.
        code = "".join(ch for ch in filters.search.upper() if ch.isalnum())
        escaped = filters.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions = [Certificate.holder_name.ilike(f"%{escaped}%", escape="\\")]
        if code:
            conditions.append(Certificate.code == code)
        query = query.where(or_(*conditions))
    return query
