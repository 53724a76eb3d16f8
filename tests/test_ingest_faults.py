"""Imports that meet damage never crash and never half-import: damaged archive members (each
error the codecs raise), a full disk in the middle of an import, a decoder that dies, and
an empty archive all end as a per-file report with the reason, on the command line and on
the upload page, with the files around them still imported and nothing half-stored."""

from __future__ import annotations

import bz2
import errno
import io
import lzma
import os
import signal
import sqlite3
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from app.audit.models import AuditEvent
from app.auth.roles import Role
from app.cases import ingest, storage
from app.cases.sandbox import Rejected, run_in_process, run_limited
from app.extensions import db
from tests.dicom_factory import cr_dataset, to_bytes
from tests.forms import submit_form
from tests.test_ingest import assert_no_residue, cli_import, counts


def dicom(seed: int) -> bytes:
    return to_bytes(cr_dataset(seed=seed, rows=40, columns=32))


# ---- damaged archives, built by code ------------------------------------------------------

LOCAL_HEADER = 30  # fixed part of a local file header
CENTRAL_HEADER = 46  # fixed part of a central directory entry


def _zip(members: list[tuple[str, bytes, int]]) -> bytearray:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data, method in members:
            zf.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), data, compress_type=method)
    return bytearray(out.getvalue())


def _entries(data: bytes) -> list[tuple[zipfile.ZipInfo, int, int]]:
    """(info, offset of its compressed bytes, offset of its central directory entry)."""
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        infos, central = zf.infolist(), zf.start_dir
    found = []
    for info in infos:
        name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)
        found.append((info, info.header_offset + LOCAL_HEADER + name_len + extra_len, central))
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, central + 28)
        central += CENTRAL_HEADER + name_len + extra_len + comment_len
    return found


@dataclass(frozen=True)
class Damage:
    """A zip whose middle member ("damaged.dcm") makes zipfile or its codec raise ``raises``."""

    method: int
    spoil: Callable[[bytearray, zipfile.ZipInfo, int, int], None]
    raises: type[BaseException]
    whole_archive: bool = False  # the damage is in the directory: no member can be listed

    def build(self, before: bytes, after: bytes) -> bytes:
        data = _zip([("before.dcm", before, zipfile.ZIP_STORED),
                     ("damaged.dcm", dicom(99), self.method),
                     ("after.dcm", after, zipfile.ZIP_STORED)])
        info, start, central = _entries(data)[1]
        self.spoil(data, info, start, central)
        return bytes(data)


def _garble(data: bytearray, info: zipfile.ZipInfo, start: int, central: int) -> None:
    # Overwrite compressed bytes past the stream's own header with junk.
    data[start + 12:start + 76] = bytes(range(0xC0, 0x100))


def _bad_deflate_block(data: bytearray, info: zipfile.ZipInfo, start: int, central: int) -> None:
    data[start] = 0xFF  # block type 3 is reserved: "invalid block type"


def _bad_bzip2_block(data: bytearray, info: zipfile.ZipInfo, start: int, central: int) -> None:
    data[start + 4:start + 10] = b"\0" * 6  # the block magic after "BZh9"


