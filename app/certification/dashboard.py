"""The programme lead's views: per clinic (enrolled, certified, expiring, expired, in progress,
not started, exam pass rate), the readers behind those counts, and the distribution of their
exam sensitivity and specificity.

Every figure is computed by the database in a fixed number of aggregate queries, however many
users, attempts and certificates there are: a reader's state is a CASE over their latest
unrevoked certificate and whether they started the programme's exercises.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from flask_babel import gettext
from sqlalchemy import Select, case, func, literal, select, true
from sqlalchemy.sql.selectable import Subquery

from app.auth.models import Clinic, User, UserRole
from app.certification.models import Certificate, Programme
from app.certification.services import CertificationError
from app.certification.wording import export_headers
from app.db_types import UTCDateTime, utcnow
from app.exports import csv_cell, xlsx_row
from app.extensions import db
from app.i18n import N_
from app.quizzes.models import ENDED_STATES, Attempt
from app.validation import MAX_DB_INTEGER

EXPIRING_DAYS = 90

# A reader's state in one programme. "certified" holds a valid certificate that does not
# expire within EXPIRING_DAYS; "expiring" holds one that does.
CERTIFIED, EXPIRING, EXPIRED = "certified", "expiring", "expired"
IN_PROGRESS, NOT_STARTED = "in_progress", "not_started"
READER_STATES = (CERTIFIED, EXPIRING, EXPIRED, IN_PROGRESS, NOT_STARTED)
# Plain English: the readers' export keeps these words whatever the reader's language
# (machine-friendly values); the page translates them where it shows them.
STATE_LABELS = {
    CERTIFIED: N_("certified"),
    EXPIRING: N_("expiring within 90 days"),  # EXPIRING_DAYS
    EXPIRED: N_("expired"),
    IN_PROGRESS: N_("in progress"),
    NOT_STARTED: N_("not started"),
}
# The status filter: "certified" means every valid certificate, expiring ones included.
STATUS_FILTERS = {
    "certified": (CERTIFIED, EXPIRING),
    "expiring": (EXPIRING,),
    "expired": (EXPIRED,),
    "in_progress": (IN_PROGRESS,),
    "not_started": (NOT_STARTED,),
}

COLUMNS = (
    "country",
    "clinic",
    "enrolled",
    "certified",
    "expiring_90_days",
    "expired",
    "in_progress",
    "not_started",
    "exam_attempts",
    "exam_pass_rate",
)
READER_COLUMNS = (
    "country",
    "clinic",
    "reader",
    "state",
    "certificate_expires",
    "latest_exam",
    "latest_exam_passed",
    "sensitivity",
    "specificity",
)




def _header(columns: tuple[str, ...]) -> list[str]:
    words = export_headers()
    return [words[key] for key in columns]


@dataclass(frozen=True)
class Filters:
    """The dashboard's filters, from the query string; bad values are a 400 with a reason."""

    country: str | None = None
    clinic_id: int | None = None
    status: str | None = None

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> Filters:
        country = (args.get("country") or "").strip().upper() or None
        if country is not None and not (len(country) == 2 and country.isalpha()):
            raise CertificationError(gettext("the country filter takes a two-letter ISO code"))
        clinic_text = (args.get("clinic") or "").strip()
        if clinic_text and not (clinic_text.isascii() and clinic_text.isdigit()
                                and int(clinic_text) <= MAX_DB_INTEGER):
            raise CertificationError(gettext("the clinic filter takes a clinic number"))
        status = (args.get("status") or "").strip() or None
        if status is not None and status not in STATUS_FILTERS:
            raise CertificationError(gettext("the status filter takes one of %(keys)s",
                                             keys=", ".join(STATUS_FILTERS)))
        return cls(country, int(clinic_text) if clinic_text else None, status)

    def args(self) -> dict[str, Any]:
        """For links that keep the filters."""
        return {k: v for k, v in (("country", self.country), ("clinic", self.clinic_id),
                                  ("status", self.status)) if v is not None}


@dataclass(kw_only=True)
class Counts:
    """Readers by state and exam attempts, of a clinic or a country."""

    enrolled: int = 0
    certified: int = 0  # every valid certificate, expiring ones included
    expiring: int = 0
    expired: int = 0
    in_progress: int = 0
    not_started: int = 0
    exam_attempts: int = 0
    exam_passed: int = 0

    @property
    def exam_pass_rate(self) -> float | None:
        return self.exam_passed / self.exam_attempts if self.exam_attempts else None

    def add(self, other: Counts) -> None:
        for name in COUNT_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


COUNT_FIELDS = tuple(f.name for f in fields(Counts))


@dataclass
class ClinicRow(Counts):
    clinic: Clinic


@dataclass
class CountryRow(Counts):
    country_code: str
    clinics: int = 0


