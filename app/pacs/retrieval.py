"""A retrieved study on disk: each file written to the job's folder as it arrives, counted
against the per-study limits, never parsed here (the sandboxed ingest parses it).

DICOMweb's multipart/related answer is split by python-multipart's streaming parser.
dicomweb-client cannot give the files unparsed: ``retrieve_study`` and ``iter_study`` read
every instance with pydicom in this process, and its byte-level helpers are private and
hold each part whole in memory. python-multipart (Starlette's parser) hands over each part's
bytes chunk by chunk, so a file goes to disk as it comes and memory stays at one chunk.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header

from app.sentences import N_, say

CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class StudyLimits:
    max_bytes: int
    max_images: int


class StudyRefused(Exception):
    """The study cannot be taken as a whole (too large, too many images, no room on disk);
    the message says why, and nothing of it is imported."""


class BrokenAnswer(Exception):
    """The PACS's answer is not a complete multipart body of DICOM files."""


def shown_size(size: int) -> str:
    if size >= 1024**3 and size % 1024**3 == 0:
        return f"{size // 1024**3} GB"
    if size >= 1024**2:
        return f"{size // 1024**2} MB"
    return f"{max(size // 1024, 1)} KB"


def too_many_images(limit: int) -> str:
    return say(N_("the study holds more than %(limit)s images, the per-study limit "
                  "(PACS_STUDY_MAX_IMAGES)"), limit=limit)


class StudyFolder:
    """Writes a study's files into ``folder`` (0001.dcm, 0002.dcm, ... in the order the PACS
    sends them) and refuses the study once it passes a limit."""

    def __init__(self, folder: Path, limits: StudyLimits) -> None:
        self.folder, self.limits = folder, limits
        self.files: list[Path] = []
        self.size = 0
        self._current: BinaryIO | None = None

    def start_file(self) -> None:
        self.close_file()
        if len(self.files) >= self.limits.max_images:
            raise StudyRefused(too_many_images(self.limits.max_images))
        path = self.folder / f"{len(self.files) + 1:04}.dcm"
        try:
            self._current = path.open("xb")
        except OSError as exc:
            raise _disk_refusal(exc) from None
        self.files.append(path)

    def write(self, data: bytes | memoryview) -> None:
        assert self._current is not None, "write() before start_file()"
        self.size += len(data)
        if self.size > self.limits.max_bytes:
            raise StudyRefused(say(N_("the study is larger than the %(size)s per-study limit "
                                      "(PACS_STUDY_MAX_BYTES)"),
                                   size=shown_size(self.limits.max_bytes)))
        try:
            self._current.write(data)
        except OSError as exc:
            raise _disk_refusal(exc) from None

    def close_file(self) -> None:
        if self._current is not None:
            current, self._current = self._current, None
            try:
                current.close()
            except OSError as exc:
                raise _disk_refusal(exc) from None

    def close_quietly(self) -> None:
        """Close the file being written, after a failure that already says what went
        wrong (the study's folder is removed with whatever it holds)."""
        with suppress(StudyRefused):
            self.close_file()


def _disk_refusal(exc: OSError) -> StudyRefused:
    return StudyRefused(say(N_("the study could not be kept on the worker's disk for its "
                               "import (%(cause)s)"), cause=exc.strerror or type(exc).__name__))


def spool_answer(response: Any, study: StudyFolder) -> None:
    """Write a WADO-RS study answer (a ``requests`` response opened with stream=True) into
    ``study``. Raises StudyRefused, BrokenAnswer, or what ``requests`` raises when the
    connection breaks."""
    media_type, options = parse_options_header(response.headers.get("Content-Type", ""))
    try:
        if media_type == b"application/dicom":
            # One file sent without the multipart envelope, as some servers do for a study
            # of one image (PS3.18 wants the envelope; dicomweb-client accepts both).
            study.start_file()
            for chunk in response.iter_content(CHUNK_BYTES):
                study.write(chunk)
            study.close_file()
            return
        boundary = options.get(b"boundary")
        if media_type != b"multipart/related" or not boundary:
            raise BrokenAnswer(N_("the PACS answered the retrieve with something other than "
                                  "DICOM files"))
        ended = []
        parser = MultipartParser(boundary, callbacks={
            "on_part_begin": study.start_file,
            "on_part_data": lambda data, start, end: study.write(memoryview(data)[start:end]),
            "on_part_end": study.close_file,
            "on_end": lambda: ended.append(True),
        })
        for chunk in response.iter_content(CHUNK_BYTES):
            parser.write(chunk)
        parser.finalize()
        if not ended:
            # The connection closed cleanly but the closing boundary never came: the last
            # file may be cut short.
            raise BrokenAnswer(N_("the PACS's answer broke off before its end"))
    finally:
        study.close_quietly()
