"""What the programme's QC figures show a lead: the reads in their countries and the names
of the clinics and readers behind them (``app.qc.figures`` turns them into series)."""

from __future__ import annotations

from collections.abc import Collection, Hashable
from typing import cast

from flask_babel import gettext
from sqlalchemy import select

from app.auth.models import Clinic, User
from app.certification.models import Programme
from app.extensions import db
from app.qc.figures import CusumSeries, FunnelSeries, cusum_series, funnel_series
from app.qc.scope import QcPeriod, programme_readers, programme_reads, target_rate

FUNNEL_UNITS = ("clinic", "reader")


def clinic_labels(ids: Collection[int]) -> dict[int, str]:
    """"KE · Mathare Clinic" per clinic id."""
    if not ids:
        return {}
    rows = db.session.execute(select(Clinic.id, Clinic.country_code, Clinic.name)
                              .where(Clinic.id.in_(list(ids))))
    return {r.id: f"{r.country_code} · {r.name}" for r in rows}


def reader_labels(ids: Collection[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = db.session.execute(select(User.id, User.full_name).where(User.id.in_(list(ids))))
    return {r.id: r.full_name for r in rows}


def programme_funnel(programme: Programme, countries: Collection[str] | None,
                     period: QcPeriod, by: str) -> FunnelSeries:
    """The funnel of the programme's clinics or readers (``by``) over the period, from the
    reads in ``countries`` only (None: all)."""
    if by not in FUNNEL_UNITS:
        raise ValueError(by)
    reads = programme_reads(programme, countries, period)
    # The reads carry ids here (programme_reads): the measures take any hashable key.
    keys = {cast(int, r.clinic if by == "clinic" else r.reader) for r in reads}
    labels: dict[Hashable, str]
    if by == "clinic":
        labels = {key: label for key, label in clinic_labels(keys).items()}
        title = gettext("Major-discrepancy rate per clinic: %(programme)s",
                        programme=programme.title)
    else:
        labels = {key: label for key, label in reader_labels(keys).items()}
        title = gettext("Major-discrepancy rate per reader: %(programme)s",
                        programme=programme.title)
    return funnel_series(reads, by, target_rate(programme), labels, title, last=period.last)


def reader_in_view(programme: Programme, countries: Collection[str] | None,
                   user_id: int) -> User | None:
    """The programme's reader ``user_id`` if the lead may see them: a reader of the
    programme whose clinic is in ``countries``, or who has QC reads read in a clinic there
    (a reader who moved stays in the earlier country's view for those reads)."""
    user = db.session.get(User, user_id)
    if user is None or user.id not in set(db.session.scalars(
            programme_readers(programme, None).where(User.id == user_id))):
        return None
    if countries is None or (user.clinic is not None and user.clinic.country_code in countries):
        return user
    return user if programme_reads(programme, countries, reader_ids=[user_id]) else None


def reader_cusum(programme: Programme, countries: Collection[str] | None, period: QcPeriod,
                 user: User) -> CusumSeries:
    """The reader's CUSUM over the period (their ``last`` N reads when given), from the
    reads in ``countries`` only."""
    reads = period.select(programme_reads(programme, countries, period, reader_ids=[user.id]))
    title = gettext("CUSUM of major discrepancies, %(reader)s: %(programme)s",
                    reader=user.full_name, programme=programme.title)
    return cusum_series(reads, target_rate(programme), title)