@dataclass(frozen=True)
class ReaderRow:
    user_id: int
    name: str
    clinic_name: str
    country_code: str
    state: str
    expires_at: datetime | None
    exam_ended_at: datetime | None
    exam_passed: bool | None
    sensitivity: float | None
    specificity: float | None


@dataclass
class ReaderPage:
    rows: list[ReaderRow]
    total: int
    page: int
    per_page: int
    pages: int = field(init=False)

    def __post_init__(self) -> None:
        self.pages = max(1, -(-self.total // self.per_page))


def _clinics(scope: list[str] | None, filters: Filters) -> Select[Any]:
    query = select(Clinic)
    if scope is not None:
        query = query.where(Clinic.country_code.in_(scope))
    if filters.country:
        query = query.where(Clinic.country_code == filters.country)
    if filters.clinic_id is not None:
        query = query.where(Clinic.id == filters.clinic_id)
    return query


def _readers(programme: Programme, scope: list[str] | None, filters: Filters) -> Subquery:
    """The programme's readers in scope: active users of an eligible role in a clinic."""
    clinics = _clinics(scope, filters).with_only_columns(Clinic.id)
    query = select(User.id.label("user_id"), User.clinic_id.label("clinic_id")).where(
        User.active, User.clinic_id.in_(clinics)
    )
    if programme.eligible_roles:
        query = query.where(
            User.id.in_(select(UserRole.user_id).where(UserRole.role.in_(programme.eligible_roles)))
        )
    return query.subquery("readers")


def _states(programme: Programme, readers: Subquery, now: datetime) -> Subquery:
    """(user_id, clinic_id, expires_at, state) for every reader. Correlated subqueries on
    the indexed user columns: each reader costs a few index lookups, so the time grows with
    the readers in view, not with all attempts and certificates."""
    expires = (
        select(func.max(Certificate.expires_at))
        .where(
            Certificate.user_id == readers.c.user_id,
            Certificate.programme_id == programme.id,
            Certificate.revoked_at.is_(None),
        )
        .correlate(readers)
        .scalar_subquery()
    )
    exercise_ids = [r.exercise_id for r in programme.requirements] or [-1]
    started = (
        select(Attempt.id)
        .where(Attempt.user_id == readers.c.user_id, Attempt.exercise_id.in_(exercise_ids))
        .correlate(readers)
        .exists()
    )
    inner = select(readers.c.user_id, readers.c.clinic_id, expires.label("expires_at"),
                   started.label("started")).subquery("reader_facts")
    now_param = literal(now, UTCDateTime())
    soon_param = literal(now + timedelta(days=EXPIRING_DAYS), UTCDateTime())
    state = case(
        (inner.c.expires_at > soon_param, CERTIFIED),
        (inner.c.expires_at > now_param, EXPIRING),
        (inner.c.expires_at.is_not(None), EXPIRED),
        (inner.c.started, IN_PROGRESS),
        else_=NOT_STARTED,
    )
    return select(inner.c.user_id, inner.c.clinic_id, inner.c.expires_at,
                  state.label("state")).subquery("reader_state")


def _exam_ids(programme: Programme) -> list[int]:
    return [r.exercise_id for r in programme.requirements if r.kind != "practice"] or [-1]


def _latest_exams(programme: Programme, users: Subquery) -> Subquery:
    """The most recent ended exam attempt in the programme (its scores) of each user in
    ``users`` (a subquery with a ``user_id`` column).

    The fastest form differs by database (bench/bench_dashboards.py, 7,800 readers and
    100,000 exam attempts): PostgreSQL numbers a window over the exam attempts in memory
    (90 ms; a LATERAL top-1 per user takes 130 ms), while SQLite sorts such a window on
    disk (300 ms) but looks up each user's latest attempt on the attempt index (45 ms)."""
    exams = (
        Attempt.exercise_id.in_(_exam_ids(programme)),
        Attempt.state.in_(ENDED_STATES),
    )
    newest_first = (Attempt.ended_at.desc(), Attempt.id.desc())
    if db.engine.dialect.name == "postgresql":
        ranked = (
            select(Attempt.user_id, Attempt.ended_at, Attempt.passed, Attempt.sensitivity,
                   Attempt.specificity,
                   func.row_number().over(partition_by=Attempt.user_id,
                                          order_by=newest_first).label("recency"))
            .where(*exams, Attempt.user_id.in_(select(users.c.user_id)))
            .subquery("ranked_exams")
        )
        return (
            select(ranked.c.user_id, ranked.c.ended_at, ranked.c.passed,
                   ranked.c.sensitivity, ranked.c.specificity)
            .where(ranked.c.recency == 1)
            .subquery("latest_exam")
        )
    latest_id = (
        select(Attempt.id)
        .where(Attempt.user_id == users.c.user_id, *exams)
        .order_by(*newest_first)
        .limit(1)
        .correlate(users)
        .scalar_subquery()
    )
    return (
        select(users.c.user_id, Attempt.ended_at, Attempt.passed, Attempt.sensitivity,
               Attempt.specificity)
        .join(Attempt, Attempt.id == latest_id)
        .subquery("latest_exam")
    )


def _users(ids: list[int]) -> Subquery:
    return select(User.id.label("user_id")).where(User.id.in_(ids)).subquery("listed")


def latest_exam_scores(programme: Programme, user_ids: list[int]
                       ) -> dict[int, tuple[datetime | None, bool | None, float | None,
                                            float | None]]:
    """(ended at, passed, sensitivity, specificity) of each user's latest ended exam in the
    programme, for the users who have one: the readers' table and the QC pages. One query."""
    latest = _latest_exams(programme, _users(list(user_ids)))
    return {row[0]: tuple(row[1:]) for row in db.session.execute(select(latest))}


def clinic_rows(
    programme: Programme,
    scope: list[str] | None,
    filters: Filters | None = None,
    now: datetime | None = None,
) -> list[ClinicRow]:
    """``scope``: the lead's countries (None = all). Three queries."""
    filters = filters or Filters()
    now = now or utcnow()
    rows = {
        c.id: ClinicRow(clinic=c)
        for c in db.session.scalars(
            _clinics(scope, filters).order_by(Clinic.country_code, Clinic.name)
        )
    }
    if not rows:
        return []
    states = _states(programme, _readers(programme, scope, filters), now)
    counts = db.session.execute(
        select(states.c.clinic_id, states.c.state, func.count())
        .group_by(states.c.clinic_id, states.c.state)
    ).all()
    for clinic_id, state, n in counts:
        row = rows[clinic_id]
        row.enrolled += n
        if state in (CERTIFIED, EXPIRING):
            row.certified += n
        if state == EXPIRING:
            row.expiring += n
        elif state == EXPIRED:
            row.expired += n
        elif state == IN_PROGRESS:
            row.in_progress += n
        elif state == NOT_STARTED:
            row.not_started += n
    exams = db.session.execute(
        select(
            User.clinic_id,
            func.count(Attempt.id),
            func.sum(case((Attempt.passed == true(), 1), else_=0)),
        )
        .join(User, User.id == Attempt.user_id)
        .where(
            Attempt.exercise_id.in_(_exam_ids(programme)),
            User.clinic_id.in_(rows),
            Attempt.state.in_(ENDED_STATES),
        )
        .group_by(User.clinic_id)
    ).all()
    for clinic_id, attempts, passed in exams:
        rows[clinic_id].exam_attempts = int(attempts)
        rows[clinic_id].exam_passed = int(passed or 0)
    return list(rows.values())


def country_rows(rows: list[ClinicRow]) -> list[CountryRow]:
    """The clinic rows summed per country (no further queries)."""
    totals: dict[str, CountryRow] = {}
    for row in rows:
        total = totals.setdefault(row.clinic.country_code,
                                  CountryRow(country_code=row.clinic.country_code))
        total.clinics += 1
        total.add(row)
    return list(totals.values())


def reader_page(
    programme: Programme,
    scope: list[str] | None,
    filters: Filters,
    page: int = 1,
    per_page: int | None = 50,
    now: datetime | None = None,
) -> ReaderPage:
    """The readers behind the counts, filtered by status, one page at a time. Three
    queries: the count, the page, and the latest exam of the readers on the page; all of
    them (``per_page=None``, the export) in one."""
    now = now or utcnow()
    states = _states(programme, _readers(programme, scope, filters), now)
    query = (
        select(User.id, User.full_name, Clinic.name, Clinic.country_code, states.c.state,
               states.c.expires_at)
        .select_from(states)
        .join(User, User.id == states.c.user_id)
        .join(Clinic, Clinic.id == states.c.clinic_id)
    )
    if filters.status is not None:
        query = query.where(states.c.state.in_(STATUS_FILTERS[filters.status]))
    query = query.order_by(Clinic.country_code, Clinic.name, User.full_name, User.id)
    page = max(page, 1)
    if per_page is None:  # everything, for export: one statement, the exams joined on
        # Without a status filter the listed readers are all the readers: their exams by
        # the readers' subquery, without working out each reader's status a second time.
        users = (_readers(programme, scope, filters) if filters.status is None
                 else select(query.subquery().c.id.label("user_id")).subquery("listed"))
        latest = _latest_exams(programme, users)
        joined = query.outerjoin(latest, latest.c.user_id == User.id).add_columns(
            latest.c.ended_at, latest.c.passed, latest.c.sensitivity, latest.c.specificity)
        rows = [ReaderRow(*r) for r in db.session.execute(joined)]
        return ReaderPage(rows, len(rows), 1, max(len(rows), 1))
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    listed = db.session.execute(query.limit(per_page).offset((page - 1) * per_page)).all()
    exams = latest_exam_scores(programme, [r[0] for r in listed])
    rows = [ReaderRow(*(tuple(r) + exams.get(r[0], (None, None, None, None)))) for r in listed]
    return ReaderPage(rows, total, page, per_page)


def reader_rows(
    programme: Programme, scope: list[str] | None, filters: Filters, now: datetime | None = None
) -> list[ReaderRow]:
    """Every reader matching the filters, for export."""
    return reader_page(programme, scope, filters, per_page=None, now=now).rows


def exam_scores_by_clinic(
    programme: Programme, scope: list[str] | None, filters: Filters
) -> list[tuple[Clinic, list[float], list[float]]]:
    """(clinic, sensitivities, specificities) of each reader's latest exam, per clinic that
    has any: the data of the distribution figure. Two queries."""
    readers = _readers(programme, scope, filters)
    exams = _latest_exams(programme, readers)
    query = (
        select(readers.c.clinic_id, exams.c.sensitivity, exams.c.specificity)
        .join(exams, exams.c.user_id == readers.c.user_id)
    )
    if filters.status is not None:
        states = _states(programme, readers, utcnow())
        query = query.join(states, states.c.user_id == readers.c.user_id).where(
            states.c.state.in_(STATUS_FILTERS[filters.status])
        )
    per_clinic: dict[int, tuple[list[float], list[float]]] = {}
    for clinic_id, sensitivity, specificity in db.session.execute(query):
        sens, spec = per_clinic.setdefault(clinic_id, ([], []))
        if sensitivity is not None:
            sens.append(sensitivity)
        if specificity is not None:
            spec.append(specificity)
    if not per_clinic:
        return []
    clinics = db.session.scalars(
        select(Clinic).where(Clinic.id.in_(per_clinic)).order_by(Clinic.country_code, Clinic.name)
    )
    return [(c, *per_clinic[c.id]) for c in clinics]


def _values(r: ClinicRow) -> list[object]:
    return [r.clinic.country_code, r.clinic.name, r.enrolled, r.certified, r.expiring,
            r.expired, r.in_progress, r.not_started, r.exam_attempts, r.exam_pass_rate]


def _reader_values(r: ReaderRow) -> list[object]:
    return [r.country_code, r.clinic_name, r.name, STATE_LABELS[r.state],
            r.expires_at.date() if r.expires_at else None,
            r.exam_ended_at.date() if r.exam_ended_at else None,
            r.exam_passed, r.sensitivity, r.specificity]


def _csv(columns: tuple[str, ...], rows: list[list[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_header(columns))
    for values in rows:
        writer.writerow(["" if v is None else f"{v:.3f}" if isinstance(v, float)
                         else csv_cell(v) for v in values])
    return out.getvalue()


def rows_csv(rows: list[ClinicRow]) -> str:
    return _csv(COLUMNS, [_values(r) for r in rows])


def readers_csv(rows: list[ReaderRow]) -> str:
    """The same cells as _csv of _reader_values, written column by column as each column's
    type needs (only the free-text names can start a formula): the all-readers export has
    ~8,000 rows, and testing every cell's type cost a third of the request."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_header(READER_COLUMNS))
    labels = STATE_LABELS
    writer.writerows(
        [csv_cell(r.country_code), csv_cell(r.clinic_name), csv_cell(r.name), labels[r.state],
         r.expires_at.date() if r.expires_at else "",
         r.exam_ended_at.date() if r.exam_ended_at else "",
         "" if r.exam_passed is None else r.exam_passed,
         "" if r.sensitivity is None else f"{r.sensitivity:.3f}",
         "" if r.specificity is None else f"{r.specificity:.3f}"]
        for r in rows)
    return out.getvalue()


def _xlsx(title: str, sheet_name: str, columns: tuple[str, ...], rows: list[list[object]],
          percent_columns: tuple[str, ...]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = sheet_name
    xlsx_row(sheet, [title])
    xlsx_row(sheet, _header(columns))
    for values in rows:
        xlsx_row(sheet, values)
    for letter in percent_columns:
        for cell in sheet[letter][2:]:
            cell.number_format = "0%"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def rows_xlsx(rows: list[ClinicRow], title: str) -> bytes:
    return _xlsx(title, gettext("Clinics"), COLUMNS, [_values(r) for r in rows], ("J",))


def readers_xlsx(rows: list[ReaderRow], title: str) -> bytes:
    return _xlsx(title, gettext("Readers"), READER_COLUMNS, [_reader_values(r) for r in rows],
                 ("H", "I"))


def programmes() -> list[Programme]:
    return list(
        db.session.scalars(select(Programme).where(Programme.active).order_by(Programme.id))
    )
