"""Case library use cases other than import: browsing, editing, review, status."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from flask_babel import gettext
from sqlalchemy import Select, select
from sqlalchemy.orm import selectinload

from app.audit.services import record
from app.auth.models import User
from app.auth.roles import Role
from app.cases.access import exam_bank_refusals
from app.cases.models import (
    NOTE_FALLBACK_LANGUAGE,
    NOTE_LANGUAGES,
    Case,
    CaseFinding,
    CaseImage,
    CaseStatus,
    CaseTag,
    Difficulty,
)
from app.cases.reads import reference_for
from app.cases.storage import (
    DICOM_FILE,
    LEGACY_FILES,
    derivative_files,
    derivative_sizes,
    image_store,
)
from app.db_types import utcnow
from app.extensions import db
from app.user_errors import UserError


class CaseError(UserError):
    """A refused change to a case; the message is for the trainer."""


# Who curates the library: the library pages and the status commands.
LIBRARY_ROLES = (Role.TRAINER, Role.ADMIN)

# Allowed status changes: draft -> in review -> published -> retired, and back to draft
# for corrections before publication.
TRANSITIONS: dict[CaseStatus, tuple[CaseStatus, ...]] = {
    CaseStatus.DRAFT: (CaseStatus.IN_REVIEW,),
    CaseStatus.IN_REVIEW: (CaseStatus.PUBLISHED, CaseStatus.DRAFT),
    CaseStatus.PUBLISHED: (CaseStatus.RETIRED,),
    CaseStatus.RETIRED: (CaseStatus.DRAFT,),
}


@dataclass(frozen=True)
class LibraryFilter:
    status: str | None = None
    finding: str | None = None
    classification: str | None = None
    tb: bool | None = None
    difficulty: str | None = None
    tag: str | None = None
    source: str | None = None
    review_needed: bool = False


def library_query(flt: LibraryFilter) -> Select[tuple[Case]]:
    # Images and tags come in two extra queries per page, not one per case.
    query = select(Case).options(selectinload(Case.images)).order_by(Case.id.desc())
    if flt.finding:
        # IN over the (finding, case id) index: both databases read a finding's cases from
        # it, where EXISTS made SQLite probe it once for every case in the library.
        query = query.where(Case.id.in_(
            select(CaseFinding.case_id).where(CaseFinding.finding == flt.finding)))
    if flt.classification:
        query = query.where(Case.reference_classification == flt.classification)
    if flt.tb is not None:
        query = query.where(Case.reference_tb_positive.is_(flt.tb))
    if flt.status:
        query = query.where(Case.status == flt.status)
    if flt.difficulty:
        query = query.where(Case.difficulty == flt.difficulty)
    if flt.source:
        query = query.where(Case.source == flt.source)
    if flt.tag:
        query = query.where(Case.id.in_(
            select(CaseTag.case_id).where(CaseTag.tag == flt.tag.strip().lower())))
    if flt.review_needed:
        query = query.where(Case.pixel_review_needed, Case.pixel_reviewed_at.is_(None))
    return query


def parse_tags(text: str) -> list[str]:
    tags = sorted({t.strip().lower() for t in text.split(",") if t.strip()})
    for tag in tags:
        if len(tag) > 64:
            raise CaseError(gettext("a tag has at most 64 characters"))
    return tags


def update_details(
    case: Case,
    *,
    difficulty: str | None,
    tags: Iterable[str],
    teaching_notes: str | Mapping[str, str],
    source: str,
    licence: str,
    exam_bank: bool,
    actor: User,
) -> Case:
    if difficulty and difficulty not in {d.value for d in Difficulty}:
        raise CaseError(gettext("unknown difficulty %(value)s", value=repr(difficulty)))
    if not source.strip():
        raise CaseError(gettext("a case needs a source"))
    if exam_bank and not case.exam_bank:
        _check_exam_bank(case)
    new_tags = sorted(set(tags))
    keep = [link for link in case.tag_links if link.tag in new_tags]
    have = {link.tag for link in keep}
    case.tag_links = keep + [CaseTag(tag=t) for t in new_tags if t not in have]
    case.difficulty = difficulty or None
    # A plain text is the English note (the other languages' notes stay as they are).
    notes = ({NOTE_FALLBACK_LANGUAGE: teaching_notes} if isinstance(teaching_notes, str)
             else teaching_notes)
    unknown = sorted(set(notes) - set(NOTE_LANGUAGES))
    if unknown:
        raise CaseError(f"notes are written in {', '.join(NOTE_LANGUAGES)}, "
                        f"not {unknown[0][:20]!r}")
    for language, text in notes.items():
        case.set_note(language, text)
    case.source = source.strip()[:200]
    case.licence = licence.strip()
    case.exam_bank = exam_bank
    record("case.update", actor=actor, object_type="case", object_id=case.id)
    db.session.commit()
    return case


def put_in_exam_bank(cases: Iterable[Case], *, actor: User | None) -> None:
    """Keep ``cases`` for exams only; all or none (a refused one leaves every case as it
    was)."""
    chosen = [case for case in cases if not case.exam_bank]
    for case in chosen:
        _check_exam_bank(case)
    for case in chosen:
        case.exam_bank = True
        record("case.exam_bank", actor=actor, object_type="case", object_id=case.id)
    db.session.commit()


def _check_exam_bank(case: Case) -> None:
    # Both directions hold: an exam-bank case never goes into a practice set (exercises
    # refuse it), and a case already in one never joins the bank. The row lock makes a
    # practice set being built from this case at the same moment wait for the answer.
    db.session.execute(select(Case.id).where(Case.id == case.id).with_for_update())
    refusals = exam_bank_refusals(case)
    if refusals:
        raise CaseError(gettext("case %(number)s cannot join the exam bank: %(reasons)s",
                                number=case.id, reasons="; ".join(refusals)), 409)


def find_case(ref: str) -> Case:
    """A case by its id as typed on the command line."""
    text = ref.strip()
    case = db.session.get(Case, int(text)) if text.isdigit() else None
    if case is None:
        raise CaseError(gettext("there is no case %(ref)s",
                                ref=text if text.isdigit() else repr(text)), 404)
    return case


def parse_status(text: str) -> CaseStatus:
    """A status by its value ("in_review"); its label and dashes ("in review", "in-review")
    are accepted too, as people type them."""
    wanted = text.strip().lower().replace("-", "_").replace(" ", "_")
    try:
        return CaseStatus(wanted)
    except ValueError:
        raise CaseError(gettext("unknown case status %(value)s: use one of %(statuses)s",
                                value=repr(text),
                                statuses=", ".join(s.value for s in CaseStatus))) from None


def change_status(
    case: Case, new: CaseStatus, *, actor: User | None, via: str | None = None
) -> Case:
    """The one way a case changes status (page buttons, command line, library loader):
    the same transitions and publication checks for all, audited."""
    current = case.status_enum
    if new is current:
        raise CaseError(gettext("case %(number)s is already %(status)s", number=case.id,
                                status=current.label), 409)
    allowed = TRANSITIONS[current]
    if new not in allowed:
        raise CaseError(gettext("a %(status)s case cannot become %(new)s (it can become: "
                                "%(allowed)s)", status=current.label, new=new.label,
                                allowed=", ".join(s.label for s in allowed)), 409)
    if new is CaseStatus.PUBLISHED:
        _check_publishable(case)
        case.published_at = utcnow()
    case.status = new.value
    detail = {"via": via} if via else {}
    record(
        "case.status",
        actor=actor,
        object_type="case",
        object_id=case.id,
        before=current.value,
        after=new.value,
        **detail,
    )
    db.session.commit()
    return case


def _check_publishable(case: Case) -> None:
    if not case.images:
        raise CaseError(gettext("a case needs at least one image before it is published"))
    reference = reference_for(case)
    if reference.readers == 0:
        raise CaseError(gettext("a case needs a reference read before it is published"))
    if reference.open_ties:
        raise CaseError(gettext("the expert reads disagree on %(items)s; adjudicate before "
                                "publishing", items=", ".join(reference.open_ties)))
    if case.pixel_review_needed and case.pixel_reviewed_at is None:
        raise CaseError(gettext(
            "the images may carry burned-in text: complete the pixel review before publishing"))


def redact_image(image: CaseImage, rects: list[tuple[int, int, int, int]], *, actor: User) -> None:
    """Burn redaction rectangles into the stored pixels and re-make the derivatives."""
    # Imported here: the library's other pages (and the application's start-up) need none
    # of the imaging modules.
    import pydicom

    from app.cases import pixels

    if not rects:
        raise CaseError(gettext("draw at least one rectangle to redact"))
    store = image_store()
    ds = pydicom.dcmread(io.BytesIO(store.read(image.storage_key, DICOM_FILE)))
    stored = pixels.stored_pixels(ds)
    try:
        redacted = pixels.redact(stored, rects, pixels.background_value(ds, stored))
    except ValueError as exc:
        raise CaseError(str(exc)) from None
    # Stored uncompressed from now on: the original encoding may be lossy or exotic, and the
    # redacted pixels must be exactly what was reviewed. The (replacement) UIDs stay.
    ds.set_pixel_data(
        redacted,
        str(ds.PhotometricInterpretation),
        int(ds.BitsStored),
        generate_instance_uid=False,
    )
    derivatives = pixels.make_derivatives(ds, redacted)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    store.replace(
        image.storage_key, {DICOM_FILE: out.getvalue(), **derivative_files(derivatives)}
    )
    # An image stored before keeps no unredacted 16-bit PNG or HTJ2K beside the new files.
    for name in LEGACY_FILES:
        store.remove(image.storage_key, name)
    image.version += 1
    image.display_params = derivatives.params.to_json()
    sizes = {**(image.sizes or {}), "dicom": len(out.getvalue()), **derivative_sizes(derivatives)}
    sizes.pop("full", None)
    image.sizes = sizes
    record(
        "case.redact",
        actor=actor,
        object_type="case",
        object_id=image.case_id,
        image=image.id,
        rectangles=[list(r) for r in rects],
    )
    db.session.commit()


def complete_pixel_review(case: Case, *, actor: User | None) -> Case:
    case.pixel_reviewed_at = utcnow()
    case.pixel_reviewed_by = actor
    record(
        "case.pixel_review",
        actor=actor,
        object_type="case",
        object_id=case.id,
        redacted_images=[img.id for img in case.images if img.version > 1],
    )
    db.session.commit()
    return case
