"""Importing QC records: a file (CSV, XLSX), a batch of JSON objects (the API, later) or one
record entered by hand, all through ``import_rows``.

* Every row is checked first and the report lists each problem (row number, column,
  reason). **One malformed row refuses the whole import**: nothing is written, so a
  corrected file can simply be imported again.
* The study reference is pseudonymised on entry (``app.qc.pseudonyms``); only the
  pseudonym reaches the database. Free-text columns (comments, a scheme's text items) and
  columns the template does not name are never read into a record.
* **Idempotent**: a record is one (study, reader). Importing one again leaves it as it is
  when nothing changed ("unchanged") and **updates** it when the QC centre corrected it
  ("updated": the newer import wins, as a corrected export is what the centre sends).
  The same row twice in one file is imported once; the same study and reader twice with
  different reads or grades is refused, since neither can be chosen.
* A reader (and the QC radiologist) is named by user name or e-mail and must have an
  account; the QC radiologist must be a trainer. The clinic defaults to the reader's.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask_babel import gettext
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.audit.services import record
from app.auth.models import Clinic, User
from app.auth.roles import Role
from app.db_types import utcnow
from app.extensions import db
from app.i18n import N_
from app.qc.files import (
    ANSWER_TYPES,
    MULTI_SEPARATOR,
    READS,
    REQUIRED_COLUMNS,
    FileRefused,
    Row,
    cell_text,
    read_table,
    required_answer_columns,
)
from app.qc.models import DEFAULT_SCHEME, GRADE_VALUES, QcImportBatch, QcRecord
from app.qc.pseudonyms import MAX_REFERENCE_LENGTH, install_secret, study_pseudonym
from app.schemes.answers import tb_positive, validate_answers
from app.schemes.errors import SchemeError
from app.schemes.parts import Scheme
from app.schemes.registry import classification_item, get_scheme, is_image_quality

EARLIEST_READ = date(2000, 1, 1)


@dataclass(frozen=True)
class RowProblem:
    row: int  # as a spreadsheet numbers it (the header is row 1); 0: the whole file
    field: str
    reason: str  # English, marked for translation; ``text()`` translates it
    params: dict[str, Any] = dataclasses.field(default_factory=dict)

    def text(self) -> str:
        return gettext(self.reason, **self.params)

    def english(self) -> str:
        return self.reason % self.params if self.params else self.reason


@dataclass(frozen=True)
class RowOutcome:
    row: int
    status: str  # created, updated, unchanged, duplicate (of an earlier row of the file)
    record_id: int | None = None
    same_as_row: int | None = None


@dataclass
class ImportReport:
    source: str
    problems: list[RowProblem] = field(default_factory=list)
    outcomes: list[RowOutcome] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    batch_id: int | None = None

    @property
    def refused(self) -> bool:
        return bool(self.problems)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


@dataclass(frozen=True)
class _Entry:
    row: int
    pseudonym: str
    reader: User
    clinic: Clinic
    read_date: date
    qc_date: date | None
    scheme: Scheme
    primary: dict[str, Any]
    qc: dict[str, Any]
    grade: str
    qc_radiologist: User

    @property
    def key(self) -> tuple[str, int]:
        return self.pseudonym, self.reader.id

    def values(self) -> dict[str, Any]:
        """What a record holds, to compare a re-import with it and to write it."""
        return {
            "clinic_id": self.clinic.id, "read_date": self.read_date, "qc_date": self.qc_date,
            "scheme_key": self.scheme.key, "scheme_version": self.scheme.version,
            "primary_read": self.primary, "qc_read": self.qc,
            "primary_tb": tb_positive(self.scheme, self.primary),
            "qc_tb": tb_positive(self.scheme, self.qc),
            "grade": self.grade, "qc_radiologist_id": self.qc_radiologist.id,
        }


class _RowError(Exception):
    def __init__(self, column: str, reason: str, **params: Any) -> None:
        super().__init__(reason)
        self.column, self.reason, self.params = column, reason, params


class _Lookups:
    """Users, clinics and schemes named in a file, each looked up once."""

    def __init__(self) -> None:
        self.users: dict[str, User | None] = {}
        self.clinics: dict[str, Clinic | None] = {}
        self.schemes: dict[str, Scheme | str] = {}

    def user(self, ref: str) -> User | None:
        key = ref.strip().lower()
        if key not in self.users:
            self.users[key] = db.session.scalar(
                select(User).where((User.username == key) | (func.lower(User.email) == key)))
        return self.users[key]

    def clinic(self, name: str) -> Clinic | None:
        key = name.strip().lower()
        if key not in self.clinics:
            self.clinics[key] = db.session.scalar(
                select(Clinic).where(func.lower(Clinic.name) == key))
        return self.clinics[key]

    def scheme(self, key: str) -> Scheme:
        if key not in self.schemes:
            try:
                scheme = get_scheme(key)
            except SchemeError:
                self.schemes[key] = N_("there is no reporting scheme %(value)s")
            else:
                usable = (not is_image_quality(key) and scheme.tb_decision
                          and classification_item(scheme))
                self.schemes[key] = scheme if usable else N_(
                    "the scheme %(value)s has no classification and sputum decision to "
                    "compare")
        found = self.schemes[key]
        if isinstance(found, str):
            raise _RowError("scheme", found, value=key)
        return found


# ---- checking one row ---------------------------------------------------------------------


def _text(values: Mapping[str, Any], column: str) -> str:
    return cell_text(values.get(column))


def _date(values: Mapping[str, Any], column: str, required: bool) -> date | None:
    raw = values.get(column)
    if isinstance(raw, datetime):
        day = raw.date()
    elif isinstance(raw, date):
        day = raw
    else:
        text = cell_text(raw)
        if not text:
            if required:
                raise _RowError(column, N_("a date is needed (YYYY-MM-DD)"))
            return None
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise _RowError(column, N_("%(value)s is not a date in the form YYYY-MM-DD"),
                            value=text[:40]) from None
    # A day ahead of UTC is still today somewhere: the centre's clock may be there.
    if day > datetime.now(UTC).date() + timedelta(days=1):
        raise _RowError(column, N_("the date %(value)s is in the future"),
                        value=day.isoformat())
    if day < EARLIEST_READ:
        raise _RowError(column, N_("the date %(value)s is before %(earliest)s"),
                        value=day.isoformat(), earliest=EARLIEST_READ.isoformat())
    return day


def _answer(scheme: Scheme, column: str, key: str, raw: Any) -> Any:
    item = scheme.item(key)
    text = cell_text(raw)
    if item.type == "scale":
        return text
    labels = [o.label.strip().lower() for o in item.options]
    # A label stands for its value only where no other option shares it ("Other (specify)").
    by_label = {label: o.value for label, o in zip(labels, item.options, strict=True)
                if labels.count(label) == 1}

    def option(value: str) -> str:
        value = value.strip()
        if value in item.option_values():
            return value
        if value.lower() in by_label:
            return by_label[value.lower()]
        raise _RowError(column, N_("%(value)s is not one of: %(allowed)s"),
                        value=value[:60], allowed=", ".join(item.option_values()))

    if item.type == "choice":
        return option(text)
    # A file separates values with ";"; a JSON batch (the API) may send a list.
    values = raw if isinstance(raw, list) else text.split(MULTI_SEPARATOR)
    return [option(cell_text(v)) for v in values if cell_text(v)]


def _read(scheme: Scheme, read: str, values: Mapping[str, Any]) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for item in scheme.items:
        column = f"{read}_{item.key}"
        if item.type in ANSWER_TYPES and cell_text(values.get(column)):
            answers[item.key] = _answer(scheme, column, item.key, values[column])
    key = classification_item(scheme)
    if key not in answers:
        raise _RowError(f"{read}_{key}", N_("the classification is needed"))
    try:
        return validate_answers(scheme, answers, partial=True)
    except SchemeError as exc:  # a scale out of range: the scheme's own sentence
        raise _RowError(read, N_("the answers do not fit the scheme: %(detail)s"),
                        detail=str(exc)) from None


def _grade(values: Mapping[str, Any]) -> str:
    text = _text(values, "grade").lower()
    if not text:
        raise _RowError("grade", N_("the grade is needed (1, 2a, 2b, 3a or 3b)"))
    if text not in GRADE_VALUES:
        raise _RowError("grade", N_("%(value)s is not a grade (1, 2a, 2b, 3a or 3b)"),
                        value=text[:20])
    return text


def _person(lookups: _Lookups, values: Mapping[str, Any], column: str) -> User:
    ref = _text(values, column)
    if not ref:
        raise _RowError(column, N_("a user name or e-mail is needed"))
    user = lookups.user(ref)
    if user is None:
        raise _RowError(column, N_("no account has the user name or e-mail %(value)s"),
                        value=ref[:80])
    return user


def _reference(values: Mapping[str, Any]) -> str:
    reference = _text(values, "study_reference")
    if not reference:
        raise _RowError("study_reference", N_("the study reference is needed"))
    if len(reference) > MAX_REFERENCE_LENGTH:
        raise _RowError("study_reference", N_("the study reference is longer than "
                                              "%(limit)s characters"),
                        limit=MAX_REFERENCE_LENGTH)
    return reference


def _qc_radiologist(lookups: _Lookups, values: Mapping[str, Any]) -> User:
    user = _person(lookups, values, "qc_radiologist")
    if _text(values, "reader") and lookups.user(_text(values, "reader")) is user:
        raise _RowError("qc_radiologist", N_("a read cannot be re-read by its own reader"))
    if not user.has_role(Role.TRAINER):
        raise _RowError("qc_radiologist", N_("%(value)s is not a trainer (QC radiologists "
                                             "have the trainer role)"), value=user.username)
    return user


def _clinic(lookups: _Lookups, values: Mapping[str, Any], reader: User | None) -> Clinic | None:
    name = _text(values, "clinic")
    if name:
        clinic = lookups.clinic(name)
        if clinic is None:
            raise _RowError("clinic", N_("no clinic is named %(value)s"), value=name[:80])
        return clinic
    if reader is not None and reader.clinic is None:
        raise _RowError("clinic", N_("the reader has no clinic: name the clinic"))
    return reader.clinic if reader is not None else None


def _check_grade(values: Mapping[str, Any], scheme: Scheme | None,
                 reads: list[dict[str, Any] | None]) -> str:
    grade = _grade(values)
    primary, qc = reads
    if scheme is None or primary is None or qc is None:
        return grade
    changed = tb_positive(scheme, primary) != tb_positive(scheme, qc)
    if changed and grade not in ("2b", "3b"):
        raise _RowError("grade", N_("the sputum decisions differ, so the grade is 2b or 3b, "
                                    "not %(value)s"), value=grade)
    if not changed and grade in ("2b", "3b"):
        raise _RowError("grade", N_("grade %(value)s means the sputum decision changed, but "
                                    "both reads give the same decision"), value=grade)
    return grade


class _RowErrors(Exception):
    def __init__(self, errors: list[_RowError]) -> None:
        super().__init__(len(errors))
        self.errors = errors


def _check_row(number: int, values: Mapping[str, Any], lookups: _Lookups,
               default_scheme: str, secret: bytes) -> _Entry:
    """The row as an entry, or _RowErrors with every column's problem (each column is
    checked even when another is wrong, so one pass over the report fixes the row)."""
    errors: list[_RowError] = []

    def check(function: Any, *args: Any) -> Any:
        try:
            return function(*args)
        except _RowError as exc:
            errors.append(exc)
            return None

    reference = check(_reference, values)
    reader = check(_person, lookups, values, "reader")
    qc_radiologist = check(_qc_radiologist, lookups, values)
    clinic = check(_clinic, lookups, values, reader)
    read_date = check(_date, values, "read_date", True)
    qc_date = check(_date, values, "qc_date", False)
    if qc_date is not None and read_date is not None and qc_date < read_date:
        errors.append(_RowError("qc_date", N_("the QC date is before the read date")))
    scheme = check(lookups.scheme, _text(values, "scheme") or default_scheme)
    reads = [check(_read, scheme, read, values) if scheme else None for read in READS]
    grade = check(_check_grade, values, scheme, reads)
    if errors:
        raise _RowErrors(errors)
    return _Entry(number, study_pseudonym(reference, secret), reader, clinic, read_date,
                  qc_date, scheme, reads[0], reads[1], grade,  # type: ignore[arg-type]
                  qc_radiologist)


# ---- the import ---------------------------------------------------------------------------


def _schemes_used(rows: Sequence[Row], lookups: _Lookups, default_scheme: str) -> list[Scheme]:
    """The schemes the rows name (a row naming none: the default); unknown ones are left
    to the rows' own checks."""
    keys = dict.fromkeys(cell_text(v.get("scheme")) or default_scheme for _, v in rows)
    schemes = []
    for key in keys or [default_scheme]:
        try:
            schemes.append(lookups.scheme(key))
        except _RowError:
            continue
    return schemes


