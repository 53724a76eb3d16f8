"""Importing DICOM files into the case library: the one service behind the upload page and
``flask --app app cases import``.

Every file gets its own result. Each is parsed and de-identified in a sandboxed child process
(time and memory limits), checked for duplicates by pixel hash, and stored with its case in
one step: a refused or failed file leaves no row, image folder or temporary file behind, and
never stops the files after it. File names are shown back to the person importing and are
never stored or logged: they may carry patient names.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.audit.services import record
from app.auth.models import User
from app.cases.archive import ArchiveLimits, Member, is_zip, open_archive, read_member
from app.cases.child_entry import process_dicom, process_into
from app.cases.models import Case, CaseImage, CaseStatus
from app.cases.processed import (
    NO_FILE_META_REASON,
    STORAGE_FULL_ERRNOS,
    STORAGE_FULL_REASON,
    ProcessedImage,
    ProcessOptions,
)
from app.cases.sandbox import Rejected, SandboxPool, run_limited, too_large
from app.cases.storage import StagedImage, image_store
from app.extensions import db
from app.sentences import N_, say

Status = Literal["imported", "duplicate", "rejected"]

logger = logging.getLogger(__name__)

EMPTY_FOLDER_REASON = N_("the folder holds no files: nothing was imported")
NOT_TRIED_REASON = N_("not tried: the import stopped because the image storage is full")


@dataclass
class FileResult:
    name: str
    status: Status
    case_id: int | None = None
    image_id: int | None = None
    reason: str | None = None
    deid_report: dict[str, Any] | None = None
    pixel_review_needed: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "imported"

    @property
    def needs_no_meta_option(self) -> bool:
        """Refused only because the file lacks the Part 10 header, which the importer
        may choose to accept."""
        return self.status == "rejected" and self.reason == NO_FILE_META_REASON


@dataclass(frozen=True)
class Source:
    """One file to import: a name to show and a way to get its bytes (bounded)."""

    name: str
    read: Callable[[], bytes]


@dataclass(frozen=True)
class ImportOptions:
    allow_no_meta: bool = False
    source: str = "upload"
    licence: str = ""
    exam_bank: bool = False
    # All files of this import form one case (a case file's images), instead of one case
    # per (de-identified) study.
    one_case: bool = False
    # Files that a CXR Academy installation de-identified (a case library's exported images)
    # keep their pseudonym, shifted dates and replacement UIDs: see deidentify.
    keep_own_pseudonyms: bool = False


@dataclass
class ImportSummary:
    results: list[FileResult] = field(default_factory=list)
    # Why the import stopped before the last file, if it did.
    stopped: str | None = None

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status == status)


def archive_limits() -> ArchiveLimits:
    cfg = current_app.config
    return ArchiveLimits(
        max_entries=cfg["ARCHIVE_MAX_ENTRIES"],
        max_total_bytes=cfg["ARCHIVE_MAX_TOTAL_BYTES"],
        max_member_bytes=cfg["INGEST_FILE_MAX_BYTES"],
        max_ratio=cfg["ARCHIVE_MAX_RATIO"],
    )


# ---- sources ----------------------------------------------------------------------------


def bounded_reader(path: Path, limit: int) -> Callable[[], bytes]:
    """A file's bytes read when imported, refused past ``limit`` (read one byte past it,
    never the whole of a file that is too large)."""
    def read() -> bytes:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise Rejected(too_large(limit))
        return data

    return read


def _expand(
    name: str, opener: Callable[[], BinaryIO], limits: ArchiveLimits
) -> Iterator[Source | FileResult]:
    """Each member of a zip archive; a member that cannot be read is refused on its own and
    the members after it are still read."""
    try:
        with opener() as fh:
            archive, members = open_archive(fh, limits)
            with archive:
                for member in members:
                    yield _member_source(f"{name} / {member.name}", archive, member, limits)
    except Rejected as exc:
        yield FileResult(name, "rejected", reason=str(exc))
    except OSError as exc:
        yield FileResult(name, "rejected", reason=say(N_("could not be read (%(cause)s)"),
                                                       cause=_os_cause(exc)))


def _member_source(
    shown: str, archive: zipfile.ZipFile, member: Member, limits: ArchiveLimits
) -> Source | FileResult:
    if member.problem:
        return FileResult(shown, "rejected", reason=member.problem)

    # Read when imported, not when listed: a job first lists an archive to count its files,
    # and decompressing every member for that would read the archive twice. The import reads
    # each source before the listing moves on, while the archive is still open.
    def read() -> bytes:
        try:
            return read_member(archive, member, limits)
        except Rejected:
            raise
        except Exception as exc:  # whatever a codec raises, it is this member's refusal alone
            raise Rejected(say(N_("could not be read (%(cause)s)"),
                               cause=type(exc).__name__)) from None

    return Source(shown, read)


def _os_cause(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def sources_from_paths(paths: Iterable[Path]) -> Iterator[Source | FileResult]:
    """Files, folders (recursively; links are not followed) and .zip archives."""
    limits = archive_limits()
    for path in paths:
        if path.is_symlink():
            yield FileResult(str(path), "rejected", reason=N_("symbolic links are not followed"))
        elif path.is_dir():
            found = False
            for root, dirs, files in os.walk(path, followlinks=False):
                dirs.sort()
                for file_name in sorted(files):
                    child = Path(root) / file_name
                    if not child.is_symlink():
                        found = True
                        yield from _file_sources(child, limits)
            if not found:
                yield FileResult(str(path), "rejected", reason=EMPTY_FOLDER_REASON)
        elif path.is_file():
            yield from _file_sources(path, limits)
        else:
            yield FileResult(str(path), "rejected", reason=N_("no such file or folder"))


def _file_sources(
    path: Path, limits: ArchiveLimits, shown: str | None = None
) -> Iterator[Source | FileResult]:
    shown = str(path) if shown is None else shown
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        yield FileResult(shown, "rejected", reason=say(N_("could not be read (%(cause)s)"),
                                                       cause=_os_cause(exc)))
        return
    if is_zip(head):
        yield from _expand(shown, lambda: path.open("rb"), limits)
    else:
        yield Source(shown, bounded_reader(path, limits.max_member_bytes))


def sources_from_stored_uploads(
    files: Iterable[tuple[Path, str]],
) -> Iterator[Source | FileResult]:
    """Uploaded files kept on disk for a job, each with the name it was uploaded under."""
    limits = archive_limits()
    for path, name in files:
        yield from _file_sources(path, limits, shown=name)


def sources_from_uploads(files: Iterable[Any]) -> Iterator[Source | FileResult]:
    """Werkzeug FileStorage objects from a multipart upload."""
    limits = archive_limits()
    for storage in files:
        name = os.path.basename(storage.filename or "") or "unnamed file"
        stream = storage.stream
        head = stream.read(4)
        stream.seek(0)
        if is_zip(head):
            yield from _expand(name, lambda stream=stream: stream, limits)
        else:

            def read(stream: Any = stream) -> bytes:
                stream.seek(0)
                data = stream.read(limits.max_member_bytes + 1)
                if len(data) > limits.max_member_bytes:
                    raise Rejected(too_large(limits.max_member_bytes))
                return data

            yield Source(name, read)


# ---- import -----------------------------------------------------------------------------


# Called with each file's result inside the transaction that stores it (a job records its
# progress there, so a file counts as done exactly when it is in the library).
OnResult = Callable[[FileResult], None]


@dataclass(frozen=True)
class AllStored:
    """Yielded between items by a source that must see every earlier file stored before it
    is asked for the next item (a PACS import notes which study is in hand)."""


ALL_STORED = AllStored()
Item = Source | FileResult | AllStored


@dataclass
class _InHand:
    """A file whose processing has started: its result is ready, or will be."""

    name: str
    result: FileResult | None = None
    future: Future[ProcessedImage] | None = None
    listed: bool = False  # a result given by the listing, not a file to import
    staged: StagedImage | None = None  # where the child writes the image's files

    def ready(self) -> bool:
        return self.future is None or self.future.done()


def import_workers() -> int:
    """How many files are processed at once: INGEST_WORKERS, or one per core we may use."""
    configured = int(current_app.config.get("INGEST_WORKERS") or 0)
    return configured if configured > 0 else max(len(os.sched_getaffinity(0)), 1)


def import_files(
    items: Iterable[Item],
    *,
    actor: User | None,
    options: ImportOptions,
    on_result: OnResult | None = None,
    cases_by_study: dict[str, Case] | None = None,
) -> ImportSummary:
    """Import ``items``. ``cases_by_study`` carries the cases an earlier part of the same
    import made (a resumed job), so later images of their studies join them.

    Files are parsed in sandboxed children on every core at once (INGEST_WORKERS), but
    stored here one by one in the order given: the results, the duplicates found and the
    cases made are those of a one-by-one import. An import that stops on an exception
    kills the children in hand and stores nothing more.
    """
    cfg = current_app.config
    process_options = ProcessOptions(
        secret=cfg["DEID_SECRET"].encode(),
        allow_no_meta=options.allow_no_meta,
        retain_patient_characteristics=cfg["DEID_RETAIN_PATIENT_CHARACTERISTICS"],
        dates=cfg["DEID_DATES"],
        keep_own_pseudonyms=options.keep_own_pseudonyms,
    )
    limits = (float(cfg["INGEST_TIME_LIMIT"]), int(cfg["INGEST_MEMORY_LIMIT"]))
    summary = ImportSummary()
    cases_by_study = {} if cases_by_study is None else cases_by_study
    pool = SandboxPool(import_workers())
    # One waiting beyond those being parsed, so a core never idles while the oldest file is
    # stored; few enough that the files in hand do not grow with the batch.
    most_in_hand = pool.size + 1
    in_hand: deque[_InHand] = deque()
    # Every staging folder handed to a child: whatever was not committed is removed once no
    # child can write into it any more (after the pool has closed or stopped).
    staged: list[StagedImage] = []

    def store_oldest() -> None:
        entry = in_hand.popleft()
        if entry.listed and entry.result is not None:
            result = entry.result
        elif summary.stopped:
            # Read or parsed already, but a one-by-one import would not have tried it.
            if entry.future is not None:
                entry.future.cancel()
            result = FileResult(entry.name, "rejected", reason=NOT_TRIED_REASON)
        elif entry.result is not None:
            result = entry.result
        else:
            result = _store_processed(entry, cases_by_study, actor, options, on_result)
        if result.reason == STORAGE_FULL_REASON:
            summary.stopped = "the image storage is full"
        if entry.staged is not None and result.status != "imported" and (
                entry.future is None or entry.future.done()):
            entry.staged.discard()
        summary.results.append(result)
        if on_result is not None and result.status != "imported":
            # An imported file's result was recorded in its own storing transaction.
            on_result(result)
            db.session.commit()

    try:
        for item in _listed(items):
            if isinstance(item, AllStored):
                while in_hand:
                    store_oldest()
                continue
            in_hand.append(_start(item, pool, process_options, limits, summary))
            if in_hand[-1].staged is not None:
                staged.append(in_hand[-1].staged)
            while in_hand and (in_hand[0].ready() or len(in_hand) > most_in_hand):
                store_oldest()
        while in_hand:
            store_oldest()
    except BaseException:
        pool.stop()
        raise
    finally:
        pool.close()
        for folder in staged:
            folder.discard()  # a committed image's folder has moved: nothing to remove

    record(
        "cases.import",
        actor=actor,
        object_type="import",
        source=options.source,
        imported=summary.count("imported"),
        duplicates=summary.count("duplicate"),
        rejected=summary.count("rejected"),
        cases=sorted({r.case_id for r in summary.results if r.ok and r.case_id}),
        **({"stopped": summary.stopped} if summary.stopped else {}),
    )
    db.session.commit()
    return summary


def _listed(items: Iterable[Item]) -> Iterator[Item]:
    """The items, ending with a refusal instead of an exception if listing them fails."""
    iterator = iter(items)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except Exception as exc:
            logger.warning("import: listing the files failed (%s)", type(exc).__name__)
            yield FileResult(N_("the remaining files"), "rejected",
                             reason=say(N_("could not be listed (%(cause)s)"),
                                        cause=type(exc).__name__))
            return
        yield item


def _start(
    item: Source | FileResult,
    pool: SandboxPool,
    process_options: ProcessOptions,
    limits: tuple[float, int],
    summary: ImportSummary,
) -> _InHand:
    """Read the file here (an archive's members are read in order, while it is open) and
    hand it to a sandboxed child."""
    if isinstance(item, FileResult):
        return _InHand(item.name, result=item, listed=True)
    if summary.stopped:
        return _InHand(item.name, result=FileResult(item.name, "rejected",
                                                    reason=NOT_TRIED_REASON))
    try:
        data = item.read()
    except Exception as exc:
        return _InHand(item.name, result=_refusal(item.name, exc))
    timeout, memory_bytes = limits
    try:
        staged = image_store().new_stage()
    except OSError as exc:
        return _InHand(item.name, result=_not_stored(item.name, exc))
    return _InHand(item.name, staged=staged,
                   future=pool.submit(_process_sandboxed, data, process_options, timeout,
                                      memory_bytes, str(staged.path)))


def _process_sandboxed(
    data: bytes, process_options: ProcessOptions, timeout: float, memory_bytes: int,
    folder: str,
) -> ProcessedImage:
    return run_limited(process_into, (data, process_options, folder, process_dicom),
                       timeout=timeout, memory_bytes=memory_bytes)


def _refusal(name: str, exc: Exception) -> FileResult:
    """Reading or parsing a file failed: its refusal, with the cause."""
    if isinstance(exc, Rejected):
        return FileResult(name, "rejected", reason=str(exc))
    if isinstance(exc, OSError):
        return FileResult(name, "rejected", reason=say(N_("could not be read (%(cause)s)"),
                                                       cause=_os_cause(exc)))
    return _unexpected(name, exc)


def _store_processed(
    entry: _InHand,
    cases_by_study: dict[str, Case],
    actor: User | None,
    options: ImportOptions,
    on_result: OnResult | None,
) -> FileResult:
    """One parsed file stored; whatever goes wrong becomes this file's refusal with the
    cause, and nothing of it is left in the database or the image storage."""
    assert entry.future is not None
    try:
        processed = entry.future.result()
    except Exception as exc:
        return _refusal(entry.name, exc)
    try:
        assert entry.staged is not None
        return _store(entry.name, processed, entry.staged, cases_by_study, actor, options,
                      on_result)
    except Exception as exc:
        db.session.rollback()
        return _not_stored(entry.name, exc)


def _not_stored(name: str, exc: Exception) -> FileResult:
    if _is_storage_full(exc):
        return FileResult(name, "rejected", reason=STORAGE_FULL_REASON)
    if isinstance(exc, OSError):
        return FileResult(name, "rejected", reason=say(N_("could not be stored (%(cause)s)"),
                                                       cause=_os_cause(exc)))
    return _unexpected(name, exc)


def _is_storage_full(exc: Exception) -> bool:
    """No space for the image files, or for the database (SQLite's SQLITE_FULL,
    PostgreSQL's disk_full)."""
    if isinstance(exc, OSError):
        return exc.errno in STORAGE_FULL_ERRNOS
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) == "53100" or (
        isinstance(orig, sqlite3.OperationalError) and "disk is full" in str(orig)
    )


def _unexpected(name: str, exc: Exception) -> FileResult:
    # The type (and a database driver's own error type) names the cause; the message may
    # quote header values, so it is neither shown nor logged.
    cause = type(exc).__name__
    orig = getattr(exc, "orig", None)
    if orig is not None:
        cause = f"{cause}: {type(orig).__name__}"
    logger.warning("import: a file could not be processed (%s)", cause)
    return FileResult(name, "rejected", reason=say(N_("could not be processed: %(cause)s"),
                                                   cause=cause))


def _duplicate_of(pixel_hash: str) -> CaseImage | None:
    return db.session.scalar(select(CaseImage).where(CaseImage.pixel_hash == pixel_hash))


def _store(
    name: str,
    processed: ProcessedImage,
    staged: StagedImage,
    cases_by_study: dict[str, Case],
    actor: User | None,
    options: ImportOptions,
    on_result: OnResult | None = None,
) -> FileResult:
    existing = _duplicate_of(processed.pixel_hash)
    if existing is not None:
        return FileResult(
            name,
            "duplicate",
            case_id=existing.case_id,
            image_id=existing.id,
            reason=say(N_("the same image is already in case %(case)s; not stored again"),
                       case=existing.case_id),
        )
    store = image_store()
    # Images of one (de-identified) study of one patient uploaded together become one case.
    # The pseudonym is part of the key because a StudyInstanceUID is not always unique
    # (reused by a modality, or copied by a faulty export): two patients never share a case.
    # Who is one patient is the linking rule of deidentify._patient_key.
    group = case_group(processed.study_uid, processed.patient_pseudonym, options)
    case = cases_by_study.get(group)
    new_case = case is None
    if case is None:
        case = Case(
            status=CaseStatus.DRAFT.value,
            exam_bank=options.exam_bank,
            age_band=age_band(processed.age),
            sex=processed.sex,
            source=options.source,
            licence=options.licence,
            created_by=actor,
        )
    case.pixel_review_needed = case.pixel_review_needed or processed.pixel_review_needed
    spacing = processed.pixel_spacing_mm
    # The sandboxed child has written the image's files into ``staged`` (process_into);
    # the folder moves into place once the row is in, and is removed by the caller if not.
    assert processed.written is not None, "the files are written by process_into"
    image = CaseImage(
        case=case,
        view=processed.view,
        pixel_hash=processed.pixel_hash,
        storage_key=staged.key,
        modality=processed.modality,
        transfer_syntax=processed.transfer_syntax[:80],
        rows=processed.rows,
        columns=processed.columns,
        bits_stored=processed.bits_stored,
        row_spacing_mm=spacing[0] if spacing else None,
        column_spacing_mm=spacing[1] if spacing else None,
        study_uid=processed.study_uid,
        sop_uid=processed.sop_uid,
        patient_pseudonym=processed.patient_pseudonym,
        display_params=processed.display_params,
        deid_report=processed.deid_report,
        sizes=dict(processed.written),
    )
    db.session.add(image)
    try:
        db.session.flush()
    except IntegrityError:
        # The same image arrived through another request a moment ago.
        db.session.rollback()
        existing = _duplicate_of(processed.pixel_hash)
        return FileResult(
            name,
            "duplicate",
            case_id=existing.case_id if existing else None,
            reason=N_("the same image was imported at the same moment; not stored again"),
        )
    staged.commit()
    result = FileResult(
        name,
        "imported",
        case_id=case.id,
        image_id=image.id,
        deid_report=processed.deid_report,
        pixel_review_needed=processed.pixel_review_needed,
    )
    try:
        if new_case:
            record(
                "case.create",
                actor=actor,
                object_type="case",
                object_id=case.id,
                source=options.source,
            )
        if on_result is not None:
            on_result(result)
        db.session.commit()
    except Exception:
        db.session.rollback()
        store.delete(image.storage_key)
        raise
    if new_case:
        cases_by_study[group] = case
    return result


def case_group(study_uid: str, patient_pseudonym: str | None, options: ImportOptions) -> str:
    """Which case of an import an image joins (see _store)."""
    return "*" if options.one_case else f"{study_uid}/{patient_pseudonym}"


def age_band(age: str | None) -> str | None:
    """DICOM AS ("045Y", "006M") to a ten-year band such as "40-49"."""
    if not age or len(age) != 4 or not age[:3].isdigit():
        return None
    value, unit = int(age[:3]), age[3].upper()
    years = value if unit == "Y" else 0 if unit in "MWD" else None
    if years is None:
        return None
    if years >= 90:
        return "90+"
    low = years // 10 * 10
    return f"{low}-{low + 9}"
