"""Nothing but the declared image survives in the stored Pixel Data: no text in compressed
streams (JPEG COM/APPn, JPEG 2000 COM, bytes after the end), no bytes past the declared
frame, no payload in the bits above Bits Stored; and no non-finite number reaches JSON."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
import openjpeg
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import (
    JPEG2000,
    UID,
    ExplicitVRBigEndian,
    HTJ2KLossless,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from sqlalchemy import select

from app.auth.roles import Role
from app.cases import codestream, pixel_data, pixels
from app.cases.ingest import ImportOptions, Source, import_files
from app.cases.models import Case, CaseImage
from app.cases.reads import save_read
from app.cases.storage import DICOM_FILE, image_store
from app.extensions import db
from app.schemes.registry import get_scheme
from tests.conftest import login, sqlite_only
from tests.dicom_factory import cr_dataset, to_bytes

TOKEN = b"PHI-PIXEL-TOKEN-Quarrington"

# ------------------------------------------------------------------- planting text


def _segment(marker: int, body: bytes) -> bytes:
    return struct.pack(">HH", marker, len(body) + 2) + body


def plant_jpeg(frame: bytes, *, after_scan: bool = True) -> bytes:
    """Every free-text place of a T.81 / JPEG-LS stream: JFIF, EXIF, XMP and a COM after
    the start of image, a COM after the scan (which CharLS, the JPEG-LS decoder, does not
    read, so not there), and bytes after the end of image."""
    assert frame[:2] == b"\xff\xd8"
    head = b"".join([
        _segment(0xFFE0, b"JFIF\x00\x01\x02\x00\x00\x01\x00\x01\x00\x00" + TOKEN),
        _segment(0xFFE1, b"Exif\x00\x00" + TOKEN),
        _segment(0xFFE1, b"http://ns.adobe.com/xap/1.0/\x00<x>" + TOKEN + b"</x>"),
        _segment(0xFFED, b"Photoshop 3.0\x00" + TOKEN),
        _segment(0xFFFE, b"patient " + TOKEN),
    ])
    body = frame[2 : frame.rindex(b"\xff\xd9")]  # without the even-length padding
    tail = _segment(0xFFFE, TOKEN) if after_scan else b""
    return frame[:2] + head + body + tail + b"\xff\xd9" + TOKEN


def plant_j2k(frame: bytes) -> bytes:
    """A COM in the main header and in the first tile-part header (its Psot grows), and
    bytes after the end of the codestream."""
    assert frame[:4] == b"\xff\x4f\xff\x51"
    (siz_length,) = struct.unpack_from(">H", frame, 4)
    main_end = 4 + siz_length
    com = _segment(0xFF64, b"\x00\x01" + TOKEN)
    frame = frame[:main_end] + com + frame[main_end:]
    sot = frame.index(b"\xff\x90\x00\x0a")
    tile, psot, part, parts = struct.unpack_from(">HIBB", frame, sot + 4)
    grown = struct.pack(">HIBB", tile, psot + len(com) if psot else 0, part, parts)
    frame = frame[: sot + 4] + grown + com + frame[sot + 12 :]
    return frame[: frame.rindex(b"\xff\xd9") + 2] + TOKEN


def _frame(ds: pydicom.Dataset) -> bytes:
    return next(generate_frames(ds.PixelData, number_of_frames=1))


def _encapsulated(ds: pydicom.Dataset, syntax: UID, frame: bytes) -> pydicom.Dataset:
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = syntax
    return ds


def _sample(name: str) -> pydicom.Dataset:
    ds = pydicom.dcmread(get_testdata_file(name))
    ds.Modality = "CR"
    if "NumberOfFrames" in ds:
        del ds.NumberOfFrames
    return ds


def _pillow_jpeg(syntax: UID) -> pydicom.Dataset:
    ds = cr_dataset(rows=64, columns=48, bits_stored=8, seed=3)
    values = (ds.pixel_array % 256).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(values, mode="L").save(buffer, format="JPEG", quality=90)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.LossyImageCompression = "01"
    return _encapsulated(ds, syntax, buffer.getvalue())


def _pydicom_encoded(syntax: UID, **options) -> pydicom.Dataset:
    ds = cr_dataset(rows=96, columns=80, bits_stored=12, seed=5)
    ds.compress(syntax, generate_instance_uid=False, **options)
    return ds


def _relabelled(name: str, syntax: UID) -> pydicom.Dataset:
    ds = _sample(name)
    ds.file_meta.TransferSyntaxUID = syntax
    return ds


# Every compressed syntax the importer decodes, built with the encoders in the environment
# (Pillow for JPEG, CharLS for JPEG-LS, OpenJPEG for JPEG 2000) or pydicom's own samples
# where no encoder exists (JPEG lossless). Baseline-process JPEG is valid in an Extended
# stream; a Part 1 JPEG 2000 stream is a valid HTJ2K one (HTJ2K decoders read both).
SYNTAXES = {
    "jpeg-baseline": lambda: _pillow_jpeg(JPEGBaseline8Bit),
    "jpeg-extended": lambda: _pillow_jpeg(JPEGExtended12Bit),
    "jpeg-lossless-sv1": lambda: _sample("JPEG-LL.dcm"),
    "jpeg-lossless-8bit": lambda: _sample("JPGLosslessP14SV1_1s_1f_8b.dcm"),
    "jpeg-lossless-process14": lambda: _relabelled("JPEG-LL.dcm", JPEGLossless),
    "jpeg-ls-lossless": lambda: _pydicom_encoded(JPEGLSLossless),
    "jpeg-ls-near-lossless": lambda: _pydicom_encoded(JPEGLSNearLossless, jls_error=3),
    "j2k-lossless": lambda: _pydicom_encoded(JPEG2000Lossless),
    "j2k-lossy": lambda: _pydicom_encoded(JPEG2000, j2k_cr=[20]),
    "htj2k-lossless": lambda: _relabelled("MR2_J2KR.dcm", HTJ2KLossless),
}


def _planted(key: str) -> tuple[pydicom.Dataset, np.ndarray]:
    """The dataset with text planted in its stream, and its pixels before planting."""
    ds = SYNTAXES[key]()
    syntax = UID(ds.file_meta.TransferSyntaxUID)
    before = ds.pixel_array.copy()
    frame = _frame(ds)
    if syntax in (JPEG2000, JPEG2000Lossless, HTJ2KLossless):
        planted = plant_j2k(frame)
    else:
        planted = plant_jpeg(frame, after_scan=syntax not in (JPEGLSLossless, JPEGLSNearLossless))
    return _encapsulated(ds, syntax, planted), before


# ------------------------------------------------------------ the pure rewriting


@pytest.mark.parametrize("key", sorted(SYNTAXES))
def test_codestream_keeps_only_what_decoding_needs(key):
    ds, before = _planted(key)
    planted = _frame(ds)
    assert TOKEN in planted and np.array_equal(ds.pixel_array, before)
    family = "j2k" if "j2k" in key else "jpeg"
    cleaned = codestream.clean(planted, family)
    assert TOKEN not in cleaned.data
    assert "COM" in cleaned.removed and "bytes after the end of the image" in cleaned.removed
    ds.PixelData = encapsulate([cleaned.data])
    assert np.array_equal(ds.pixel_array, before)  # lossy streams too: no re-encoding
    assert codestream.clean(cleaned.data, family).removed == ()  # nothing left to drop


def test_jpeg_application_segments_are_all_dropped():
    ds, _ = _planted("jpeg-baseline")
    cleaned = codestream.clean_jpeg(_frame(ds))
    assert {"APP0", "APP1", "APP13", "COM"} <= set(cleaned.removed)
    assert not any(0xE0 <= marker <= 0xEF or marker == 0xFE
                   for marker in _jpeg_markers(cleaned.data))


def _jpeg_markers(stream: bytes) -> list[int]:
    markers, pos = [], 2
    while True:
        marker = stream[pos + 1]
        if marker == 0xD9:
            return markers
        markers.append(0xFF00 | marker if marker < 0xE0 else marker)
        (length,) = struct.unpack_from(">H", stream, pos + 2)
        pos += 2 + length
        if marker == 0xDA:
            pos = codestream._jpeg_scan_end(stream, pos)


def test_j2k_tile_part_lengths_and_tlm_stay_consistent():
    values = np.random.default_rng(7).integers(0, 4096, (64, 64), dtype=np.uint16)
    stream = openjpeg.encode(values, bits_stored=12, add_tlm=True)
    assert b"\xff\x55" in stream[: stream.index(b"\xff\x90")]
    cleaned = codestream.clean_j2k(plant_j2k(stream))
    assert TOKEN not in cleaned.data and "TLM" in cleaned.removed
    assert np.array_equal(openjpeg.decode(cleaned.data), values)
    untouched = codestream.clean_j2k(stream)  # no comment: the TLM index stays
    assert b"\xff\x55" in untouched.data and untouched.precision == 12


@pytest.mark.parametrize(
    ("stream", "family", "reason"),
    [
        (b"\xff\xd8\xff\xdb\x00\x43", "jpeg", "runs past the end"),
        (b"\x00\x01\x02\x03", "jpeg", "does not start with a start-of-image"),
        (b"\xff\xd8\xff\xe0\x00\x04ab", "jpeg", "ends before its end-of-image"),
        (b"\xff\x4f\xff\x51\x00\x02", "j2k", "SIZ segment is too short"),
        (b"GIF89a", "j2k", "does not start with SOC"),
    ],
)
def test_damaged_streams_are_refused_with_a_reason(stream, family, reason):
    with pytest.raises(codestream.CodestreamError, match=reason):
        codestream.clean(stream, family)


# ------------------------------------------------------------------ through import


def _import(data: bytes, actor=None):
    [result] = import_files([Source("planted.dcm", lambda: data)], actor=actor,
                            options=ImportOptions()).results
    return result


def _stored_dicom(result) -> bytes:
    image = db.session.get(CaseImage, result.image_id)
    return image_store().read(image.storage_key, DICOM_FILE)


def _export(app, tmp_path: Path, case_id: int, trainer) -> list[bytes]:
    case = db.session.get(Case, case_id)
    save_read(case, author=trainer, scheme=get_scheme("ds3030"),
              answers={"overall": "normal", "findings": []}, marks=[])
    folder = tmp_path / "exported"
    result = app.test_cli_runner().invoke(
        args=["cases", "export-library", "--status", "all", str(folder)])
    assert result.exit_code == 0, result.output
    return [p.read_bytes() for p in folder.rglob("*") if p.is_file()]


@pytest.mark.parametrize("key", sorted(SYNTAXES))
def test_no_planted_text_in_stored_or_exported_images(app, make_user, tmp_path, key):
    trainer = make_user(Role.TRAINER)
    ds, before = _planted(key)
    result = _import(to_bytes(ds), actor=trainer)
    assert result.status == "imported", result.reason
    stored = _stored_dicom(result)
    assert TOKEN not in stored
    kept = pydicom.dcmread(io.BytesIO(stored))
    assert kept.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID  # not re-encoded
    assert np.array_equal(kept.pixel_array, before)
    assert "COM" in db.session.get(CaseImage, result.image_id).deid_report["pixel_data_removed"]
    exported = _export(app, tmp_path, result.case_id, trainer)
    assert exported and not [data for data in exported if TOKEN in data]


def test_a_stream_that_decodes_differently_once_rewritten_is_stored_uncompressed(monkeypatch):
    """The safety net: were a segment the decoder needs ever dropped, the decoded values
    are stored (uncompressed, losslessly) rather than an image that no longer decodes."""
    monkeypatch.setattr(codestream, "JPEG_KEEP", codestream.JPEG_KEEP - {0xDB})  # no DQT
    ds, before = _planted("jpeg-baseline")
    ds = pydicom.dcmread(io.BytesIO(to_bytes(ds)))
    decoded, stored = pixels.decoded_pixels(ds)
    assert "APP1" in pixel_data.keep_declared_image(ds, decoded, stored)
    kept = pydicom.dcmread(io.BytesIO(to_bytes(ds)))
    assert not kept.file_meta.TransferSyntaxUID.is_compressed
    assert kept.LossyImageCompression == "01"
    assert np.array_equal(kept.pixel_array, before)


def test_the_case_page_says_what_was_cut_from_the_pixel_data(app, client, make_user):
    make_user(Role.TRAINER, username="curator")
    ds, _ = _planted("jpeg-baseline")
    result = _import(to_bytes(ds))
    login(client, "curator")
    page = client.get(f"/cases/{result.case_id}").get_data(as_text=True)
    assert ('Cut from the pixel data</dt><dd translate="no">APP0, APP1, APP13, COM, '
            'bytes after the end' in page)


def test_text_after_the_rle_segments_is_not_stored(app):
    ds = cr_dataset(rows=40, columns=30, seed=8)
    before = ds.pixel_array.copy()
    ds.compress(RLELossless, generate_instance_uid=False)
    _encapsulated(ds, RLELossless, _frame(ds) + TOKEN)
    result = _import(to_bytes(ds))
    assert result.status == "imported", result.reason
    stored = _stored_dicom(result)
    assert TOKEN not in stored
    assert np.array_equal(pydicom.dcmread(io.BytesIO(stored)).pixel_array, before)


def test_a_damaged_jpeg_stream_is_refused_with_the_reason(app):
    ds, _ = _planted("jpeg-baseline")
    frame = _frame(ds)
    _encapsulated(ds, JPEGBaseline8Bit, frame[:2] + _segment(0xFFFE, TOKEN)[:-5])
    result = _import(to_bytes(ds))
    assert result.status == "rejected"
    assert TOKEN.decode() not in result.reason
    assert db.session.scalars(select(CaseImage)).all() == []


# ------------------------------------------------ bytes past the declared frame


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRBigEndian])
@pytest.mark.parametrize("extra", [len(TOKEN) + 1, 64 * 48 * 2 + len(TOKEN)])
def test_bytes_after_the_declared_frame_are_not_stored(app, syntax, extra):
    ds = cr_dataset(rows=64, columns=48, seed=9)
    before = ds.pixel_array.copy()
    ds.file_meta.TransferSyntaxUID = syntax
    padded = ds.pixel_array.astype(">u2" if syntax == ExplicitVRBigEndian else "<u2").tobytes()
    ds.PixelData = padded + (TOKEN * (extra // len(TOKEN) + 1))[:extra] + b"\x00" * (extra % 2)
    result = _import(to_bytes(ds))
    assert result.status == "imported", result.reason
    stored = _stored_dicom(result)
    assert TOKEN[:8] not in stored
    kept = pydicom.dcmread(io.BytesIO(stored))
    assert len(kept.PixelData) == 64 * 48 * 2
    assert np.array_equal(kept.pixel_array, before)


# --------------------------------------------------- bits above Bits Stored


def _overlay_image() -> tuple[pydicom.Dataset, np.ndarray, np.ndarray]:
    """A 15-bit image with a 30,000-pixel overlay hidden in bit 15."""
    ds = cr_dataset(rows=200, columns=200, bits_stored=15, seed=10)
    clean = ds.pixel_array.copy()
    hidden = np.zeros(clean.shape, dtype=bool)
    hidden.ravel()[np.random.default_rng(1).choice(clean.size, 30_000, replace=False)] = True
    return ds, clean, np.where(hidden, clean | 0x8000, clean).astype(np.uint16)


def _raw_words(data: bytes) -> np.ndarray:
    ds = pydicom.dcmread(io.BytesIO(data))
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        pytest.fail("expected uncompressed pixel data")
    return np.frombuffer(ds.PixelData, dtype="<u2")


def test_an_overlay_in_the_unused_high_bit_is_cleared(app):
    ds, clean, overlaid = _overlay_image()
    ds.PixelData = overlaid.tobytes()
    assert int(np.count_nonzero(np.frombuffer(ds.PixelData, "<u2") & 0x8000)) == 30_000
    result = _import(to_bytes(ds))
    assert result.status == "imported", result.reason
    words = _raw_words(_stored_dicom(result))
    assert int(np.count_nonzero(words & 0x8000)) == 0
    assert np.array_equal(words.reshape(clean.shape), clean)
    same = _import(to_bytes(cr_dataset(rows=200, columns=200, bits_stored=15, seed=10)))
    assert same.status == "duplicate"  # one image, one pixel hash, whatever the high bits


def test_signed_values_keep_their_sign_and_lose_the_payload(app):
    ds = cr_dataset(rows=50, columns=40, bits_stored=12, seed=12)
    values = (ds.pixel_array.astype(np.int16) - 2048).astype(np.int16)  # -2048..2047
    words = values.view(np.uint16).copy()
    payload = np.zeros(values.shape, dtype=bool)
    payload[::3] = True
    # For signed data the bits above Bits Stored are the sign; flip them as a payload.
    words[payload] ^= 0x7000
    ds.PixelRepresentation = 1
    ds.PixelData = words.tobytes()
    ds.WindowCenter, ds.WindowWidth = 0, 4096
    result = _import(to_bytes(ds))
    assert result.status == "imported", result.reason
    kept = _raw_words(_stored_dicom(result)).reshape(values.shape)
    assert np.array_equal(kept.view(np.int16), values)  # sign-extended from bit 11


@pytest.mark.parametrize("syntax", [JPEG2000Lossless, JPEGLSLossless])
def test_an_overlay_in_a_compressed_stream_is_not_kept(app, syntax):
    """The stream decodes to 16 bits though 15 are declared: its values are stored
    uncompressed (losslessly) with the bit above Bits Stored cleared."""
    ds, clean, overlaid = _overlay_image()
    if syntax == JPEG2000Lossless:
        stream = openjpeg.encode(overlaid, bits_stored=16)
    else:
        import jpeg_ls

        stream = bytes(jpeg_ls.encode_array(overlaid))
    _encapsulated(ds, syntax, stream)
    result = _import(to_bytes(ds))
    assert result.status == "imported", result.reason
    words = _raw_words(_stored_dicom(result))
    assert int(np.count_nonzero(words & 0x8000)) == 0
    assert np.array_equal(words.reshape(clean.shape), clean)


# ------------------------------------------------------------ non-finite numbers


def _strict(text: str):
    def refuse(name: str):
        raise ValueError(f"non-finite number {name} in JSON")

    return json.loads(text, parse_constant=refuse)


def test_a_rescale_that_overflows_is_refused_naming_the_attribute(app):
    ds = cr_dataset(rows=32, columns=32, seed=13, RescaleSlope="1e308", RescaleIntercept="0")
    result = _import(to_bytes(ds))
    assert result.status == "rejected"
    assert "Rescale Slope" in result.reason
    assert db.session.scalars(select(CaseImage)).all() == []


def test_viewer_api_json_is_strict_even_for_extreme_attributes(app, client, make_user):
    trainer = make_user(Role.TRAINER, username="curator")
    files = [
        cr_dataset(rows=32, columns=32, seed=14, RescaleSlope="1e308", RescaleIntercept="0"),
        cr_dataset(rows=32, columns=32, seed=15, RescaleSlope="1e300",
                   RescaleIntercept="-1e300", WindowCenter="1e308", WindowWidth="1e308"),
        cr_dataset(rows=32, columns=32, seed=16, WindowCenter="1e308", WindowWidth="1e308"),
        cr_dataset(rows=32, columns=32, seed=17),
    ]
    results = [_import(to_bytes(ds), actor=trainer) for ds in files]
    assert results[0].status == "rejected" and results[-1].status == "imported"
    login(client, "curator")
    for case in db.session.scalars(select(Case)):
        _strict(json.dumps(case.images[0].display_params))  # as stored in the database
        response = client.get(f"/viewer/api/cases/{case.id}")
        assert response.status_code == 200
        data = _strict(response.get_data(as_text=True))
        window = data["images"][0]["params"]["default_window"]
        assert window["width"] >= 1


@sqlite_only  # PostgreSQL's JSON type cannot hold NaN, so no such row can exist there
def test_viewer_api_never_sends_a_stored_non_finite_number(app, client, make_user):
    """Display parameters written before non-finite values were refused still give
    strict JSON (SQLite kept them; PostgreSQL never could)."""
    trainer = make_user(Role.TRAINER, username="curator")
    result = _import(to_bytes(cr_dataset(rows=32, columns=32, seed=16)), actor=trainer)
    image = db.session.get(CaseImage, result.image_id)
    params = dict(image.display_params)
    params["default_window"] = {**params["default_window"], "center": float("nan")}
    params["rescale_slope"] = float("inf")
    image.display_params = params
    db.session.commit()
    login(client, "curator")
    response = client.get(f"/viewer/api/cases/{image.case_id}")
    assert response.status_code == 200
    sent = _strict(response.get_data(as_text=True))["images"][0]["params"]
    assert sent["default_window"]["center"] is None and sent["rescale_slope"] is None