def _known_columns(rows: Sequence[Row], lookups: _Lookups, default_scheme: str) -> set[str]:
    known = {"study_reference", "reader", "clinic", "read_date", "qc_date", "qc_radiologist",
             "grade", "scheme"}
    for scheme in [lookups.scheme(default_scheme), *_schemes_used(rows, lookups,
                                                                  default_scheme)]:
        known |= {f"{read}_{item.key}" for read in READS for item in scheme.items
                  if item.type in ANSWER_TYPES}
    return known


def import_rows(rows: Sequence[Row], *, source: str, actor: User | None = None,
               default_scheme: str = DEFAULT_SCHEME, file_sha256: str | None = None,
               columns: Sequence[str] | None = None) -> ImportReport:
    """Check every row, then write all of them or none. ``columns``: the file's header
    (a file must have every required column; JSON objects may leave optional ones out)."""
    report = ImportReport(source)
    lookups = _Lookups()
    try:
        lookups.scheme(default_scheme)
    except _RowError as exc:
        report.problems.append(RowProblem(0, "scheme", exc.reason, exc.params))
        return report
    if columns is not None:
        needed = list(REQUIRED_COLUMNS)
        for scheme in _schemes_used(rows, lookups, default_scheme):
            needed += [c for c in required_answer_columns(scheme) if c not in needed]
        missing = [c for c in needed if c not in columns]
        for column in missing:
            report.problems.append(RowProblem(1, column, N_("the file has no %(column)s "
                                                            "column"), {"column": column}))
        known = _known_columns(rows, lookups, default_scheme)
        report.ignored_columns = [c for c in columns if c and c not in known]
        if missing:
            return report
    if not rows:
        report.problems.append(RowProblem(0, "", N_("there are no rows to import")))
        return report
    secret = install_secret()
    entries: dict[tuple[str, int], _Entry] = {}
    for number, values in rows:
        try:
            entry = _check_row(number, values, lookups, default_scheme, secret)
        except _RowErrors as exc:
            report.problems.extend(RowProblem(number, e.column, e.reason, e.params)
                                   for e in exc.errors)
            continue
        earlier = entries.get(entry.key)
        if earlier is None:
            entries[entry.key] = entry
        elif earlier.values() == entry.values():
            report.outcomes.append(RowOutcome(number, "duplicate", same_as_row=earlier.row))
        else:
            report.problems.append(RowProblem(
                number, "study_reference",
                N_("row %(other)s has the same study and reader with other reads or grade"),
                {"other": earlier.row}))
    if report.problems:
        report.outcomes = []
        return report
    _write(report, list(entries.values()), actor, file_sha256)
    return report


