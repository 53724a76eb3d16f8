"""QC records as the measures read them: the query behind per-reader, per-clinic and
per-country concordance (pages, the API and flags build on it)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date

from sqlalchemy import select

from app.auth.models import Clinic
from app.extensions import db
from app.qc.measures import QcRead
from app.qc.models import QcRecord


def load_reads(*, reader_ids: Collection[int] | None = None,
               clinic_ids: Collection[int] | None = None,
               countries: Collection[str] | None = None,
               start: date | None = None, end: date | None = None) -> list[QcRead]:
    """The QC reads matching every filter given (read date from ``start`` to ``end``,
    both included), oldest first. ``reader``/``clinic`` are ids, ``country`` the clinic's
    country code. An empty collection matches nothing (a lead with no countries sees no
    record), None matches everything."""
    query = (select(QcRecord.id, QcRecord.reader_id, QcRecord.clinic_id, Clinic.country_code,
                    QcRecord.read_date, QcRecord.primary_tb, QcRecord.qc_tb, QcRecord.grade)
             .join(Clinic, Clinic.id == QcRecord.clinic_id)
             .order_by(QcRecord.read_date, QcRecord.id))
    if reader_ids is not None:
        query = query.where(QcRecord.reader_id.in_(list(reader_ids)))
    if clinic_ids is not None:
        query = query.where(QcRecord.clinic_id.in_(list(clinic_ids)))
    if countries is not None:
        query = query.where(Clinic.country_code.in_(list(countries)))
    if start is not None:
        query = query.where(QcRecord.read_date >= start)
    if end is not None:
        query = query.where(QcRecord.read_date <= end)
    return [QcRead(reader=r.reader_id, clinic=r.clinic_id, country=r.country_code,
                   read_date=r.read_date, primary_tb=r.primary_tb, qc_tb=r.qc_tb,
                   grade=r.grade, order=r.id)
            for r in db.session.execute(query)]
