"""QC records: live reads re-read by the QC centre, and the imports that brought them.

No patient identifier is stored: the study reference (accession number, study UID ...) is
replaced on entry by a keyed hash under the install's DEID_SECRET (``app.qc.pseudonyms``),
and free-text comments are never kept. A record is one reader's read of one study, so
(study pseudonym, reader) is unique: importing the same study and reader again updates
that record instead of adding a second one.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db_types import UTCDateTime, utcnow
from app.extensions import db

if TYPE_CHECKING:
    from app.auth.models import Clinic, User
    from app.cases.models import Case
    from app.certification.models import Programme
    from app.jobs.models import Job
    from app.quizzes.models import Exercise

#: Where a batch came from.
BATCH_SOURCES = ("csv", "xlsx", "api", "manual")
#: The reporting scheme of a QC record whose import names none.
DEFAULT_SCHEME = "tb_screening"
GRADE_VALUES = ("1", "2a", "2b", "3a", "3b")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class QcImportBatch(db.Model):  # type: ignore[name-defined]
    """One import (a file, an API call, a record entered by hand). The file's name is not
    kept (names of QC exports often carry a patient's or a clinic's details); its SHA-256
    says whether the same file came twice."""

    __tablename__ = "qc_import_batch"
    __table_args__ = (CheckConstraint(_in("source", BATCH_SOURCES), name="source_known"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(8))
    file_sha256: Mapped[str | None] = mapped_column(String(64))
    imported_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)

    imported_by: Mapped[User | None] = relationship()


class QcRecord(db.Model):  # type: ignore[name-defined]
    __tablename__ = "qc_record"
    __table_args__ = (
        UniqueConstraint("study_pseudonym", "reader_id", name="uq_qc_record_study_reader"),
        CheckConstraint(_in("grade", GRADE_VALUES), name="grade_known"),
        Index("ix_qc_record_reader_read_date", "reader_id", "read_date"),
        Index("ix_qc_record_clinic_read_date", "clinic_id", "read_date"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # "QC-" + 32 hex digits of HMAC-SHA256(DEID_SECRET, study reference): the same
    # reference always gives the same pseudonym on this install, and nothing gives it back.
    study_pseudonym: Mapped[str] = mapped_column(String(40))
    reader_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    # The reader's clinic when the study was read (readers move; the record stays put).
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"))
    read_date: Mapped[date] = mapped_column(Date)
    qc_date: Mapped[date | None] = mapped_column(Date)
    scheme_key: Mapped[str] = mapped_column(String(64))
    scheme_version: Mapped[int] = mapped_column(Integer)
    # The scheme's answers keyed by item (validated against the scheme, free text left out).
    primary_read: Mapped[dict[str, Any]] = mapped_column(JSON)
    qc_read: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The sputum decisions the answers imply, kept so measures and dashboards need not
    # parse every record's JSON with its scheme.
    primary_tb: Mapped[bool | None] = mapped_column(Boolean)
    qc_tb: Mapped[bool | None] = mapped_column(Boolean)
    grade: Mapped[str] = mapped_column(String(2))
    qc_radiologist_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("qc_import_batch.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The teaching case made from the study when it was promoted to the library
    # (app.qc.promote), and the PACS import that makes it while it runs.
    case_id: Mapped[int | None] = mapped_column(
        ForeignKey("teaching_case.id", ondelete="SET NULL"), index=True)
    promote_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("job.id", ondelete="SET NULL"), index=True)

    reader: Mapped[User] = relationship(foreign_keys=[reader_id])
    qc_radiologist: Mapped[User] = relationship(foreign_keys=[qc_radiologist_id])
    clinic: Mapped[Clinic] = relationship()
    batch: Mapped[QcImportBatch] = relationship()
    case: Mapped[Case | None] = relationship()
    promote_job: Mapped[Job | None] = relationship()


FLAG_STATES = ("open", "decided")
#: What a lead may decide on a flag.
FLAG_DECISIONS = ("assign_practice", "keep_watching", "dismiss")


class QcFlag(db.Model):  # type: ignore[name-defined]
    """A reader outside a programme's ongoing QC criterion, flagged to the programme's
    leads. Nothing is revoked: a lead decides (assign the suggested practice set, keep
    watching, or dismiss), always with a reason. One open flag per reader and programme."""

    __tablename__ = "qc_flag"
    __table_args__ = (
        CheckConstraint(_in("state", FLAG_STATES), name="known_state"),
        CheckConstraint("decision IS NULL OR " + _in("decision", FLAG_DECISIONS),
                        name="known_decision"),
        Index("uq_qc_flag_open", "reader_id", "programme_id", unique=True,
              sqlite_where=text("state = 'open'"), postgresql_where=text("state = 'open'")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reader_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    programme_id: Mapped[int] = mapped_column(
        ForeignKey("programme.id", ondelete="CASCADE"), index=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The criterion's figures when the flag was opened (criteria.CriterionResult.to_json).
    figures: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The reader's QC error profile then (criteria.profile_to_json), most frequent first.
    error_profile: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(8), default="open")
    decision: Mapped[str | None] = mapped_column(String(16))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    decided_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The practice set assigned to the reader (decision "assign_practice").
    exercise_id: Mapped[int | None] = mapped_column(
        ForeignKey("exercise.id", ondelete="SET NULL"))

    reader: Mapped[User] = relationship(foreign_keys=[reader_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])
    programme: Mapped[Programme] = relationship()
    exercise: Mapped[Exercise | None] = relationship()
