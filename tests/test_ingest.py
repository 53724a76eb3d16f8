"""Importing DICOM into the case library: real files, hostile files, duplicates, no residue."""

from __future__ import annotations

import io
import os
import time
import zipfile
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from sqlalchemy import func, select

from app.cases.models import Case, CaseImage
from app.cases.sandbox import LimitExceeded, Rejected, run_limited
from app.cases.storage import ImageStore
from app.extensions import db
from tests.dicom_factory import cr_dataset, to_bytes
from tests.realservers import missing

SHARED_DICOM = Path(__file__).resolve().parents[2] / "shared" / "cxr" / "dicom"
RG1 = ["RG1_UNCR.dcm", "RG1_J2KR.dcm", "RG1_J2KI.dcm"]


def cli_import(app, *args: str):
    return app.test_cli_runner().invoke(args=["cases", "import", *args])


def counts() -> tuple[int, int]:
    return (db.session.scalar(select(func.count(Case.id))),
            db.session.scalar(select(func.count(CaseImage.id))))


def store(app) -> ImageStore:
    return ImageStore(Path(app.config["IMAGE_STORAGE_PATH"]))


def assert_no_residue(app, expected_images: int = 0) -> None:
    """Exactly the committed images are stored; nothing staged or half-written remains."""
    image_store = store(app)
    assert len(image_store.keys()) == expected_images
    staging = image_store.staging_root
    assert not staging.exists() or not any(staging.iterdir())
    for key in image_store.keys():  # noqa: SIM118 (a method, not a dict)
        assert not [p for p in image_store.folder(key).iterdir() if p.name.endswith(".tmp")]


def test_rg1_in_three_transfer_syntaxes(app, tmp_path):
    paths = [get_testdata_file(name) for name in RG1]
    result = cli_import(app, *paths)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("imported") and "RG1_UNCR.dcm" in lines[0]
    # JPEG 2000 lossless holds exactly the same pixels: reported as a duplicate, not stored.
    assert lines[1].startswith("duplicate") and "already in case" in lines[1]
    assert lines[2].startswith("imported")  # lossy JPEG 2000: different pixels
    # The three files share one (de-identified) study: imported together, they form one case.
    assert counts() == (1, 2)
    image = db.session.scalars(select(CaseImage).order_by(CaseImage.id)).first()
    assert (image.modality, image.rows, image.columns) == ("CR", 1955, 1841)
    assert image.display_params["invert"] is True  # MONOCHROME1
    assert image.case.sex in ("M", "F", "O", None)
    assert_no_residue(app, 2)


def test_shared_real_dicom_files_import_or_give_a_reason(app):
    if not SHARED_DICOM.is_dir():
        missing(f"real CXR DICOM files not found at {SHARED_DICOM}")
    result = cli_import(app, str(SHARED_DICOM))
    outcome = {}
    for line in result.output.splitlines()[:-1]:
        status, rest = line.split(maxsplit=1)
        outcome[Path(rest.split(" -> ")[0].split(": ")[0]).name] = (status, rest)
    assert set(outcome) == {p.name for p in SHARED_DICOM.iterdir()}
    for name, (status, rest) in outcome.items():
        assert status in ("imported", "duplicate", "refused"), name
        if status == "refused":
            assert ": " in rest and len(rest.split(": ", 1)[1]) > 10, name
    # No preamble or file meta: refused, unless explicitly allowed on the command line.
    assert outcome["CR-MONO1-10-chest.dcm"][0] == "refused"
    assert "--allow-no-meta" in outcome["CR-MONO1-10-chest.dcm"][1]
    allowed = cli_import(app, "--allow-no-meta", str(SHARED_DICOM / "CR-MONO1-10-chest.dcm"))
    assert allowed.exit_code == 0, allowed.output
    assert allowed.output.startswith("imported")


def test_folder_recursion_and_zip_archives(app, tmp_path):
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    (nested / "one.dcm").write_bytes(to_bytes(cr_dataset(seed=1)))
    archive = tmp_path / "batch.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("two.dcm", to_bytes(cr_dataset(seed=2)))
        zf.writestr("sub/three.dcm", to_bytes(cr_dataset(seed=3)))
        zf.writestr("notes.txt", b"not a dicom file")
    result = cli_import(app, str(tmp_path))
    assert result.exit_code == 1  # one refused member
    assert counts()[1] == 3
    assert "notes.txt: not a DICOM file" in result.output
    assert_no_residue(app, 3)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"hello, not a dicom", "not a DICOM file"),
        (to_bytes(cr_dataset(modality="MR")), "modality MR is not a chest radiograph"),
        (to_bytes(cr_dataset(NumberOfFrames=2)), "multi-frame"),
        (to_bytes(cr_dataset(photometric="RGB", SamplesPerPixel=3)), "greyscale"),
    ],
)
def test_bad_files_are_refused_with_a_reason(app, tmp_path, data, reason):
    path = tmp_path / "file.dcm"
    path.write_bytes(data)
    result = cli_import(app, str(path))
    assert result.exit_code == 1
    assert reason in result.output
    assert counts() == (0, 0)
    assert_no_residue(app)


def test_huge_declared_dimensions_are_refused_before_decoding(app, tmp_path):
    ds = cr_dataset(rows=8, columns=8)
    ds.Rows, ds.Columns = 60000, 60000  # 7 GB if anyone allocated it
    path = tmp_path / "huge.dcm"
    path.write_bytes(to_bytes(ds))
    started = time.monotonic()
    result = cli_import(app, str(path))
    assert "the limit is 6000 x 6000" in result.output
    assert time.monotonic() - started < 30
    assert counts() == (0, 0)


