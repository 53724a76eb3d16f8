"""A batch import parses its files on several cores at once (INGEST_WORKERS) and stores them
one by one in the order given: same results as a one-by-one import, a crash or a limit
refuses one file only, and an import that stops takes its children with it."""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from app.cases import ingest
from app.cases.ingest import ImportOptions, import_files, sources_from_paths
from app.cases.models import CaseImage
from app.cases.processing import process_dicom
from app.cases.storage import EXACT_FILE
from app.extensions import db
from tests.dicom_factory import cr_dataset, to_bytes
from tests.test_ingest import assert_no_residue, cli_import, counts

CRASH = b"CRASH-THIS-CHILD"
SLOW = b"SLOW-THIS-CHILD"
GREEDY = b"ALLOCATE-TOO-MUCH"


def troubled_processing(data: bytes, options: object) -> object:
    """process_dicom, except for files marked to crash, stall or need too much memory."""
    if CRASH in data:
        os.kill(os.getpid(), signal.SIGSEGV)
    if SLOW in data:
        time.sleep(60)
    if GREEDY in data:
        return len(bytearray(3 * 1024**3))
    return process_dicom(data, options)  # type: ignore[arg-type]


def batch(folder: Path) -> list[str]:
    """Eleven files whose results depend on the order they are stored in: two images of one
    study, a duplicate of an earlier file, damaged and non-DICOM files between them."""
    pa = cr_dataset(seed=40)
    lateral = cr_dataset(seed=41, ViewPosition="LL", StudyInstanceUID=pa.StudyInstanceUID)
    files = {
        "00.dcm": to_bytes(cr_dataset(seed=42)),
        "01.dcm": to_bytes(pa),
        "02.dcm": b"garbage",
        "03.dcm": to_bytes(cr_dataset(seed=42)),  # the same pixels as 00
        "04.dcm": to_bytes(cr_dataset(seed=43)),
        "05.dcm": to_bytes(lateral),  # joins 01's case
        "06.dcm": to_bytes(cr_dataset(seed=44, modality="CT")),
        "07.dcm": to_bytes(cr_dataset(seed=45)),
        "08.dcm": to_bytes(cr_dataset(seed=46))[:600],
        "09.dcm": to_bytes(cr_dataset(seed=43)),  # the same pixels as 04
        "10.dcm": to_bytes(cr_dataset(seed=47)),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return sorted(files)


def outcome(output: str) -> list[tuple[str, str, str]]:
    """(status, file, what) per line, case numbers replaced by their order of first
    appearance, so two imports into fresh libraries compare equal."""
    cases: dict[str, str] = {}
    rows = []
    for line in output.splitlines()[:-1]:
        status, rest = line.split(maxsplit=1)
        name, _, what = rest.partition(" -> ") if status == "imported" else rest.partition(": ")
        what = re.sub(r"(?<=case )\d+",
                      lambda m: cases.setdefault(m.group(), f"#{len(cases) + 1}"), what)
        rows.append((status, Path(name).name, what))
    return rows


SERIAL = [
    ("imported", "00.dcm", "case #1"),
    ("imported", "01.dcm", "case #2"),
    ("refused", "02.dcm", "not a DICOM file"),
    ("duplicate", "03.dcm", "the same image is already in case #1; not stored again"),
    ("imported", "04.dcm", "case #3"),
    ("imported", "05.dcm", "case #2"),
    ("refused", "06.dcm", "modality CT is not a chest radiograph: only CR and DX images are "
                          "accepted (Modality (0008,0060))"),
    ("imported", "07.dcm", "case #4"),
]


@pytest.mark.parametrize("workers", [1, 3])
def test_results_are_those_of_a_one_by_one_import(app, tmp_path, monkeypatch, workers):
    app.config["INGEST_WORKERS"] = workers
    batch(tmp_path)
    at_once = {"now": 0, "most": 0}
    lock = threading.Lock()
    parse = ingest._process_sandboxed

    def counted(*args: object) -> object:
        with lock:
            at_once["now"] += 1
            at_once["most"] = max(at_once["most"], at_once["now"])
        try:
            return parse(*args)  # type: ignore[arg-type]
        finally:
            with lock:
                at_once["now"] -= 1

    monkeypatch.setattr(ingest, "_process_sandboxed", counted)
    result = cli_import(app, str(tmp_path))
    rows = outcome(result.output)
    assert rows[:8] == SERIAL
    assert rows[8][:2] == ("refused", "08.dcm")
    assert rows[9] == ("duplicate", "09.dcm",
                       "the same image is already in case #3; not stored again")
    assert rows[10] == ("imported", "10.dcm", "case #5")
    assert counts() == (5, 6)
    assert_no_residue(app, 6)
    # Never more children than configured, and several at once when allowed.
    assert at_once["most"] == workers


def test_a_crash_or_the_memory_limit_refuses_that_file_only(app, tmp_path, monkeypatch):
    app.config["INGEST_WORKERS"] = 2
    app.config["INGEST_MEMORY_LIMIT"] = 2 * 1024**3
    monkeypatch.setattr(ingest, "process_dicom", troubled_processing)
    for n in range(4):
        (tmp_path / f"{n}.dcm").write_bytes(to_bytes(cr_dataset(seed=50 + n)))
    (tmp_path / "1.dcm").write_bytes((tmp_path / "1.dcm").read_bytes() + CRASH)
    (tmp_path / "2.dcm").write_bytes((tmp_path / "2.dcm").read_bytes() + GREEDY)
    rows = outcome(cli_import(app, str(tmp_path)).output)
    assert [(status, name) for status, name, _ in rows] == [
        ("imported", "0.dcm"), ("refused", "1.dcm"), ("refused", "2.dcm"),
        ("imported", "3.dcm")]
    assert "died with SIGSEGV" in rows[1][2]
    assert "memory" in rows[2][2]
    assert counts() == (2, 2)


def test_an_import_that_stops_kills_its_children(app, tmp_path, monkeypatch):
    """A worker shutting down (or any error while listing or storing) ends the import at
    once: the files being parsed are not waited for and no child outlives it."""
    app.config["INGEST_WORKERS"] = 2
    app.config["INGEST_TIME_LIMIT"] = 45
    monkeypatch.setattr(ingest, "process_dicom", troubled_processing)
    for n in (0, 1):
        (tmp_path / f"{n}.dcm").write_bytes(to_bytes(cr_dataset(seed=60 + n)) + SLOW)

    class Shutdown(BaseException):  # as SystemExit or KeyboardInterrupt in a worker
        pass

    def items():
        yield from sources_from_paths([tmp_path])
        time.sleep(1)  # both children are parsing
        raise Shutdown

    started = time.monotonic()
    with pytest.raises(Shutdown):
        import_files(items(), actor=None, options=ImportOptions(source="test"))
    assert time.monotonic() - started < 30  # the children were not waited for
    db.session.rollback()
    deadline = time.monotonic() + 10
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert multiprocessing.active_children() == []
    assert db.session.scalars(select(CaseImage)).all() == []
    assert_no_residue(app)


def test_a_source_can_ask_for_every_earlier_file_to_be_stored(app, tmp_path):
    """What a PACS import relies on to note the study in hand: after ALL_STORED, the next
    item is asked for only once every file before it is recorded."""
    app.config["INGEST_WORKERS"] = 2
    recorded: list[str] = []
    seen_before_next: list[list[str]] = []
    files = {f"{n}.dcm": to_bytes(cr_dataset(seed=70 + n)) for n in range(4)}

    def source(name: str) -> ingest.Source:
        return ingest.Source(name, lambda: files[name])

    def items():
        yield source("0.dcm")
        yield source("1.dcm")
        yield ingest.ALL_STORED
        seen_before_next.append(list(recorded))
        yield source("2.dcm")
        yield ingest.ALL_STORED
        seen_before_next.append(list(recorded))
        yield source("3.dcm")

    summary = import_files(items(), actor=None, options=ImportOptions(source="test"),
                           on_result=lambda result: recorded.append(result.name))
    assert [r.status for r in summary.results] == ["imported"] * 4
    assert seen_before_next == [["0.dcm", "1.dcm"], ["0.dcm", "1.dcm", "2.dcm"]]
    assert recorded == ["0.dcm", "1.dcm", "2.dcm", "3.dcm"]


def test_the_children_write_the_images_files_and_send_back_none_of_their_bytes(
        app, tmp_path, monkeypatch):
    """The importing process's share of a file stays small (two children on two cores are
    then ~2x one): each child writes its image's files into the import's staging folder,
    and what comes back through the pipe is the image's description, not its bytes."""
    received: list[object] = []
    sandboxed = ingest.run_limited

    def watched(fn, args, **limits):  # type: ignore[no-untyped-def]
        processed = sandboxed(fn, args, **limits)
        received.append(processed)
        return processed

    monkeypatch.setattr(ingest, "run_limited", watched)
    for n in range(3):
        (tmp_path / f"{n}.dcm").write_bytes(to_bytes(cr_dataset(seed=70 + n)))
    (tmp_path / "3.dcm").write_bytes(b"not an image")
    summary = import_files(sources_from_paths([tmp_path]), actor=None,
                           options=ImportOptions(source="test"))
    assert [r.status for r in summary.results] == ["imported"] * 3 + ["rejected"]
    assert len(received) == 3
    for processed in received:
        assert all(len(getattr(processed, name)) == 0 for name in (
            "dicom", "thumbnail_jpeg", "preview_jpeg", "display_jpeg", "approx_htj2k",
            "exact16"))
    images = db.session.scalars(select(CaseImage).order_by(CaseImage.id)).all()
    for image in images:
        folder = store_of(app).folder(image.storage_key)
        assert image.sizes["dicom"] == (folder / "image.dcm").stat().st_size > 0
        assert image.sizes["exact"] == (folder / EXACT_FILE).stat().st_size > 0
    assert_no_residue(app, 3)


def store_of(app):  # type: ignore[no-untyped-def]
    from app.cases.storage import ImageStore

    return ImageStore(Path(app.config["IMAGE_STORAGE_PATH"]))
