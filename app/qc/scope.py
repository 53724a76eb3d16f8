"""What a programme's QC pages are about: its readers (active users of an eligible role,
in the viewer's countries), the period chosen, and the target rate.

Every QC page, figure, flag and export takes its reads through ``programme_reads`` so that
a lead never sees another country's records (the reads are filtered by the clinic's
country in the query, not after it).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date

from flask_babel import gettext
from sqlalchemy import Select, select

from app.auth.models import Clinic, User, UserRole
from app.certification.models import Programme
from app.extensions import db
from app.qc.measures import QcRead, select_reads
from app.qc.records import load_reads

#: The target major-discrepancy rate when a programme sets none.
DEFAULT_TARGET_RATE = 0.05
#: "Last N QC reads" offered on the pages (any N from 1 to MAX_LAST is accepted).
MAX_LAST = 10_000


class QcRequestError(ValueError):
    """A filter that cannot be read: ``sentence`` says why, in the reader's language."""

    status = 400

    def __init__(self, sentence: str) -> None:
        super().__init__(sentence)
        self.sentence = sentence


def target_rate(programme: Programme) -> float:
    return programme.qc_target_rate if programme.qc_target_rate is not None else DEFAULT_TARGET_RATE


def has_ongoing_criterion(programme: Programme) -> bool:
    return None not in (programme.qc_max_rate, programme.qc_last_n, programme.qc_min_reads)


def _day(args: Mapping[str, str], name: str) -> date | None:
    raw = (args.get(name) or "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise QcRequestError(gettext("The date %(value)s is not a date (YYYY-MM-DD).",
                                     value=raw[:20])) from None


@dataclass(frozen=True)
class QcPeriod:
    """Read dates from ``start`` to ``end`` (both included, either open), then each
    reader's, clinic's or country's ``last`` N QC reads of them."""

    start: date | None = None
    end: date | None = None
    last: int | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> QcPeriod:
        start, end = _day(args, "start"), _day(args, "end")
        if start and end and start > end:
            raise QcRequestError(gettext("The period starts after it ends."))
        raw = (args.get("last") or "").strip()
        last = None
        if raw:
            if not raw.isdigit() or not 1 <= int(raw) <= MAX_LAST:
                raise QcRequestError(gettext(
                    "The number of last QC reads is a whole number from 1 to %(most)d.",
                    most=MAX_LAST))
            last = int(raw)
        return cls(start, end, last)

    def as_args(self) -> dict[str, str]:
        """The period as query arguments (for links and figure URLs)."""
        args = {}
        if self.start:
            args["start"] = self.start.isoformat()
        if self.end:
            args["end"] = self.end.isoformat()
        if self.last:
            args["last"] = str(self.last)
        return args

    def select(self, reads: Collection[QcRead]) -> list[QcRead]:
        """The period's reads of one group (the ``last`` N of them)."""
        return select_reads(reads, start=self.start, end=self.end, last=self.last)


def programme_readers(programme: Programme, countries: Collection[str] | None) -> Select:
    """The ids of the programme's readers in ``countries`` (None: all): active users of an
    eligible role (any role when the programme names none) with a clinic."""
    query = (select(User.id).join(Clinic, Clinic.id == User.clinic_id).where(User.active))
    if countries is not None:
        query = query.where(Clinic.country_code.in_(list(countries)))
    if programme.eligible_roles:
        query = query.where(User.id.in_(
            select(UserRole.user_id).where(UserRole.role.in_(programme.eligible_roles))))
    return query


def programme_reads(programme: Programme, countries: Collection[str] | None,
                    period: QcPeriod | None = None, *, reader_ids: Collection[int] | None = None,
                    clinic_ids: Collection[int] | None = None) -> list[QcRead]:
    """The QC reads of the programme's readers read in a clinic of ``countries`` (None:
    all), within the period's dates (``last`` is per group: apply ``period.select`` to each
    reader's or clinic's reads). Oldest first. The record's clinic decides the country: a
    reader who moved keeps their earlier records in the earlier country's view."""
    ids = set(db.session.scalars(programme_readers(programme, None)))
    if reader_ids is not None:
        ids &= set(reader_ids)
    period = period or QcPeriod()
    return load_reads(reader_ids=ids, clinic_ids=clinic_ids, countries=countries,
                      start=period.start, end=period.end)