def test_truncated_pixel_data_is_refused(app, tmp_path):
    data = to_bytes(cr_dataset(rows=64, columns=64))
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[:-1000])
    result = cli_import(app, str(path))
    assert result.exit_code == 1
    assert "truncated" in result.output or "could not be read" in result.output
    assert counts() == (0, 0)
    assert_no_residue(app)


def test_traversal_absolute_and_link_entries_write_nothing(app, tmp_path):
    archive = tmp_path / "evil.zip"
    good = to_bytes(cr_dataset(seed=5))
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../../escaped.dcm", good)
        zf.writestr("/abs/escaped2.dcm", good)
        link = zipfile.ZipInfo("link.dcm")
        link.external_attr = (0o120777 << 16)
        zf.writestr(link, "/etc/passwd")
        zf.writestr("fine.dcm", to_bytes(cr_dataset(seed=6)))
    result = cli_import(app, str(archive))
    assert "path with '..' in the archive: not read" in result.output
    assert "absolute path in the archive: not read" in result.output
    assert "symbolic link in the archive: not read" in result.output
    assert counts()[1] == 1  # only fine.dcm
    written = [p for p in tmp_path.parent.rglob("escaped*")]
    assert written == []
    assert not Path("/abs/escaped2.dcm").exists()
    assert_no_residue(app, 1)


def test_zip_bomb_is_refused_before_extraction(app, tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.dcm", b"\0" * (64 * 1024 * 1024))
    assert archive.stat().st_size < 1024 * 1024
    result = cli_import(app, str(archive))
    assert result.exit_code == 1
    assert "possible zip bomb" in result.output
    assert counts() == (0, 0)


def test_archive_entry_count_and_size_limits(app, tmp_path):
    app.config["ARCHIVE_MAX_ENTRIES"] = 3
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for n in range(5):
            zf.writestr(f"{n}.dcm", b"x")
    result = cli_import(app, str(archive))
    assert "the archive has 5 files; the limit is 3" in result.output
    app.config["ARCHIVE_MAX_ENTRIES"] = 2000
    app.config["ARCHIVE_MAX_TOTAL_BYTES"] = 1000
    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w") as zf:
        zf.writestr("a.dcm", b"y" * 5000)
    assert "would unpack to" in cli_import(app, str(big)).output


def test_damaged_zip_is_refused(app, tmp_path):
    archive = tmp_path / "broken.zip"
    archive.write_bytes(b"PK\x03\x04" + os.urandom(200))
    result = cli_import(app, str(archive))
    assert "damaged or not a zip file" in result.output


def test_one_bad_file_never_loses_the_others(app, tmp_path):
    for n in range(3):
        (tmp_path / f"good{n}.dcm").write_bytes(to_bytes(cr_dataset(seed=10 + n)))
    (tmp_path / "bad.dcm").write_bytes(b"garbage")
    result = cli_import(app, str(tmp_path))
    assert result.exit_code == 1
    assert counts() == (3, 3)
    assert_no_residue(app, 3)


def test_images_of_one_study_become_one_case(app, tmp_path):
    pa = cr_dataset(seed=20)
    lateral = cr_dataset(seed=21, ViewPosition="LL", StudyInstanceUID=pa.StudyInstanceUID)
    (tmp_path / "pa.dcm").write_bytes(to_bytes(pa))
    (tmp_path / "lat.dcm").write_bytes(to_bytes(lateral))
    assert cli_import(app, str(tmp_path)).exit_code == 0
    assert counts() == (1, 2)
    views = sorted(db.session.scalars(select(CaseImage.view)))
    assert views == ["LATERAL", "PA"]


def test_parsing_has_a_time_limit():
    with pytest.raises(LimitExceeded, match=r"longer than the 0\.5 s limit"):
        run_limited(time.sleep, (10,), timeout=0.5, memory_bytes=0)


def _allocate(n: int) -> int:
    return len(bytearray(n))


def test_parsing_has_a_memory_limit():
    with pytest.raises(Rejected, match="memory"):
        run_limited(_allocate, (3 * 1024**3,), timeout=30, memory_bytes=1024**3)
    assert run_limited(_allocate, (1024,), timeout=30, memory_bytes=1024**3) == 1024


def test_failed_database_write_leaves_no_image_behind(app, tmp_path, monkeypatch):
    from app.cases import ingest

    (tmp_path / "a.dcm").write_bytes(to_bytes(cr_dataset(seed=30)))

    def explode(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(ingest, "record", explode)
    with pytest.raises(RuntimeError):
        ingest.import_files(ingest.sources_from_paths([tmp_path / "a.dcm"]), actor=None,
                            options=ingest.ImportOptions())
    db.session.rollback()
    assert counts() == (0, 0)
    assert_no_residue(app)


def test_in_memory_upload_zip_members(app, tmp_path):
    """The upload path reads archive members from the request stream, not from disk."""
    from werkzeug.datastructures import FileStorage

    from app.cases.ingest import ImportOptions, import_files, sources_from_uploads

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("x.dcm", to_bytes(cr_dataset(seed=40)))
    buffer.seek(0)
    upload = FileStorage(stream=buffer, filename="../../x.zip")
    summary = import_files(sources_from_uploads([upload]), actor=None, options=ImportOptions())
    assert [r.status for r in summary.results] == ["imported"]
    assert summary.results[0].name == "x.zip / x.dcm"
