"""The case library: cases, their images and tags."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from flask_babel import gettext
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.auth.models import User
from app.db_types import UTCDateTime, utcnow
from app.extensions import db
from app.i18n import N_


class CaseStatus(StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    PUBLISHED = "published"
    RETIRED = "retired"

    @property
    def label(self) -> str:
        """In the language of the request, or of the command line's environment."""
        return gettext(_STATUS_LABELS[self.value])


_STATUS_LABELS = {"draft": N_("draft"), "in_review": N_("in review"),
                  "published": N_("published"), "retired": N_("retired")}


class Difficulty(StrEnum):
    EASY = "easy"
    MODERATE = "moderate"
    HARD = "hard"


class ImageView(StrEnum):
    PA = "PA"
    AP = "AP"
    LATERAL = "LATERAL"


def _values(enum: type[StrEnum]) -> str:
    return ", ".join(f"'{member.value}'" for member in enum)


class Case(db.Model):
    """A teaching case: one or more anonymized images and (later) its reference read.

    ``title`` is neutral ("Case 42"): nothing a trainee can see may hint at the diagnosis.
    """

    __tablename__ = "teaching_case"
    __table_args__ = (
        CheckConstraint(f"status IN ({_values(CaseStatus)})", name="known_status"),
        CheckConstraint(
            f"difficulty IS NULL OR difficulty IN ({_values(Difficulty)})",
            name="known_difficulty",
        ),
        CheckConstraint("sex IS NULL OR sex IN ('M', 'F', 'O')", name="known_sex"),
        # The library lists cases newest first, filtered by one of these: (filter, id)
        # lets each page be read backwards from the index and each count from it alone.
        Index("ix_teaching_case_status_id", "status", "id"),
        Index("ix_teaching_case_reference_classification_id", "reference_classification",
              "id"),
        Index("ix_teaching_case_reference_tb_positive_id", "reference_tb_positive", "id"),
        Index("ix_teaching_case_difficulty_id", "difficulty", "id"),
        Index("ix_teaching_case_source_id", "source", "id"),
        # Cases still awaiting their pixel review: a few among many. Each database's
        # condition is spelled as its library query is (SQLite compares booleans to 1).
        Index("ix_teaching_case_pixel_review_pending", "id",
              sqlite_where=text("pixel_review_needed = 1 AND pixel_reviewed_at IS NULL"),
              postgresql_where=text("pixel_review_needed AND pixel_reviewed_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default=CaseStatus.DRAFT.value)
    # Exam-bank cases are never shown to trainees outside an exam.
    exam_bank: Mapped[bool] = mapped_column(Boolean, default=False)
    age_band: Mapped[str | None] = mapped_column(String(8))
    sex: Mapped[str | None] = mapped_column(String(1))
    source: Mapped[str] = mapped_column(String(200), default="upload")
    licence: Mapped[str] = mapped_column(Text, default="")
    difficulty: Mapped[str | None] = mapped_column(String(16))
    pixel_review_needed: Mapped[bool] = mapped_column(Boolean, default=False)
    pixel_reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    pixel_reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    # A review done on another installation, as its case file names the reviewer ("Full
    # Name (username)"): that person has no account here to point at.
    pixel_reviewed_by_name: Mapped[str | None] = mapped_column(String(200))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The reference read summarised for filtering the library (kept in step by
    # reads.refresh_summary whenever a read changes): the classification answer, the sputum
    # decision, and the findings in finding_links.
    reference_classification: Mapped[str | None] = mapped_column(String(64))
    reference_tb_positive: Mapped[bool | None] = mapped_column(Boolean)

    images: Mapped[list[CaseImage]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="CaseImage.id"
    )
    tag_links: Mapped[list[CaseTag]] = relationship(
        back_populates="case", cascade="all, delete-orphan", lazy="selectin"
    )
    finding_links: Mapped[list[CaseFinding]] = relationship(
        back_populates="case", cascade="all, delete-orphan"
    )
    reads: Mapped[list[ReferenceRead]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="ReferenceRead.id"
    )
    # Teaching notes, one per language (case_teaching_note): loaded only where shown.
    notes: Mapped[list[CaseTeachingNote]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="CaseTeachingNote.language"
    )
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
    pixel_reviewed_by: Mapped[User | None] = relationship(foreign_keys=[pixel_reviewed_by_id])

    @property
    def notes_by_language(self) -> dict[str, str]:
        return {note.language: note.text for note in self.notes}

    def note_for(self, language: str | None) -> CaseTeachingNote | None:
        """The note a reader of ``language`` sees: theirs, else the English one, else any."""
        by_language = {note.language: note for note in self.notes}
        return (by_language.get(language or "") or by_language.get(NOTE_FALLBACK_LANGUAGE)
                or next(iter(by_language.values()), None))

    def set_note(self, language: str, text: str | None) -> None:
        """Write (or, when empty, remove) the note in ``language``."""
        text = (text or "").strip()
        existing = next((note for note in self.notes if note.language == language), None)
        if not text:
            if existing is not None:
                self.notes.remove(existing)
        elif existing is not None:
            existing.text = text
        else:
            self.notes.append(CaseTeachingNote(language=language, text=text))

    @property
    def teaching_notes(self) -> str:
        """The English note (else any): where one text stands for the case's notes."""
        note = self.note_for(NOTE_FALLBACK_LANGUAGE)
        return note.text if note is not None else ""

    @teaching_notes.setter
    def teaching_notes(self, text: str | None) -> None:
        # A note written without saying its language (older case files, imports) is English.
        self.set_note(NOTE_FALLBACK_LANGUAGE, text)

    @property
    def title(self) -> str:
        # In the reader's language on a page; English outside a request (logs, the API).
        return str(gettext("Case %(number)s", number=self.id))

    @property
    def tags(self) -> list[str]:
        return sorted(link.tag for link in self.tag_links)

    @property
    def status_enum(self) -> CaseStatus:
        return CaseStatus(self.status)

    @property
    def current_reads(self) -> list[ReferenceRead]:
        return [r for r in self.reads if r.current]


# The language a note without one is taken to be in, and the one shown when the reader's
# own is missing (the organisation's first working language).
NOTE_FALLBACK_LANGUAGE = "en"
NOTE_LANGUAGES = ("en", "fr", "es")  # app.i18n.LANGUAGES (a test keeps them in step)
MAX_NOTE = 20_000


class CaseTeachingNote(db.Model):  # type: ignore[name-defined]  # as every model: no stubs
    """A case's teaching note in one language."""

    __tablename__ = "case_teaching_note"
    __table_args__ = (
        CheckConstraint("language IN ('en', 'fr', 'es')", name="known_language"),
    )

    case_id: Mapped[int] = mapped_column(
        ForeignKey("teaching_case.id", ondelete="CASCADE"), primary_key=True
    )
    language: Mapped[str] = mapped_column(String(8), primary_key=True)
    text: Mapped[str] = mapped_column(Text)

    case: Mapped[Case] = relationship(back_populates="notes")


class CaseTag(db.Model):
    __tablename__ = "case_tag"
    # A tag's cases in id order: the library's tag filter and its count read this index.
    __table_args__ = (Index("ix_case_tag_tag_case_id", "tag", "case_id"),)

    case_id: Mapped[int] = mapped_column(
        ForeignKey("teaching_case.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)

    case: Mapped[Case] = relationship(back_populates="tag_links")


class CaseFinding(db.Model):
    """A finding present in the case's reference read (for filtering the library)."""

    __tablename__ = "case_finding"
    # A finding's cases in id order: the library's finding filter and its count.
    __table_args__ = (Index("ix_case_finding_finding_case_id", "finding", "case_id"),)

    case_id: Mapped[int] = mapped_column(
        ForeignKey("teaching_case.id", ondelete="CASCADE"), primary_key=True
    )
    finding: Mapped[str] = mapped_column(String(64), primary_key=True)

    case: Mapped[Case] = relationship(back_populates="finding_links")


class CaseImage(db.Model):
    """One de-identified image and its stored derivatives.

    The derivatives live in image storage under ``storage_key``; the database keeps what the
    viewer and the library need without reading them.
    """

    __tablename__ = "case_image"
    __table_args__ = (CheckConstraint(f"view IN ({_values(ImageView)})", name="known_view"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(
        ForeignKey("teaching_case.id", ondelete="CASCADE"), index=True
    )
    view: Mapped[str] = mapped_column(String(8), default=ImageView.PA.value)
    is_prior: Mapped[bool] = mapped_column(Boolean, default=False)
    # sha256 of the stored pixel values as received: the duplicate-detection key.
    pixel_hash: Mapped[str] = mapped_column(String(64), unique=True)
    storage_key: Mapped[str] = mapped_column(String(64), unique=True)
    # Changes whenever the stored pixels change (redaction); part of every image URL and ETag.
    version: Mapped[int] = mapped_column(Integer, default=1)
    modality: Mapped[str] = mapped_column(String(4))
    transfer_syntax: Mapped[str] = mapped_column(String(80))
    rows: Mapped[int] = mapped_column(Integer)
    columns: Mapped[int] = mapped_column(Integer)
    bits_stored: Mapped[int] = mapped_column(Integer)
    # Millimetres between the centres of adjacent rows / columns: ImagerPixelSpacing (at the
    # detector), else PixelSpacing; None when the file has neither (or a zero one). Scoring
    # turns its 10 mm point tolerance into pixels with it.
    row_spacing_mm: Mapped[float | None] = mapped_column(Float)
    column_spacing_mm: Mapped[float | None] = mapped_column(Float)
    # De-identified identifiers only (replacement UIDs and patient pseudonym).
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    sop_uid: Mapped[str] = mapped_column(String(64))
    patient_pseudonym: Mapped[str | None] = mapped_column(String(64), index=True)
    display_params: Mapped[dict[str, Any]] = mapped_column(JSON)
    deid_report: Mapped[dict[str, Any]] = mapped_column(JSON)
    sizes: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    case: Mapped[Case] = relationship(back_populates="images")

    @property
    def etag(self) -> str:
        return f"{self.pixel_hash[:16]}-{self.version}"


class ReadKind(StrEnum):
    EXPERT = "expert"  # one expert's read; the reference is their consensus
    ADJUDICATION = "adjudication"  # a trainer's decision on the items the experts tied on
    # A read proposed for the reference (a promoted QC study's primary and QC reads): shown
    # on the case with its author, never part of the consensus until a trainer accepts it
    # as their own expert read.
    CANDIDATE = "candidate"


class ReferenceRead(db.Model):
    """One version of one expert's read of a case, in a reporting scheme. A case has its
    reference reads in one diagnostic scheme and, beside them, may have image-quality ones.

    Editing never overwrites: it adds a new version and marks the old one superseded, so the
    history of every reference read is kept.
    """

    __tablename__ = "reference_read"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_values(ReadKind)})", name="known_kind"),
        # Versions count per scheme: a case may have a diagnostic and an image-quality read.
        UniqueConstraint("case_id", "author_id", "kind", "scheme_key", "version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(
        ForeignKey("teaching_case.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    kind: Mapped[str] = mapped_column(String(16), default=ReadKind.EXPERT.value)
    scheme_key: Mapped[str] = mapped_column(String(64))
    scheme_version: Mapped[int] = mapped_column(Integer)
    answers: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Lesion marks per image: [{"image_id", "finding", "shape", "geometry", ...}]
    marks: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    current: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    case: Mapped[Case] = relationship(back_populates="reads")
    author: Mapped[User | None] = relationship()
