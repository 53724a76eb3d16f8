"""The stored, de-identified DICOM is valid: dciodvfy (Debian's dicom3tools) finds no kind of
error in it that the uploaded file did not have, and the errors planted values caused are gone."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from app.cases.processing import ProcessOptions, process_dicom
from tests.dicom_factory import cr_dataset, to_bytes
from tests.realservers import missing

DCIODVFY = os.environ.get("CXR_ACADEMY_DCIODVFY", "/usr/bin/dciodvfy")
SHARED_DICOM = Path(__file__).resolve().parents[2] / "shared" / "cxr" / "dicom"
OPTIONS = ProcessOptions(secret=b"validity-test-secret", allow_no_meta=True)

# Values differ between input and output (UIDs, dates, the bad value itself): an error's
# kind is its message without them.
_VALUES = re.compile(r"= <[^>]*>|<[\d.]+>|'[^']*'|\(0x[0-9a-f]{2}\)|==? \d+")


@pytest.fixture
def dciodvfy() -> str:
    if not os.access(DCIODVFY, os.X_OK):
        missing(f"dciodvfy not found at {DCIODVFY} (install Debian's 'dicom3tools')")
    return DCIODVFY


def error_kinds(program: str, data: bytes, tmp_path: Path) -> set[str]:
    path = tmp_path / "checked.dcm"
    path.write_bytes(data)
    result = subprocess.run([program, str(path)], capture_output=True, text=True, timeout=60)
    lines = (result.stdout + result.stderr).splitlines()
    return {_VALUES.sub("", line).strip() for line in lines if line.startswith("Error")}


def _shared_files() -> list[Path]:
    return sorted(SHARED_DICOM.glob("*.dcm")) if SHARED_DICOM.is_dir() else []


def test_real_radiographs_gain_no_kind_of_error(dciodvfy, tmp_path):
    files = _shared_files()
    if not files:
        missing(f"real CXR DICOM files not found at {SHARED_DICOM}")
    for path in files:
        data = path.read_bytes()
        stored = process_dicom(data, OPTIONS).dicom
        new = error_kinds(dciodvfy, stored, tmp_path) - error_kinds(dciodvfy, data, tmp_path)
        assert not new, (path.name, sorted(new))


def _plant(ds: Dataset, keyword: str, vr: str, value: bytes) -> None:
    if len(value) % 2:
        value += b" "
    tag = Tag(keyword)
    ds[tag] = RawDataElement(tag, vr, len(value), value, 0, False, True)


@pytest.mark.parametrize(
    ("modality", "keyword", "vr", "value"),
    [
        ("DX", "WindowCenter", "DS", b"nan"),
        ("DX", "WindowWidth", "DS", b"-5"),
        ("CR", "WindowWidth", "DS", b"0"),
        ("CR", "PixelSpacing", "DS", b"0.1\\0.1\\0.1"),  # wrong multiplicity
        ("DX", "PixelSpacing", "DS", b"0\\0"),
        ("CR", "KVP", "DS", b"inf"),
        ("CR", "SeriesNumber", "IS", b"1.5"),
        ("DX", "PatientSize", "DS", b"nan"),
        ("CR", "ImageType", "CS", b"ORIGINAL\\PRIMARY\\WARD 7 NIGHT"),
        ("CR", "ViewPosition", "CS", b"pa erect"),
        ("DX", "ExposureTime", "IS", b"1\\2"),
    ],
)
def test_planted_bad_values_are_not_stored(dciodvfy, tmp_path, modality, keyword, vr, value):
    def upload(plant: bool) -> bytes:
        ds = cr_dataset(modality=modality, seed=3, PresentationIntentType="FOR PRESENTATION")
        if plant:
            _plant(ds, keyword, vr, value)
        return to_bytes(ds)

    base = error_kinds(dciodvfy, upload(plant=False), tmp_path)
    planted = upload(plant=True)
    before = error_kinds(dciodvfy, planted, tmp_path)
    caused = before - base
    assert caused, "the planted value is an error dciodvfy reports"
    after = error_kinds(dciodvfy, process_dicom(planted, OPTIONS).dicom, tmp_path)
    assert not after - before, sorted(after - before)
    assert not caused & after, sorted(caused & after)