def _flip_stored_byte(data: bytearray, info: zipfile.ZipInfo, start: int, central: int) -> None:
    data[start + info.compress_size // 2] ^= 0x55  # the CRC no longer matches


def _cut_stream(data: bytearray, info: zipfile.ZipInfo, start: int, central: int) -> None:
    # The directory says the member runs on past the end of the archive, as when a download
    # was cut short and the directory rebuilt.
    beyond = len(data) + 4096
    struct.pack_into("<II", data, central + 20, beyond, beyond)


def _unknown_method(data: bytearray, info: zipfile.ZipInfo, start: int, central: int) -> None:
    struct.pack_into("<H", data, central + 10, 97)  # WavPack: not something zipfile reads
    struct.pack_into("<H", data, info.header_offset + 8, 97)


def _future_zip_version(data: bytearray, info: zipfile.ZipInfo, start: int, central: int) -> None:
    struct.pack_into("<H", data, central + 6, 99)  # "needs zip 9.9 to extract"


DAMAGES = {
    "lzma": Damage(zipfile.ZIP_LZMA, _garble, lzma.LZMAError),
    "deflate": Damage(zipfile.ZIP_DEFLATED, _bad_deflate_block, zlib.error),
    "bzip2": Damage(zipfile.ZIP_BZIP2, _bad_bzip2_block, OSError),
    "crc": Damage(zipfile.ZIP_STORED, _flip_stored_byte, zipfile.BadZipFile),
    "truncated-stream": Damage(zipfile.ZIP_STORED, _cut_stream, EOFError),
    "unsupported-method": Damage(zipfile.ZIP_DEFLATED, _unknown_method, NotImplementedError),
    "zip-version": Damage(zipfile.ZIP_DEFLATED, _future_zip_version, NotImplementedError,
                          whole_archive=True),
}


@pytest.mark.parametrize("kind", sorted(DAMAGES))
def test_each_damage_raises_its_codec_error(kind):
    """The built archives really make zipfile (or the codec under it) raise that class."""
    damage = DAMAGES[kind]
    data = damage.build(dicom(1), dicom(2))
    with pytest.raises(damage.raises), zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.read("damaged.dcm")
    assert bz2  # the bzip2 codec is present, so its members are readable at all


def _expected(kind: str, archive: str) -> dict[str, str]:
    if DAMAGES[kind].whole_archive:
        return {archive: "refused", "later.dcm": "imported"}
    return {f"{archive} / before.dcm": "imported", f"{archive} / damaged.dcm": "refused",
            f"{archive} / after.dcm": "imported", "later.dcm": "imported"}


@pytest.mark.parametrize("kind", sorted(DAMAGES))
def test_damaged_member_is_refused_alone_on_the_command_line(app, tmp_path, kind):
    archive = tmp_path / "a.zip"
    archive.write_bytes(DAMAGES[kind].build(dicom(1), dicom(2)))
    (tmp_path / "later.dcm").write_bytes(dicom(3))
    result = cli_import(app, str(archive), str(tmp_path / "later.dcm"))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    shown = {}
    for line in result.output.splitlines()[:-1]:
        status, rest = line.split(maxsplit=1)
        shown[rest.split(" -> ")[0].split(": ")[0].replace(str(tmp_path) + "/", "")] = (
            status, rest)
    assert {name: status for name, (status, _) in shown.items()} == _expected(kind, "a.zip")
    refused = next(rest for status, rest in shown.values() if status == "refused")
    assert "damaged" in refused
    imported = 1 if DAMAGES[kind].whole_archive else 3
    assert counts()[1] == imported
    assert_no_residue(app, imported)


@pytest.fixture
def trainer(login_as):
    return login_as(Role.TRAINER)


def upload(client, *files: tuple[bytes, str], **fields):
    return submit_form(client, "/cases/upload", button="Import", follow_redirects=True, fields={
        **fields, "files": [(io.BytesIO(data), name) for data, name in files]})


def report(response) -> dict[str, tuple[str, str]]:
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    rows = {}
    for row in soup.select('[data-testid="file-result"]'):
        name, outcome, details = row.find_all("td")
        reason = details.select_one(".reason")
        rows[name.get_text(strip=True)] = (outcome.get_text(" ", strip=True).split()[0],
                                           reason.get_text(" ", strip=True) if reason else "")
    return rows


@pytest.mark.parametrize("kind", sorted(DAMAGES))
def test_damaged_member_is_refused_alone_on_the_upload_page(client, trainer, app, kind):
    response = upload(client, (DAMAGES[kind].build(dicom(1), dicom(2)), "a.zip"),
                      (dicom(3), "later.dcm"))
    assert response.status_code == 200
    shown = report(response)
    assert {name: outcome for name, (outcome, _) in shown.items()} == _expected(kind, "a.zip")
    assert all(reason for outcome, reason in shown.values() if outcome == "refused")
    imported = 1 if DAMAGES[kind].whole_archive else 3
    assert counts()[1] == imported
    assert_no_residue(app, imported)


@pytest.mark.parametrize("kind", sorted(DAMAGES))
def test_nothing_escapes_import_files(app, kind):
    from werkzeug.datastructures import FileStorage

    uploads = [FileStorage(io.BytesIO(DAMAGES[kind].build(dicom(1), dicom(2))), "a.zip"),
               FileStorage(io.BytesIO(dicom(3)), "later.dcm")]
    summary = ingest.import_files(ingest.sources_from_uploads(uploads), actor=None,
                                  options=ingest.ImportOptions())
    statuses = {r.name: r.status for r in summary.results}
    assert statuses == {k: v.replace("refused", "rejected")
                        for k, v in _expected(kind, "a.zip").items()}
    for result in summary.results:
        assert result.status != "rejected" or result.reason


# ---- a full disk ----------------------------------------------------------------------------


class FullDisk:
    """The image storage runs out of space after ``files_fit`` files: the next write puts
    down what fits (half of it) and fails with ENOSPC, as a real full disk does.

    The sandboxed child writes an image's files; here it runs in this process, so that the
    full disk reaches it, one file at a time, so that the files fill the disk in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, files_fit: int) -> None:
        self.files_left = files_fit
        real_write = storage.write_image_file

        def write(folder: Path, name: str, data: bytes) -> None:
            if self.files_left <= 0:
                (folder / name).write_bytes(data[: len(data) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / name))
            self.files_left -= 1
            real_write(folder, name, data)

        monkeypatch.setattr(storage, "write_image_file", write)
        monkeypatch.setattr(ingest, "run_limited", run_in_process)
        monkeypatch.setattr(ingest, "import_workers", lambda: 1)


FILES_PER_IMAGE = 6  # DICOM, thumbnail, preview, full-resolution JPEG, two HTJ2K streams


def import_events() -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == "cases.import")))


def test_full_disk_on_the_command_line_reports_each_file_and_stops_cleanly(
        app, tmp_path, monkeypatch):
    for n in range(3):
        (tmp_path / f"{n}.dcm").write_bytes(dicom(10 + n))
    FullDisk(monkeypatch, files_fit=FILES_PER_IMAGE + 2)  # the second image stops half-way
    result = cli_import(app, str(tmp_path))
    assert "Traceback" not in result.output
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith("imported") and "0.dcm -> case" in lines[0]
    assert lines[1].startswith("refused") and "1.dcm: storage full" in lines[1]
    assert lines[2].startswith("refused") and "2.dcm: not tried" in lines[2]
    assert "1 imported, 0 duplicate, 2 refused" in result.output
    assert "The import stopped: the image storage is full" in result.output
    # What was imported is committed, stored whole and audited; nothing of the rest remains.
    assert counts() == (1, 1)
    assert_no_residue(app, 1)
    [event] = import_events()
    assert event.detail["imported"] == 1 and event.detail["rejected"] == 2
    assert event.detail["stopped"] == "the image storage is full"


def test_full_disk_on_the_upload_page_shows_the_report(client, trainer, app, monkeypatch):
    FullDisk(monkeypatch, files_fit=FILES_PER_IMAGE + 1)
    response = upload(client, (dicom(20), "a.dcm"), (dicom(21), "b.dcm"), (dicom(22), "c.dcm"))
    assert response.status_code == 200
    shown = report(response)
    assert shown["a.dcm"][0] == "imported"
    assert shown["b.dcm"][0] == "refused" and shown["b.dcm"][1].startswith("storage full")
    assert shown["c.dcm"][0] == "refused" and shown["c.dcm"][1].startswith("not tried")
    page = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    assert "image storage is full" in page.select_one('[data-testid="import-stopped"]').text
    assert counts() == (1, 1)
    assert_no_residue(app, 1)
    assert import_events()[0].detail["imported"] == 1


def test_full_disk_at_the_first_file_is_refused_with_the_reason(client, trainer, app,
                                                                  monkeypatch):
    FullDisk(monkeypatch, files_fit=0)
    response = upload(client, (dicom(23), "a.dcm"))
    assert response.status_code == 200  # the job page: the upload was taken, its files refused
    assert report(response)["a.dcm"][1].startswith("storage full")
    assert counts() == (0, 0)
    assert_no_residue(app)


# ---- a decoder that dies --------------------------------------------------------------------


def abort_like_gdcm(data: bytes, options: object) -> None:
    """What python-gdcm does on some damaged codestreams: abort() the process."""
    os.abort()


def crash_with_segfault(data: bytes, options: object) -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def test_decoder_abort_is_reported_as_a_crash_not_a_memory_limit():
    with pytest.raises(Rejected) as refused:
        run_limited(abort_like_gdcm, (b"", None), timeout=30, memory_bytes=1024**3)
    reason = str(refused.value)
    assert "SIGABRT" in reason and "while decoding" in reason
    assert "memory" not in reason


def test_decoder_segfault_is_named():
    with pytest.raises(Rejected, match="SIGSEGV"):
        run_limited(crash_with_segfault, (b"", None), timeout=30, memory_bytes=0)


def test_decoder_abort_in_an_import_is_that_files_refusal(app, tmp_path, monkeypatch):
    (tmp_path / "a.dcm").write_bytes(dicom(30))
    monkeypatch.setattr(ingest, "process_dicom", abort_like_gdcm)
    result = cli_import(app, str(tmp_path / "a.dcm"))
    assert result.exit_code == 1
    assert "died with SIGABRT" in result.output
    assert "memory limit" not in result.output
    assert counts() == (0, 0)


# ---- an empty archive -----------------------------------------------------------------------


def empty_zip(with_folder: bool = False) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        if with_folder:
            zf.writestr("scans/", b"")
    return out.getvalue()


@pytest.mark.parametrize("with_folder", [False, True])
def test_empty_zip_on_the_command_line_is_an_error_that_says_so(app, tmp_path, with_folder):
    archive = tmp_path / "empty.zip"
    archive.write_bytes(empty_zip(with_folder))
    result = cli_import(app, str(archive))
    assert result.exit_code == 1
    assert "empty.zip: the .zip archive holds no files" in result.output
    assert "0 imported, 0 duplicate, 1 refused" in result.output


def test_empty_folder_on_the_command_line_is_an_error_that_says_so(app, tmp_path):
    (tmp_path / "nothing").mkdir()
    result = cli_import(app, str(tmp_path / "nothing"))
    assert result.exit_code == 1
    assert "the folder holds no files" in result.output


def test_empty_zip_on_the_upload_page_shows_the_reason(client, trainer, app):
    response = upload(client, (empty_zip(), "empty.zip"))
    assert response.status_code == 200  # the job page: the upload was taken, its files refused
    assert report(response)["empty.zip"] == (
        "refused", "the .zip archive holds no files: nothing was imported")


def _sqlite_full() -> Exception:
    return sqlite3.OperationalError("database or disk is full")


def _postgres_full() -> Exception:
    return psycopg.errors.DiskFull("could not extend file: No space left on device")


@pytest.mark.parametrize("driver_error", [_sqlite_full, _postgres_full])
def test_full_database_disk_stops_the_import_with_nothing_half_stored(
        app, tmp_path, monkeypatch, driver_error):
    for n in range(3):
        (tmp_path / f"{n}.dcm").write_bytes(dicom(40 + n))
    real_record = ingest.record
    cases_created = []

    def record(action, **detail):
        if action == "case.create":
            cases_created.append(detail)
            if len(cases_created) == 2:  # the second image's commit finds the disk full
                raise OperationalError("INSERT INTO audit_event ...", {}, driver_error())
        return real_record(action, **detail)

    monkeypatch.setattr(ingest, "record", record)
    result = cli_import(app, str(tmp_path))
    assert "Traceback" not in result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("imported")
    assert "1.dcm: storage full" in lines[1]
    assert "2.dcm: not tried" in lines[2]
    assert counts() == (1, 1)
    assert_no_residue(app, 1)
    assert import_events()[0].detail["imported"] == 1