def _write(report: ImportReport, entries: list[_Entry], actor: User | None,
           file_sha256: str | None) -> None:
    batch = QcImportBatch(source=report.source, file_sha256=file_sha256, imported_by=actor)
    db.session.add(batch)
    existing = _existing({e.key for e in entries})
    outcomes: list[tuple[_Entry, str, QcRecord]] = []
    now = utcnow()
    for entry in entries:
        found = existing.get(entry.key)
        values = entry.values()
        if found is None:
            found = QcRecord(study_pseudonym=entry.pseudonym, reader_id=entry.reader.id,
                             batch=batch, created_at=now, updated_at=now, **values)
            db.session.add(found)
            outcomes.append((entry, "created", found))
        elif {k: getattr(found, k) for k in values} == values:
            outcomes.append((entry, "unchanged", found))
        else:
            for key, value in values.items():
                setattr(found, key, value)
            found.batch, found.updated_at = batch, now
            outcomes.append((entry, "updated", found))
    for status in ("created", "updated", "unchanged"):
        setattr(batch, status, sum(1 for _, s, _ in outcomes if s == status))
    try:
        db.session.flush()
    except IntegrityError:
        # Another import wrote one of these (study, reader) pairs since we looked.
        db.session.rollback()
        report.outcomes = []
        report.problems.append(RowProblem(0, "", N_(
            "another import added some of these records at the same moment; import the "
            "file again")))
        return
    record("qc.import", actor=actor, object_type="qc_import_batch", object_id=batch.id,
           source=report.source, created=batch.created, updated=batch.updated,
           unchanged=batch.unchanged)
    db.session.commit()
    report.batch_id = batch.id
    report.outcomes = sorted(
        [RowOutcome(e.row, s, r.id) for e, s, r in outcomes] + report.outcomes,
        key=lambda o: o.row)
    from app.qc.flags import evaluate  # flags build on this module

    evaluate({e.reader.id for e in entries})  # readers now outside a criterion are flagged


