"""Every common transfer syntax imports, decoded to the same stored values as pydicom's own
reading of the file (pydicom's sample files, relabelled as CR so that the modality check
passes; the pixel data is untouched)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.uid import DeflatedExplicitVRLittleEndian, JPEGBaseline8Bit, JPEGExtended12Bit
from sqlalchemy import select

from app.cases import pixels
from app.cases.ingest import ImportOptions, Source, import_files
from app.cases.models import CaseImage
from app.cases.storage import EXACT_FILE, image_store
from app.extensions import db
from tests.dicom_factory import cr_dataset, to_bytes

SAMPLES = {
    "JPEG-LL.dcm": "JPEG Lossless",
    "JPGLosslessP14SV1_1s_1f_8b.dcm": "JPEG Lossless, Non-Hierarchical, First-Order",
    "MR_small_jpeg_ls_lossless.dcm": "JPEG-LS Lossless",
    "JPEGLSNearLossless_16.dcm": "JPEG-LS Lossy",
    "MR_small_RLE.dcm": "RLE Lossless",
    "MR2_J2KR.dcm": "JPEG 2000 Image Compression (Lossless Only)",
    "JPEG2000.dcm": "JPEG 2000 Image Compression",
}


def _as_cr(ds: pydicom.Dataset) -> bytes:
    ds.Modality = "CR"
    if "NumberOfFrames" in ds and int(ds.NumberOfFrames) == 1:
        del ds.NumberOfFrames
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _import(data: bytes):
    [result] = import_files([Source("sample", lambda: data)], actor=None,
                            options=ImportOptions()).results
    return result


def _stored(result) -> np.ndarray:
    image = db.session.get(CaseImage, result.image_id)
    exact = image_store().read(image.storage_key, EXACT_FILE)
    offset = image.display_params["stored_offset"]
    return pixels.decode_exact16(exact).astype(np.int64) - offset


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_compressed_sample_imports_with_the_same_values(app, name):
    path = get_testdata_file(name)
    if path is None:
        pytest.fail(f"{name} missing from pydicom / pydicom-data")
    original = pydicom.dcmread(path)
    if int(original.get("NumberOfFrames", 1) or 1) != 1:
        pytest.fail(f"{name} is multi-frame; choose a single-frame sample")
    expected = original.pixel_array.astype(np.int64)
    result = _import(_as_cr(pydicom.dcmread(path)))
    assert result.status == "imported", result.reason
    image = db.session.get(CaseImage, result.image_id)
    assert SAMPLES[name] in image.transfer_syntax
    assert np.array_equal(_stored(result), expected)


@pytest.mark.parametrize("name", ["JPEG-lossy.dcm", "JPGExtended.dcm"])
def test_12_bit_lossy_jpeg_is_refused_with_the_reason(app, name):
    result = _import(_as_cr(pydicom.dcmread(get_testdata_file(name))))
    assert result.status == "rejected"
    assert "12-bit lossy JPEG (JPEG Extended, process 4) is not supported" in result.reason


@pytest.mark.parametrize("syntax", [JPEGBaseline8Bit, JPEGExtended12Bit])
def test_8_bit_jpeg_baseline_and_extended(app, syntax):
    ds = cr_dataset(rows=64, columns=48, bits_stored=8, seed=3)
    values = (ds.pixel_array % 256).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(values, mode="L").save(buffer, format="JPEG", quality=95)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.WindowCenter, ds.WindowWidth = 128, 256
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = syntax
    ds.LossyImageCompression = "01"
    expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())), dtype=np.int64)
    result = _import(to_bytes(ds))
    assert result.status == "imported", result.reason
    assert np.abs(_stored(result) - expected).max() <= 1  # decoders may round differently


def test_deflated_explicit_little_endian(app):
    ds = cr_dataset(rows=32, columns=32, seed=4)
    expected = ds.pixel_array.astype(np.int64)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    result = _import(to_bytes(ds))
    assert result.status == "imported", result.reason
    assert "Deflated" in db.session.get(CaseImage, result.image_id).transfer_syntax
    assert np.array_equal(_stored(result), expected)


def test_same_pixels_in_two_syntaxes_are_one_image(app):
    ds = pydicom.dcmread(get_testdata_file("MR_small_RLE.dcm"))
    first = _import(_as_cr(ds))
    ds = pydicom.dcmread(get_testdata_file("MR_small_RLE.dcm"))
    ds.decompress()
    second = _import(_as_cr(ds))
    assert (first.status, second.status) == ("imported", "duplicate")
    assert db.session.scalars(select(CaseImage)).all().__len__() == 1
    assert Path(get_testdata_file("MR_small_RLE.dcm")).exists()
