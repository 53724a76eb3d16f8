"""QC concordance beside exam scores, for the programme lead: a programme's table per reader,
clinic or country, one reader's summary and CUSUM, the reader's QC records, and the QC
columns of the certification dashboard and reader history.

Every function takes the lead's countries (``countries_in_scope``: None = all) and reads
through ``app.qc.scope.programme_reads`` or the same filters, so a lead never sees another
country's records. Each use case runs a fixed number of queries, however many readers and
records there are; the figures come from ``app.qc.measures`` and the exam scores from the
certification dashboard (``latest_exam_scores``), so every page shows the same numbers.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from flask_babel import gettext
from sqlalchemy import exists, func, select
from sqlalchemy.orm import aliased

from app.auth.models import Clinic, User
from app.certification.dashboard import latest_exam_scores
from app.certification.models import Programme
from app.extensions import db
from app.qc.control import CusumChart
from app.qc.measures import QcSummary, group_reads, reader_cusum, summarise
from app.qc.models import QcRecord
from app.qc.records import load_reads
from app.qc.scope import (
    QcPeriod,
    QcRequestError,
    programme_readers,
    programme_reads,
    target_rate,
)

#: What the programme's table groups by (the ``by`` query argument).
GROUPINGS = ("reader", "clinic", "country")
RECORDS_PER_PAGE = 50


def grouping_from_args(args: Mapping[str, str]) -> str:
    """The ``by`` argument (default: reader); anything else is a 400 with the reason."""
    by = (args.get("by") or "").strip() or "reader"
    if by not in GROUPINGS:
        raise QcRequestError(gettext("The table is by reader, clinic or country."))
    return by


@dataclass(frozen=True)
class ExamScores:
    """A reader's latest ended exam in the programme, as the certification dashboard shows it."""

    ended_at: datetime | None
    passed: bool | None
    sensitivity: float | None
    specificity: float | None


@dataclass(frozen=True)
class ConcordanceRow:
    """One reader, clinic or country. ``key`` is the user id, clinic id or country code;
    ``name`` the reader's or clinic's name (the code for a country); ``clinic_name`` and
    ``country_code`` place a reader (their clinic now; None when it is outside the lead's
    countries) or a clinic."""

    key: int | str
    name: str
    country_code: str
    clinic_name: str | None
    summary: QcSummary
    exam: ExamScores | None = None


@dataclass(frozen=True)
class ConcordanceTable:
    by: str
    period: QcPeriod
    target: float
    rows: list[ConcordanceRow]


def _exams(programme: Programme, user_ids: Collection[int]) -> dict[int, ExamScores]:
    return {uid: ExamScores(*scores)
            for uid, scores in latest_exam_scores(programme, list(user_ids)).items()}


def programme_table(programme: Programme, countries: Collection[str] | None,
                    period: QcPeriod, by: str) -> ConcordanceTable:
    """The programme's QC summaries by reader, clinic or country over the period (each
    group's last N reads when ``period.last`` is set). By reader, every reader of the
    programme in the lead's countries is listed (with no reads: n = 0) beside their latest
    exam. Five queries by reader, three by clinic, two by country."""
    reads = programme_reads(programme, countries, period)
    groups = group_reads(reads, by)
    summaries = {key: summarise(period.select(group)) for key, group in groups.items()}
    rows: list[ConcordanceRow] = []
    if by == "reader":
        ids = set(db.session.scalars(programme_readers(programme, countries))) | {
            int(k) for k in groups}  # type: ignore[call-overload]
        people = db.session.execute(
            select(User.id, User.full_name, Clinic.name, Clinic.country_code)
            .join(Clinic, Clinic.id == User.clinic_id).where(User.id.in_(list(ids))))
        exams = _exams(programme, ids)
        empty = summarise([])
        rows = []
        for uid, name, clinic_now, country_now in people:
            clinic: str | None = clinic_now
            country: str = country_now
            if countries is not None and country not in countries:
                # A reader who moved out of the lead's countries: only the country of
                # their records here shows, not where they read now.
                clinic, country = None, groups[uid][-1].country
            rows.append(ConcordanceRow(uid, name, country, clinic,
                                       summaries.get(uid, empty), exams.get(uid)))
        rows.sort(key=lambda r: (r.country_code, r.clinic_name or "", r.name, r.key))
    elif by == "clinic":
        clinics = db.session.execute(select(Clinic.id, Clinic.name, Clinic.country_code)
                                     .where(Clinic.id.in_(list(groups))))
        rows = [ConcordanceRow(cid, name, country, name, summaries[cid])
                for cid, name, country in clinics]
        rows.sort(key=lambda r: (r.country_code, r.name, r.key))
    else:
        rows = [ConcordanceRow(str(code), str(code), str(code), None, summaries[code])
                for code in sorted(groups, key=str)]
    return ConcordanceTable(by, period, target_rate(programme), rows)