def _existing(keys: set[tuple[str, int]]) -> dict[tuple[str, int], QcRecord]:
    found: dict[tuple[str, int], QcRecord] = {}
    pseudonyms = sorted({p for p, _ in keys})
    for start in range(0, len(pseudonyms), 500):  # bounded IN lists
        for row in db.session.scalars(select(QcRecord).where(
                QcRecord.study_pseudonym.in_(pseudonyms[start:start + 500]))):
            if (row.study_pseudonym, row.reader_id) in keys:
                found[(row.study_pseudonym, row.reader_id)] = row
    return found


def import_file(data: bytes, filename: str, *, actor: User | None = None,
                default_scheme: str = DEFAULT_SCHEME) -> ImportReport:
    """A CSV or XLSX file in the template's layout (docs/qc-import.md)."""
    try:
        source, (columns, rows) = read_table(data, filename)
    except FileRefused as exc:
        report = ImportReport("xlsx" if filename.lower().endswith(".xlsx") else "csv")
        report.problems.append(RowProblem(0, "", exc.reason, exc.params))
        return report
    return import_rows(rows, source=source, actor=actor, default_scheme=default_scheme,
                       file_sha256=hashlib.sha256(data).hexdigest(), columns=columns)


def add_record(values: Mapping[str, Any], *, actor: User | None = None,
               default_scheme: str = DEFAULT_SCHEME, source: str = "manual") -> ImportReport:
    """One record entered by hand (a page's form, later): the same checks as a file row,
    reported as row 1. Keys are the template's columns."""
    return import_rows([(1, dict(values))], source=source, actor=actor,
                       default_scheme=default_scheme)
