"""A WADO-RS answer written to disk file by file (app.pacs.retrieval), tested directly on
answers as a PACS may send them: whole, in small chunks, cut short, not DICOM at all, past
the per-study limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.pacs.retrieval import (
    BrokenAnswer,
    StudyFolder,
    StudyLimits,
    StudyRefused,
    shown_size,
    spool_answer,
)

BOUNDARY = "3ed247e6-d8b4-4c70-9dec-82aae9275043"
FILES = [b"\0" * 128 + b"DICM" + bytes(range(256)) * 40, b"\0" * 128 + b"DICM" + b"\r\n--" * 300,
         b"\0" * 128 + b"DICM" + b"x" * 5000]
LIMITS = StudyLimits(max_bytes=10**6, max_images=10)


class Answer:
    """What spool_answer reads of a ``requests`` response: its headers and its body in
    chunks."""

    def __init__(self, body: bytes, content_type: str, chunk: int = 1000) -> None:
        self.headers = {"Content-Type": content_type}
        self.body, self.chunk = body, chunk

    def iter_content(self, size: int) -> Iterator[bytes]:
        for start in range(0, len(self.body), self.chunk):
            yield self.body[start:start + self.chunk]


def multipart(files: list[bytes], *, closed: bool = True) -> bytes:
    parts = b"".join(b"--" + BOUNDARY.encode() + b"\r\nContent-Type: application/dicom\r\n"
                     + f"Content-Length: {len(f)}\r\n\r\n".encode() + f + b"\r\n"
                     for f in files)
    return parts + (b"--" + BOUNDARY.encode() + b"--\r\n" if closed else b"")


RELATED = f'multipart/related; type="application/dicom"; boundary="{BOUNDARY}"'


def folder(tmp_path: Path, limits: StudyLimits = LIMITS) -> StudyFolder:
    return StudyFolder(tmp_path, limits)


@pytest.mark.parametrize("chunk", [1, 7, 1000, 10**6])
def test_each_part_becomes_a_file_byte_for_byte(tmp_path, chunk):
    study = folder(tmp_path)
    spool_answer(Answer(multipart(FILES), RELATED, chunk), study)
    assert [p.name for p in study.files] == ["0001.dcm", "0002.dcm", "0003.dcm"]
    assert [p.read_bytes() for p in study.files] == FILES  # boundary-like bytes included
    assert study.size == sum(len(f) for f in FILES)


def test_one_file_sent_without_the_multipart_envelope(tmp_path):
    study = folder(tmp_path)
    spool_answer(Answer(FILES[0], "application/dicom"), study)
    assert [p.read_bytes() for p in study.files] == [FILES[0]]


def test_an_answer_cut_short_is_broken(tmp_path):
    study = folder(tmp_path)
    body = multipart(FILES, closed=False)
    with pytest.raises(BrokenAnswer, match="broke off before its end"):
        spool_answer(Answer(body[:-2000], RELATED), study)
    # Every file whole, but not the closing boundary: the last may still be cut short.
    (tmp_path / "b").mkdir()
    with pytest.raises(BrokenAnswer, match="broke off before its end"):
        spool_answer(Answer(multipart(FILES, closed=False), RELATED), folder(tmp_path / "b"))


def test_an_answer_that_is_not_dicom_is_refused(tmp_path):
    for content_type in ("text/html; charset=utf-8", "multipart/related; type=x", ""):
        with pytest.raises(BrokenAnswer, match="something other than DICOM files"):
            spool_answer(Answer(b"<html>Login</html>", content_type), folder(tmp_path))
    assert not list(tmp_path.iterdir())


def test_a_malformed_multipart_body_is_a_parse_error(tmp_path):
    # Not a boundary where the first one must be: python-multipart's error (a ValueError),
    # which the DICOMweb client reports as an answer it could not read.
    with pytest.raises(ValueError):
        spool_answer(Answer(b"garbage" * 100, RELATED), folder(tmp_path))


def test_the_study_limits_stop_the_answer(tmp_path):
    (tmp_path / "a").mkdir()
    small = folder(tmp_path / "a", StudyLimits(max_bytes=len(FILES[0]) + 10, max_images=10))
    with pytest.raises(StudyRefused, match="larger than the 10 KB per-study limit"):
        spool_answer(Answer(multipart(FILES), RELATED), small)
    assert sum(p.stat().st_size for p in small.files) <= len(FILES[0]) + 10
    (tmp_path / "b").mkdir()
    few = folder(tmp_path / "b", StudyLimits(max_bytes=10**6, max_images=2))
    with pytest.raises(StudyRefused, match="more than 2 images"):
        spool_answer(Answer(multipart(FILES), RELATED), few)
    assert len(few.files) == 2


def test_no_room_on_disk_refuses_the_study(tmp_path):
    missing = folder(tmp_path / "not-there")
    with pytest.raises(StudyRefused, match="could not be kept on the worker's disk"):
        spool_answer(Answer(multipart(FILES), RELATED), missing)


def test_sizes_are_said_in_round_units():
    assert shown_size(1024**3) == "1 GB"
    assert shown_size(2 * 1024**2) == "2 MB"
    assert shown_size(1500 * 1024**2) == "1500 MB"
    assert shown_size(300) == "1 KB"
