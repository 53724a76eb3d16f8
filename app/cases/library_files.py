"""The case library as text: one small JSON file per case, for the demo library in
``case_library/`` and for exchanging curated cases between installations.

A case file holds everything but the pixels: details, teaching notes, source, licence, the
reference read (marks point at images by position) and, per image, where its pixels come
from and the sha256 of its stored values. Pixels come from a deterministic synthetic phantom,
from the ``pydicom-data`` package, or from a DICOM file next to the case files (exports).
Loading goes through the normal ingest, so de-identification and checks apply, and it is
idempotent: images already in the library (same pixel hash) are not imported again.

The pixel review travels with the case: a case file names who reviewed the pixels and when
(``pixel_review``). A case whose images need a review and whose file records none is never
published by loading it: it is held in review for a person here. A review recorded in the
file counts (the reviewer, who has no account here, is kept by name): the file is what a
trainer chose to import, and it names who vouched for the pixels.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import select

from app.audit.services import record
from app.cases.ingest import FileResult, ImportOptions, Source, import_files
from app.cases.models import (
    MAX_NOTE,
    NOTE_FALLBACK_LANGUAGE,
    NOTE_LANGUAGES,
    Case,
    CaseImage,
    CaseStatus,
    CaseTag,
)
from app.cases.reads import reference_for, save_read
from app.cases.sandbox import Rejected, run_limited
from app.cases.services import (
    CaseError,
    change_status,
    parse_tags,
    put_in_exam_bank,
)
from app.cases.storage import DICOM_FILE, image_store
from app.extensions import db
from app.schemes.errors import SchemeError
from app.schemes.registry import get_scheme, is_image_quality
from app.sentences import N_, say

FORMAT = "cxr-academy-case/1"
CASES_DIR = "cases"
IMAGES_DIR = "images"


class LibraryError(ValueError):
    """A case file that cannot be loaded; the message names the file and the problem."""


@dataclass
class LoadResult:
    case_file: str
    status: str  # "loaded", "present" (already in the library) or "refused"
    case_id: int | None = None
    reason: str | None = None  # why refused, or why a loaded case was not published


@dataclass(frozen=True)
class PixelReview:
    """A pixel review as a case file records it: the reviewer by name and when."""

    reviewed_by: str
    reviewed_at: datetime


# ---- image origins -----------------------------------------------------------------------


def phantom_dicom(seed: int, findings: tuple[str, ...], size: int, fault: str | None = None,
                  burned_in: tuple[str, ...] = ()) -> bytes:
    """Runs in the sandbox: a synthetic radiograph as a DX file (deterministic pixels),
    with a technique ``fault`` when given and the text lines ``burned_in`` printed into its
    pixels (the file then says so, and the library holds it for a person's pixel review)."""
    from app.cases.dicom_build import dataset_bytes, dx_dataset
    from app.cases.phantom import phantom_pixels

    phantom, pixels = phantom_pixels(seed, findings, size, fault, burned_in)
    ds = dx_dataset(pixels, bits_stored=12, pixel_spacing_mm=phantom.pixel_spacing_mm,
                    sex=phantom.sex, age_years=phantom.age_years, synthetic=True,
                    burned_in_annotation="YES" if burned_in else "NO")
    return dataset_bytes(ds)


def _image_bytes(origin: dict[str, Any], folder: Path) -> bytes:
    cfg = current_app.config
    if "phantom" in origin:
        spec = origin["phantom"]
        return run_limited(
            phantom_dicom,
            (int(spec["seed"]), tuple(spec.get("findings", ())), int(spec.get("size", 1024)),
             spec.get("fault"), tuple(str(line) for line in spec.get("burned_in", ()))),
            timeout=float(cfg["INGEST_TIME_LIMIT"]), memory_bytes=int(cfg["INGEST_MEMORY_LIMIT"]),
        )
    if "pydicom_data" in origin:
        from pydicom.data import get_testdata_file

        sample = get_testdata_file(str(origin["pydicom_data"]), download=False)
        if not isinstance(sample, str):
            raise Rejected(say(N_("%(file)s is not available (install pydicom-data)"),
                               file=origin["pydicom_data"]))
        return Path(sample).read_bytes()
    if "file" in origin:
        path = (folder / str(origin["file"])).resolve()
        if folder.resolve() not in path.parents:
            raise Rejected(N_("an image path leaves the library folder"))
        if not path.is_file():
            raise Rejected(say(N_("missing image file %(file)s"), file=origin["file"]))
        data = path.read_bytes()
        if origin.get("sha256") and hashlib.sha256(data).hexdigest() != origin["sha256"]:
            raise Rejected(say(N_("%(file)s does not match its sha256"), file=origin["file"]))
        return data
    raise Rejected(N_("an image has no known origin (phantom, pydicom_data or file)"))


# ---- loading -----------------------------------------------------------------------------


def case_files(folder: Path) -> list[Path]:
    cases = folder / CASES_DIR
    if not cases.is_dir():
        raise LibraryError(f"{folder} has no {CASES_DIR}/ folder of case files")
    return sorted(cases.glob("*.json"))


def load_library(folder: Path, *, publish: bool = True) -> list[LoadResult]:
    return [load_case_file(path, folder, publish=publish) for path in case_files(folder)]


def load_case_file(path: Path, folder: Path, *, publish: bool) -> LoadResult:
    name = path.name
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        _check_spec(spec)
    except (OSError, ValueError) as exc:
        return LoadResult(name, "refused", reason=str(exc))
    # A redacted image is also known here by the pixels it was first imported with.
    wanted = [h for img in spec["images"]
              for h in (img["pixel_sha256"], img.get("received_pixel_sha256")) if h]
    existing = db.session.scalars(
        select(CaseImage).where(CaseImage.pixel_hash.in_(wanted))
    ).all()
    if existing:
        case = existing[0].case
        try:
            _add_quality_reference(case, spec)
        except (LibraryError, SchemeError) as exc:
            db.session.rollback()
            return LoadResult(name, "refused", case_id=case.id, reason=str(exc))
        return _present(name, case, bool(spec.get("exam_bank", False)))

    options = ImportOptions(source=spec["source"], licence=spec["licence"],
                            exam_bank=bool(spec.get("exam_bank", False)), one_case=True,
                            keep_own_pseudonyms=True)
    sources = [Source(f"{name} image {n + 1}", _reader(image["origin"], folder))
               for n, image in enumerate(spec["images"])]
    results: list[FileResult] = import_files(sources, actor=None, options=options).results
    refused = [r for r in results if r.status != "imported"]
    case_ids = {r.case_id for r in results if r.case_id}
    if refused or len(case_ids) != 1:
        _discard({r.case_id for r in results if r.status == "imported"})
        reason = refused[0].reason if refused else "its images did not form one case"
        return LoadResult(name, "refused", reason=reason)
    case = db.session.get_one(Case, case_ids.pop())
    try:
        _apply_spec(case, spec, [r.image_id for r in results])
    except (LibraryError, SchemeError) as exc:
        db.session.rollback()
        _discard({case.id})
        return LoadResult(name, "refused", reason=str(exc))
    review = _recorded_review(spec)
    if case.pixel_review_needed and review is not None:
        _record_review(case, review)
    asked = spec.get("status", CaseStatus.PUBLISHED.value)
    if case.pixel_review_needed and case.pixel_reviewed_at is None:
        # Loading never stands in for a person's review.
        unreviewed = "its images may carry burned-in text and the case file records no pixel review"
        if asked == CaseStatus.DRAFT.value or not publish:
            return LoadResult(name, "loaded", case_id=case.id,
                              reason=f"left as a draft: {unreviewed}")
        change_status(case, CaseStatus.IN_REVIEW, actor=None)
        return LoadResult(name, "loaded", case_id=case.id, reason=f"held in review: {unreviewed}")
    if asked == CaseStatus.IN_REVIEW.value:
        change_status(case, CaseStatus.IN_REVIEW, actor=None)  # held for a person's review
    elif publish and asked == CaseStatus.PUBLISHED.value:
        _publish(case)
    return LoadResult(name, "loaded", case_id=case.id)


def _present(name: str, case: Case, exam_bank: bool) -> LoadResult:
    """A case already in the library is left as it is, except that a file keeping it for
    exams puts it in the exam bank, which the exam-bank rule may refuse (a case in a
    practice set never joins the bank)."""
    if exam_bank and not case.exam_bank:
        try:
            put_in_exam_bank([case], actor=None)
        except CaseError as exc:
            db.session.rollback()
            return LoadResult(name, "refused", case_id=case.id,
                              reason=f"already in the library, and {exc}")
        return LoadResult(name, "present", case_id=case.id, reason="now in the exam bank")
    return LoadResult(name, "present", case_id=case.id)


def _reader(origin: dict[str, Any], folder: Path) -> Callable[[], bytes]:
    return lambda: _image_bytes(origin, folder)


def _check_spec(spec: Any) -> None:
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise LibraryError(f"not a case file (expected format {FORMAT})")
    for key in ("source", "licence", "images", "reference"):
        if key not in spec:
            raise LibraryError(f"the case file has no {key!r}")
    if not isinstance(spec["images"], list) or not spec["images"]:
        raise LibraryError("a case needs at least one image")
    for image in spec["images"]:
        if not isinstance(image, dict) or "origin" not in image or "pixel_sha256" not in image:
            raise LibraryError("every image needs an 'origin' and a 'pixel_sha256'")
        if not isinstance(image.get("received_pixel_sha256", ""), str):
            raise LibraryError("an image's 'received_pixel_sha256' must be a sha256")
    if spec.get("status", CaseStatus.PUBLISHED.value) not in LOADED_STATUSES:
        raise LibraryError(f"the status must be one of {', '.join(sorted(LOADED_STATUSES))}")
    _recorded_review(spec)
    _spec_notes(spec)


def _spec_notes(spec: dict[str, Any]) -> dict[str, str]:
    """The file's teaching notes by language: an object of language: text, or (files
    written before notes had languages) one text, the English note."""
    raw = spec.get("teaching_notes") or {}
    notes = {NOTE_FALLBACK_LANGUAGE: raw} if isinstance(raw, str) else raw
    if not isinstance(notes, dict):
        raise LibraryError("'teaching_notes' must be a text or an object of language: text")
    for language, text in notes.items():
        if language not in NOTE_LANGUAGES:
            raise LibraryError(f"teaching notes are in {', '.join(NOTE_LANGUAGES)}, not "
                               f"{str(language)[:20]!r}")
        if not isinstance(text, str) or len(text) > MAX_NOTE:
            raise LibraryError(f"a teaching note is a text of at most {MAX_NOTE} characters")
    return notes


# What a case file may ask for; a retired case is exported for the record, and loads as a
# draft for a trainer to decide on.
LOADED_STATUSES = {CaseStatus.DRAFT.value, CaseStatus.IN_REVIEW.value,
                   CaseStatus.PUBLISHED.value, CaseStatus.RETIRED.value}


def _recorded_review(spec: dict[str, Any]) -> PixelReview | None:
    """The file's pixel review, checked: a reviewer's name and an ISO 8601 date."""
    entry = spec.get("pixel_review")
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise LibraryError("the pixel review must name 'reviewed_by' and 'reviewed_at'")
    reviewer = entry.get("reviewed_by")
    if not isinstance(reviewer, str) or not reviewer.strip() or len(reviewer) > 200:
        raise LibraryError("the pixel review needs the reviewer's name (at most 200 characters)")
    try:
        reviewed_at = datetime.fromisoformat(str(entry.get("reviewed_at")))
    except ValueError:
        raise LibraryError("the pixel review's 'reviewed_at' is not an ISO 8601 date") from None
    if reviewed_at.tzinfo is None:
        reviewed_at = reviewed_at.replace(tzinfo=UTC)
    return PixelReview(reviewer.strip(), reviewed_at)


def _record_review(case: Case, review: PixelReview) -> None:
    """The review done elsewhere, as the file names it; audited like one done here."""
    case.pixel_reviewed_at = review.reviewed_at
    case.pixel_reviewed_by_name = review.reviewed_by
    record("case.pixel_review", actor=None, object_type="case", object_id=case.id,
           reviewed_by=review.reviewed_by, reviewed_at=review.reviewed_at.isoformat(),
           via="case file")
    db.session.commit()


def _apply_spec(case: Case, spec: dict[str, Any], image_ids: list[int | None]) -> None:
    images = {img.id: img for img in case.images}
    ordered = [images[i] for i in image_ids if i in images]
    for image, image_spec in zip(ordered, spec["images"], strict=True):
        if image.pixel_hash != image_spec["pixel_sha256"]:
            raise LibraryError("the image pixels do not match the case file's pixel_sha256")
        image.view = image_spec.get("view", image.view)
        image.is_prior = bool(image_spec.get("prior", False))
    case.difficulty = spec.get("difficulty")
    notes = _spec_notes(spec)
    for language in NOTE_LANGUAGES:
        case.set_note(language, notes.get(language, ""))
    case.tag_links = [CaseTag(tag=t) for t in parse_tags(",".join(spec.get("tags", [])))]
    reference = spec["reference"]
    scheme = get_scheme(reference["scheme"], reference.get("version"))
    marks = []
    for mark in reference.get("marks", []):
        index = mark.get("image", 0)
        if not isinstance(index, int) or not 0 <= index < len(ordered):
            raise LibraryError("a mark points at an image the case does not have")
        marks.append({**{k: v for k, v in mark.items() if k != "image"},
                      "image_id": ordered[index].id})
    save_read(case, author=None, scheme=scheme, answers=reference["answers"], marks=marks)
    _add_quality_reference(case, spec)


def _add_quality_reference(case: Case, spec: dict[str, Any]) -> None:
    """The radiographers' image-quality reference read beside the diagnostic one; a case
    that has one keeps it (loading a library again changes no read)."""
    quality = spec.get("quality_reference")
    if not isinstance(quality, dict):
        return
    answers = quality.get("answers")
    if not isinstance(quality.get("scheme"), str) or not isinstance(answers, dict):
        raise LibraryError("the quality reference needs a scheme and its answers")
    # The one test of "image quality" the reads and exercises use (app.schemes.registry).
    if not is_image_quality(quality["scheme"]):
        raise LibraryError("the quality reference must use the image-quality scheme")
    scheme = get_scheme(quality["scheme"], quality.get("version"))
    if any(r.scheme_key == scheme.key for r in case.current_reads):
        return
    save_read(case, author=None, scheme=scheme, answers=answers, marks=[])


def _publish(case: Case) -> None:
    """Through the status rules: an unreviewed case is refused there, never reviewed here."""
    if case.status == CaseStatus.DRAFT.value:
        change_status(case, CaseStatus.IN_REVIEW, actor=None)
    if case.status == CaseStatus.IN_REVIEW.value:
        change_status(case, CaseStatus.PUBLISHED, actor=None)


def _discard(case_ids: set[int | None]) -> None:
    """Undo a partly loaded case: rows and stored images."""
    store = image_store()
    for case_id in filter(None, case_ids):
        case = db.session.get(Case, case_id)
        if case is None:
            continue
        keys = [img.storage_key for img in case.images]
        db.session.delete(case)
        db.session.commit()
        for key in keys:
            store.delete(key)


# ---- export ------------------------------------------------------------------------------


def export_library(folder: Path, cases: list[Case], *,
                   on_case: Callable[[int], None] | None = None) -> list[Path]:
    """Write case files and their de-identified DICOM images under ``folder``;
    ``on_case(n)`` is told after the n-th case is written (a job's progress)."""
    (folder / CASES_DIR).mkdir(parents=True, exist_ok=True)
    (folder / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    store = image_store()
    written = []
    for case in cases:
        reference = reference_for(case)
        if reference.scheme is None:
            raise LibraryError(f"case {case.id} has no reference read to export")
        index = {img.id: n for n, img in enumerate(case.images)}
        images = []
        for image in case.images:
            data = store.read(image.storage_key, DICOM_FILE)
            digest = hashlib.sha256(data).hexdigest()
            (folder / IMAGES_DIR / f"{digest}.dcm").write_bytes(data)
            entry: dict[str, Any] = {
                "view": image.view, "prior": image.is_prior,
                "origin": {"file": f"{IMAGES_DIR}/{digest}.dcm", "sha256": digest},
                "pixel_sha256": image.pixel_hash,
            }
            if image.version > 1:
                # Redacted since it was imported: the file holds other pixels than the ones
                # the image is known by (its duplicate key stays the received pixels').
                entry["pixel_sha256"] = _stored_pixel_hash(data)
                entry["received_pixel_sha256"] = image.pixel_hash
            images.append(entry)
        spec: dict[str, Any] = {
            "format": FORMAT,
            "status": case.status,
            "source": case.source,
            "licence": case.licence,
            "difficulty": case.difficulty,
            "tags": case.tags,
            "exam_bank": case.exam_bank,
            "teaching_notes": case.notes_by_language,
            "images": images,
            "reference": {
                "scheme": reference.scheme.key,
                "version": reference.scheme.version,
                "answers": reference.answers,
                "marks": [{**{k: v for k, v in m.items() if k != "image_id"},
                           "image": index[m["image_id"]]} for m in reference.marks],
            },
        }
        quality_key = next((r.scheme_key for r in case.current_reads
                            if r.scheme_key != reference.scheme.key), None)
        quality = reference_for(case, scheme_key=quality_key) if quality_key else None
        if quality is not None and quality.scheme is not None and quality.scheme.key == quality_key:
            spec["quality_reference"] = {"scheme": quality.scheme.key,
                                         "version": quality.scheme.version,
                                         "answers": quality.answers}
        review = _review_of(case)
        if review is not None:
            spec["pixel_review"] = review
        path = folder / CASES_DIR / f"case-{case.id:06d}.json"
        path.write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
        if on_case is not None:
            on_case(len(written))
    return written


def _review_of(case: Case) -> dict[str, str] | None:
    """The pixel review to carry along: done here (the reviewer's name and username) or
    carried in from another installation's file. One with nobody to name (done by the
    demo loader of old) is not a review another installation can rely on."""
    if case.pixel_reviewed_at is None:
        return None
    if case.pixel_reviewed_by is not None:
        reviewer = f"{case.pixel_reviewed_by.full_name} ({case.pixel_reviewed_by.username})"
    elif case.pixel_reviewed_by_name:
        reviewer = case.pixel_reviewed_by_name
    else:
        return None
    return {"reviewed_by": reviewer,
            "reviewed_at": case.pixel_reviewed_at.isoformat(timespec="seconds")}


def _stored_pixel_hash(data: bytes) -> str:
    """The duplicate key of a DICOM file's pixels, as the ingest computes it."""
    # The imaging modules are loaded by the exports that need them, not with the application.
    import pydicom

    from app.cases import pixels

    return pixels.pixel_hash(pixels.stored_pixels(pydicom.dcmread(io.BytesIO(data))))
