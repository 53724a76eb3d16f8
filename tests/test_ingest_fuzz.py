"""Property-based fuzzing of the import: mutated real chest DICOM files (header bytes around
tags, VRs and lengths; truncation; flipped pixel bytes) and mutated zip archives built by
code go through ``import_files``. Whatever the bytes, every file ends imported, duplicate or
refused with a reason, nothing escapes, and nothing is half-written (no image row without
its files, no files without a row, no case without an image, nothing left in staging).

The budget is bounded and derandomised so every run tries the same inputs; set
``INGEST_FUZZ_EXAMPLES`` for a longer hunt. The real files are read from the shared folder at
test time and never copied into the repository.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import traceback
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from werkzeug.datastructures import FileStorage

from app.cases import ingest
from app.cases.models import Case, CaseImage
from app.cases.sandbox import Rejected, run_in_process, run_limited
from app.cases.storage import CURRENT_FILES
from app.extensions import db
from tests.dicom_factory import cr_dataset, to_bytes
from tests.realservers import missing
from tests.test_ingest import SHARED_DICOM, store

EXAMPLES = int(os.environ.get("INGEST_FUZZ_EXAMPLES", "60"))
# A folder (outside the repository) to keep the inputs that met unexpected exceptions in.
HUNT = Path(os.environ["INGEST_FUZZ_KEEP"]) if os.environ.get("INGEST_FUZZ_KEEP") else None
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)

PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"
# Two-letter value representations of explicit-VR encodings: where they stand, an element
# starts four bytes before (group, element), with its length right after.
VRS = {b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT",
       b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST",
       b"SV", b"TM", b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV"}
COMPRESSED_SYNTAX = re.compile(rb"1\.2\.840\.10008\.1\.2\.(4|5)")


@functools.cache
def _factory_file(seed: int = 7, rows: int = 48, columns: int = 40) -> bytes:
    # Built once: the factory's UIDs are random, and hypothesis needs the same bytes (and so
    # the same draws) each time it replays an example.
    return to_bytes(cr_dataset(seed=seed, rows=rows, columns=columns))


def _real_files() -> list[Path]:
    if not SHARED_DICOM.is_dir():
        return []
    return sorted(p for p in SHARED_DICOM.iterdir() if p.is_file())


def element_starts(data: bytes) -> list[int]:
    """Offsets of the header's elements, found by their VRs (implicit-VR files have none:
    there every offset of the header is a candidate)."""
    end = data.rfind(PIXEL_DATA_TAG)
    end = len(data) if end < 0 else end + 12
    starts = [i - 4 for i in range(132, end - 1) if data[i:i + 2] in VRS and i - 4 >= 128]
    return starts or list(range(0, min(end, 2048), 2)) or [0]


@st.composite
def mutated_dicom(draw: st.DrawFn, sources: list[Path]) -> bytes:
    names = ["factory"] + [p.name for p in sources]
    name = draw(st.sampled_from(names), label="source")
    data = bytearray(_factory_file() if name == "factory" else (SHARED_DICOM / name).read_bytes())
    pixel_start = data.rfind(PIXEL_DATA_TAG)
    for _ in range(draw(st.integers(1, 3), label="mutations")):
        kind = draw(st.sampled_from(["header", "length", "truncate", "pixels"]), label="kind")
        if kind == "header":
            # Rewrite up to 20 bytes around an element: its tag, VR, length or value start.
            start = draw(st.sampled_from(element_starts(bytes(data))), label="element")
            at = max(0, start + draw(st.integers(-4, 12), label="shift"))
            patch = draw(st.binary(min_size=1, max_size=20), label="bytes")
            data[at:at + len(patch)] = patch
        elif kind == "length":
            start = draw(st.sampled_from(element_starts(bytes(data))), label="element")
            value = draw(st.sampled_from([0, 1, 3, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF]) | st.integers(
                0, 0xFFFFFFFF), label="length")
            long_form = data[start + 4:start + 6] in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"UC")
            if long_form:
                data[start + 8:start + 12] = value.to_bytes(4, "little")
            else:
                data[start + 6:start + 8] = (value & 0xFFFF).to_bytes(2, "little")
        elif kind == "truncate" and len(data) > 1:
            data = data[:draw(st.integers(0, len(data) - 1), label="cut")]
        elif kind == "pixels" and 0 <= pixel_start < len(data) - 1:
            for _ in range(draw(st.integers(1, 16), label="flips")):
                at = draw(st.integers(pixel_start, len(data) - 1), label="at")
                data[at] ^= draw(st.integers(1, 255), label="xor")
    return bytes(data)


@st.composite
def mutated_zip(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED,
                                   zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]), label="method")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as zf:
        for n in range(draw(st.integers(0, 3), label="members")):
            zf.writestr(f"scans/{n}.dcm", _factory_file(300 + n, 24, 20))
    data = bytearray(out.getvalue())
    for _ in range(draw(st.integers(0, 4), label="mutations")):
        kind = draw(st.sampled_from(["flip", "window", "truncate"]), label="kind")
        if kind == "truncate" and len(data) > 4:
            data = data[:draw(st.integers(4, len(data) - 1), label="cut")]
        elif kind == "flip":
            at = draw(st.integers(0, len(data) - 1), label="at")
            data[at] ^= draw(st.integers(1, 255), label="xor")
        else:
            # Overwrite bytes of a local header or central directory entry.
            heads = [m.start() for m in re.finditer(rb"PK\x01\x02|PK\x03\x04|PK\x05\x06", data)]
            if heads:
                at = draw(st.sampled_from(heads), label="header") + draw(
                    st.integers(4, 40), label="offset")
                patch = draw(st.binary(min_size=1, max_size=8), label="bytes")
                data[at:at + len(patch)] = patch
    return bytes(data)


def sandbox_when_compressed(fn: Callable[..., Any], args: tuple, *, timeout: float,
                            memory_bytes: int) -> Any:
    """Uncompressed pixels are decoded here (fast); anything naming a compressed transfer
    syntax goes to the real sandbox, where a decoder that aborts cannot take pytest down."""
    runner = run_limited if COMPRESSED_SYNTAX.search(args[0][:4096]) else run_in_process
    if not HUNT:
        return runner(fn, args, timeout=timeout, memory_bytes=memory_bytes)
    if runner is run_in_process:
        try:
            return fn(*args)
        except Rejected:
            raise
        except Exception:
            _keep(args[0], traceback.format_exc())  # then refused the way the import does
    try:
        return runner(fn, args, timeout=timeout, memory_bytes=memory_bytes)
    except Rejected as exc:
        if runner is run_limited and UNEXPECTED.search(str(exc)):
            _keep(args[0], str(exc))
        raise


def _keep(data: bytes, why: str) -> None:
    """A longer hunt keeps each input that met an unexpected exception, with its traceback."""
    HUNT.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(data).hexdigest()[:16]
    (HUNT / f"{name}.bin").write_bytes(data)
    (HUNT / f"{name}.txt").write_text(why)


@pytest.fixture
def fuzz_import(app, monkeypatch):
    monkeypatch.setattr(ingest, "run_limited", sandbox_when_compressed)

    def run(uploads: list[tuple[bytes, str]]) -> ingest.ImportSummary:
        before = _image_count()
        files = [FileStorage(io.BytesIO(data), name) for data, name in uploads]
        summary = ingest.import_files(ingest.sources_from_uploads(files), actor=None,
                                      options=ingest.ImportOptions())
        for result in summary.results:
            assert result.status in ("imported", "duplicate", "rejected"), result
            if result.status == "rejected":
                assert isinstance(result.reason, str) and result.reason.strip(), result
            _note_unexpected(result)
        assert _image_count() - before == summary.count("imported")
        assert_whole(app)
        return summary

    return run


def _image_count() -> int:
    return len(db.session.scalars(select(CaseImage.id)).all())


UNEXPECTED = re.compile(
    r"^(could not be processed:|could not be read \(|the decoder crashed|the process reading)"
)


def _note_unexpected(result: ingest.FileResult) -> None:
    """With INGEST_FUZZ_KEEP set, print refusals that come from an unexpected exception:
    the list of root causes a longer hunt turns up."""
    if HUNT and result.reason and UNEXPECTED.search(
            result.reason):
        print(f"UNEXPECTED {result.reason}")


def assert_whole(app) -> None:
    """Every image row has all its files; every stored folder has its row; no empty cases."""
    image_store = store(app)
    keys = set(db.session.scalars(select(CaseImage.storage_key)))
    assert keys == set(image_store.keys())
    for key in keys:
        assert sorted(p.name for p in image_store.folder(key).iterdir()) == sorted(CURRENT_FILES)
    staging = image_store.staging_root
    assert not staging.exists() or not any(staging.iterdir())
    assert all(case.images for case in db.session.scalars(select(Case)))


@FUZZ
@given(data=st.data())
def test_mutated_dicom_files_end_with_a_result(fuzz_import, data):
    mutated = data.draw(mutated_dicom(_real_files()), label="file")
    summary = fuzz_import([(mutated, "mutated.dcm")])
    assert [r.name for r in summary.results] == ["mutated.dcm"]


@FUZZ
@given(archive=mutated_zip())
def test_mutated_zip_archives_end_with_a_result_per_member(fuzz_import, archive):
    summary = fuzz_import([(archive, "batch.zip"), (_factory_file(), "after.dcm")])
    # The file after the archive is always tried.
    assert summary.results[-1].name == "after.dcm"
    assert summary.results[-1].status in ("imported", "duplicate")
    assert len(summary.results) >= 2


# ---- what the hunts found, rebuilt by code ------------------------------------------------


def _with_element_patch(tag: bytes, vr: bytes, patch: Callable[[bytearray, int], None]) -> bytes:
    data = bytearray(to_bytes(cr_dataset(seed=401, rows=24, columns=20, KVP="120",
                                         TimezoneOffsetFromUTC="+0100")))
    at = data.find(tag + vr)
    assert at > 0, "the factory no longer writes this element"
    patch(data, at)
    return bytes(data)


def _set_vr(vr: bytes) -> Callable[[bytearray, int], None]:
    def patch(data: bytearray, at: int) -> None:
        data[at + 4:at + 6] = vr
    return patch


def _set_short_length(length: int) -> Callable[[bytearray, int], None]:
    def patch(data: bytearray, at: int) -> None:
        data[at + 6:at + 8] = length.to_bytes(2, "little")
    return patch


def _jpeg_marker_damaged() -> bytes:
    """A real JPEG baseline chest file whose second Huffman table marker lost its 0xFF:
    python-gdcm, the first JPEG decoder pydicom tries, abort()s on it."""
    for path in _real_files():
        data = bytearray(path.read_bytes())
        if b"1.2.840.10008.1.2.4.50" not in data[:2048]:
            continue
        start = data.find(b"\xff\xd8", data.rfind(PIXEL_DATA_TAG))
        first = data.find(b"\xff\xc4", start)
        second = data.find(b"\xff\xc4", first + 2)
        if start > 0 and first > 0 and second > 0:
            data[second] = 0xA2
            return bytes(data)
    missing(f"no JPEG baseline file with two Huffman tables in {SHARED_DICOM}")
    raise AssertionError("unreachable")


# name -> (builder, what the refusal names). Each minimised from a hunt's input.
FINDINGS: dict[str, tuple[Callable[[], bytes], str]] = {
    # File meta group length (0002,0000) whose length is not 4: pydicom's BytesLengthException
    # while reading the file meta.
    "meta-group-length-of-3-bytes": (
        lambda: _with_element_patch(b"\x02\x00\x00\x00", b"UL", _set_short_length(3)),
        "BytesLengthException"),
    "meta-group-length-of-1-byte": (
        lambda: _with_element_patch(b"\x02\x00\x00\x00", b"UL", _set_short_length(1)),
        "BytesLengthException"),
    # An unknown VR in the file meta: pydicom's NotImplementedError while reading it.
    "meta-transfer-syntax-unknown-vr": (
        lambda: _with_element_patch(b"\x02\x00\x10\x00", b"UI", _set_vr(b"U\n")),
        "NotImplementedError"),
    # An unknown VR on a header attribute: the file is refused naming that attribute.
    "kvp-unknown-vr": (
        lambda: _with_element_patch(b"\x18\x00\x60\x00", b"DS", _set_vr(b"U\x02")),
        "KVP (0018,0060): its value representation is not one DICOM defines"),
    # A damaged JPEG stream: the decoder aborts the reading process.
    "jpeg-huffman-marker-damaged": (_jpeg_marker_damaged, "died with SIGABRT"),
}


@pytest.mark.parametrize("finding", sorted(FINDINGS))
def test_fuzz_findings_are_refused_with_their_cause(app, tmp_path, finding):
    """Through the real import (sandboxed child), the file is refused naming the cause and
    the file after it is imported."""
    build, cause = FINDINGS[finding]
    uploads = [FileStorage(io.BytesIO(build()), "found.dcm"),
               FileStorage(io.BytesIO(_factory_file(402, 24, 20)), "after.dcm")]
    summary = ingest.import_files(ingest.sources_from_uploads(uploads), actor=None,
                                  options=ingest.ImportOptions())
    found, after = summary.results
    assert found.status == "rejected"
    assert cause in (found.reason or ""), found.reason
    assert after.status == "imported"
    assert_whole(app)


def test_an_unreadable_attribute_outside_the_allow_list_is_dropped(app):
    """A damaged attribute that a teaching case does not keep (the time-zone offset) costs
    the file nothing: it is removed with the rest of what the allow-list does not keep."""
    damaged = _with_element_patch(b"\x08\x00\x01\x02", b"SH", _set_vr(b"U\x02"))
    summary = ingest.import_files(
        ingest.sources_from_uploads([FileStorage(io.BytesIO(damaged), "found.dcm")]),
        actor=None, options=ingest.ImportOptions())
    assert [r.status for r in summary.results] == ["imported"]
    assert_whole(app)