# ---- one reader ---------------------------------------------------------------------------


def reader_in_scope(programme: Programme, countries: Collection[str] | None,
                    user_id: int) -> User | None:
    """The reader if they read for the programme (``programme_readers``) and the lead may
    see them: their clinic is in the lead's countries, or they have QC records read in one
    (a reader who moved keeps those records in the earlier country's view). One query."""
    query = select(User).where(User.id == user_id,
                               User.id.in_(programme_readers(programme, None)))
    if countries is not None:
        here = aliased(Clinic)
        query = query.where(
            User.clinic_id.in_(select(here.id).where(here.country_code.in_(list(countries))))
            | exists(select(QcRecord.id).join(Clinic, Clinic.id == QcRecord.clinic_id).where(
                QcRecord.reader_id == User.id, Clinic.country_code.in_(list(countries)))))
    return db.session.scalar(query)


@dataclass(frozen=True)
class ReaderConcordance:
    summary: QcSummary
    exam: ExamScores | None
    target: float
    cusum: CusumChart | None  # None: the programme's target cannot make a chart (0 or 1)


def reader_concordance(programme: Programme, countries: Collection[str] | None,
                       reader: User, period: QcPeriod) -> ReaderConcordance:
    """The reader's QC summary over the period (their last N reads), their latest exam,
    and their CUSUM against the programme's target rate. Three queries."""
    reads = period.select(programme_reads(programme, countries, period,
                                          reader_ids=[reader.id]))
    target = target_rate(programme)
    chart = reader_cusum(reads, target) if 0 < target < 1 else None
    return ReaderConcordance(summarise(reads), _exams(programme, [reader.id]).get(reader.id),
                             target, chart)


@dataclass(frozen=True)
class RecordRow:
    id: int
    study_pseudonym: str
    read_date: date
    qc_date: date | None
    clinic_name: str
    country_code: str
    primary_tb: bool | None
    qc_tb: bool | None
    grade: str
    qc_radiologist: str
    case_id: int | None  # the teaching case the study was promoted to


@dataclass
class RecordPage:
    rows: list[RecordRow]
    total: int
    page: int
    per_page: int
    pages: int = field(init=False)

    def __post_init__(self) -> None:
        self.pages = max(1, -(-self.total // self.per_page))


def reader_records(countries: Collection[str] | None, reader: User, period: QcPeriod,
                   page: int = 1, per_page: int = RECORDS_PER_PAGE) -> RecordPage:
    """The reader's QC records in the lead's countries and the period (the last N of them
    when ``period.last`` is set), newest first, a page at a time. Two queries."""
    radiologist = aliased(User)
    query = (select(QcRecord.id, QcRecord.study_pseudonym, QcRecord.read_date,
                    QcRecord.qc_date, Clinic.name, Clinic.country_code, QcRecord.primary_tb,
                    QcRecord.qc_tb, QcRecord.grade, radiologist.full_name, QcRecord.case_id)
             .join(Clinic, Clinic.id == QcRecord.clinic_id)
             .join(radiologist, radiologist.id == QcRecord.qc_radiologist_id)
             .where(QcRecord.reader_id == reader.id))
    if countries is not None:
        query = query.where(Clinic.country_code.in_(list(countries)))
    if period.start is not None:
        query = query.where(QcRecord.read_date >= period.start)
    if period.end is not None:
        query = query.where(QcRecord.read_date <= period.end)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    if period.last is not None:
        total = min(total, period.last)
    page = max(page, 1)
    offset = (page - 1) * per_page
    size = max(0, min(per_page, total - offset))
    listed = db.session.execute(
        query.order_by(QcRecord.read_date.desc(), QcRecord.id.desc())
        .limit(size).offset(offset)).all() if size else []
    return RecordPage([RecordRow(*r) for r in listed], total, page, per_page)


# ---- the certification pages ---------------------------------------------------------------


def summaries_of_readers(countries: Collection[str] | None,
                         user_ids: Collection[int]) -> dict[int, QcSummary]:
    """Every QC read of each listed reader in the lead's countries, summarised (the QC
    columns of the dashboard's readers and of a reader's history). One query."""
    reads = load_reads(reader_ids=list(user_ids), countries=countries)
    return {int(key): summarise(group)  # type: ignore[call-overload]
            for key, group in group_reads(reads, "reader").items()}
