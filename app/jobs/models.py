"""Jobs as people see them. Huey carries the work; these rows are what the person who
started a job, and the administrators, see: its state, progress and per-file results."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from flask_babel import gettext
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.auth.models import User
from app.db_types import UTCDateTime, utcnow
from app.extensions import db
from app.i18n import N_


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobKind(StrEnum):
    CASE_IMPORT = "case_import"
    PACS_IMPORT = "pacs_import"
    RESCORING = "rescoring"
    LIBRARY_EXPORT = "library_export"
    REMINDERS = "reminders"
    DERIVATIVES_REBUILD = "derivatives_rebuild"

    @property
    def label(self) -> str:
        return gettext(_KIND_LABELS[self.value])


_KIND_LABELS = {"case_import": N_("Case import"), "pacs_import": N_("PACS import"),
                "rescoring": N_("Re-scoring"), "library_export": N_("Library export"),
                "reminders": N_("Expiry reminders"),
                "derivatives_rebuild": N_("Image derivatives rebuild")}


FINISHED = (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)


def _values(enum: type[StrEnum]) -> str:
    return ", ".join(f"'{member.value}'" for member in enum)


class Job(db.Model):  # type: ignore[name-defined]
    __tablename__ = "job"
    __table_args__ = (
        CheckConstraint(f"status IN ({_values(JobStatus)})", name="status"),
        CheckConstraint(f"kind IN ({_values(JobKind)})", name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.QUEUED.value, index=True)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Refreshed while a worker runs the job: a running job whose heartbeat stopped lost its
    # worker (killed, restarted) and is taken up again from the files not yet done.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int | None] = mapped_column(Integer)
    # How often a worker took the job up; more than one means it was resumed.
    runs: Mapped[int] = mapped_column(Integer, default=0)
    # What to do, encrypted (app.field_encryption): the file names and paths it holds may
    # carry patient names, and a database copy must not reveal them.
    params_encrypted: Mapped[str] = mapped_column(Text)
    # One sentence for the person who started the job when it failed or was cancelled.
    error: Mapped[str | None] = mapped_column(Text)
    # What a job without per-file results produced (re-scoring's changed verdicts, the
    # reminders sent, the export's file), as the job's kind reports it.
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    created_by: Mapped[User | None] = relationship(User)
    items: Mapped[list[JobItem]] = relationship(
        back_populates="job", order_by="JobItem.position", cascade="all, delete-orphan",
        passive_deletes=True)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def kind_label(self) -> str:
        return JobKind(self.kind).label


class JobItem(db.Model):  # type: ignore[name-defined]
    """One file's result, written in the same transaction that stores the file's image, so
    a file is recorded exactly when it is in the library (the unique position makes a
    second import of the same file impossible)."""

    __tablename__ = "job_item"
    __table_args__ = (UniqueConstraint("job_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    # Encrypted for the same reason as Job.params_encrypted.
    name_encrypted: Mapped[str] = mapped_column(Text)
    case_id: Mapped[int | None] = mapped_column(
        ForeignKey("teaching_case.id", ondelete="SET NULL"))
    image_id: Mapped[int | None] = mapped_column(
        ForeignKey("case_image.id", ondelete="SET NULL"))
    reason: Mapped[str | None] = mapped_column(Text)
    pixel_review_needed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    job: Mapped[Job] = relationship(back_populates="items")


class JobVerdictChange(db.Model):  # type: ignore[name-defined]
    """An attempt whose pass/fail verdict a re-scoring job changed, written in the
    transaction that re-scores the attempt: a re-scoring taken up after its worker died
    still knows (and announces) the changes the lost run made. A row per change, not a
    list in Job.summary: rewriting a growing list at every attempt would cost the square
    of the changes."""

    __tablename__ = "job_verdict_change"
    __table_args__ = (UniqueConstraint("job_id", "attempt_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempt.id", ondelete="CASCADE"),
                                            index=True)
    # The verdict before the job's first re-scoring of the attempt, and after its last.
    passed_before: Mapped[bool | None] = mapped_column(Boolean)
    passed_after: Mapped[bool | None] = mapped_column(Boolean)
