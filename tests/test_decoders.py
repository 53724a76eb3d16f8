"""Each image is decoded once, by the fastest decoder for its transfer syntax, to exactly the
values pydicom's own reading gives: RG1 in every lossless syntax, pydicom's samples and the
real files of the shared folder."""

from __future__ import annotations

import copy
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder
from pydicom.uid import (
    UID,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from app.cases import pixels
from app.cases.processing import ProcessOptions, process_dicom
from tests.dicom_factory import cr_dataset
from tests.test_ingest import SHARED_DICOM
from tests.test_transfer_syntaxes import SAMPLES

SLOWER = {"gdcm", "pydicom"}  # the decoders a faster one replaces (see pixels.PREFERRED_PLUGINS)


def rg1_in(syntax: UID) -> pydicom.Dataset:
    ds = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm"))
    if syntax == JPEGLosslessSV1:  # pydicom has no JPEG lossless encoder
        frame = imagecodecs.ljpeg_encode(ds.pixel_array, bitspersample=int(ds.BitsStored))
        ds.PixelData = encapsulate([frame])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = syntax
    else:
        plugin = {JPEGLSLossless: "pyjpegls", RLELossless: "pylibjpeg"}[syntax]
        ds.compress(syntax, encoding_plugin=plugin, generate_instance_uid=False)
    return ds


@pytest.fixture(scope="module")
def rg1() -> dict[str, pydicom.Dataset]:
    found = {name: pydicom.dcmread(get_testdata_file(name))
             for name in ("RG1_UNCR.dcm", "RG1_J2KR.dcm", "RG1_J2KI.dcm")}
    for syntax in (JPEGLSLossless, RLELossless, JPEGLosslessSV1):
        found[f"RG1 {syntax.name}"] = rg1_in(syntax)
    return found


def samples() -> list[Path]:
    paths = [Path(get_testdata_file(name)) for name in sorted(SAMPLES)]
    if SHARED_DICOM.is_dir():
        paths += sorted(SHARED_DICOM.iterdir())
    return paths


def pydicom_values(ds: pydicom.Dataset) -> np.ndarray:
    """pydicom's own reading: the stored values of the first frame, unused bits corrected."""
    return np.asarray(pydicom.pixels.pixel_array(copy.deepcopy(ds), index=0)).astype(np.int64)


def recording_slower_decoders(monkeypatch, used: list[str]) -> None:
    """The decoders a faster one replaces still work, but say when they are used."""
    for syntax in (*pixels.PREFERRED_PLUGINS, *pixels.IMAGECODECS_SYNTAXES):
        try:
            decoder = get_decoder(syntax)
        except NotImplementedError:  # e.g. JPEG 2000 Part 2: refused before decoding
            continue
        for name, function in list(decoder._available.items()):
            if name in SLOWER:
                monkeypatch.setitem(decoder._available, name, _recorded(name, function, used))


def _recorded(name: str, function: Callable[..., Any], used: list[str]) -> Callable[..., Any]:
    def decode(*args: Any, **kwargs: Any) -> Any:
        used.append(name)
        return function(*args, **kwargs)

    return decode


def test_rg1_decodes_to_pydicoms_values_with_the_fastest_decoder(rg1, monkeypatch):
    expected = pydicom_values(rg1["RG1_UNCR.dcm"])
    pydicoms = {name: pydicom_values(ds) for name, ds in rg1.items()}
    used: list[str] = []
    recording_slower_decoders(monkeypatch, used)
    for name, ds in rg1.items():
        decoded, stored = pixels.decoded_pixels(ds)
        assert np.array_equal(stored.astype(np.int64), pydicoms[name]), name
        if name != "RG1_J2KI.dcm":  # lossy
            assert np.array_equal(stored.astype(np.int64), expected), name
        assert decoded.shape == stored.shape == expected.shape
    assert used == []


@pytest.mark.parametrize("path", samples(), ids=lambda p: p.name)
def test_samples_decode_to_pydicoms_values(path, monkeypatch):
    ds = pydicom.dcmread(path, force=True)
    if "PixelData" not in ds:
        with pytest.raises(ValueError):  # refused with a reason, not a crash
            pixels.stored_pixels(ds)
        return
    try:
        expected = pydicom_values(ds)
    except Exception:
        # pydicom cannot read these pixels on its own (e.g. a file without file meta, which
        # the pipeline reads with the syntax the dataset was parsed with): either refused
        # with a reason, or an image of the declared size.
        try:
            stored = pixels.stored_pixels(ds)
        except ValueError:
            return
        assert stored.shape == (int(ds.Rows), int(ds.Columns))
        return
    used: list[str] = []
    recording_slower_decoders(monkeypatch, used)
    try:
        stored = pixels.stored_pixels(ds)
    except pixels.UnsupportedImage as exc:
        assert "Colour" in str(exc) or "Multi-frame" in str(exc) or "bit depth" in str(exc)
        return
    assert np.array_equal(stored.astype(np.int64), expected)
    assert used == []


def test_one_import_decodes_the_image_once(rg1, monkeypatch):
    """The pixel hash, the stored Pixel Data, the derivatives and the presentation window
    all use the one decoding."""
    calls: list[int] = []
    decode = pixels._decode

    def counted(ds: pydicom.Dataset) -> np.ndarray:
        calls.append(1)
        return decode(ds)

    monkeypatch.setattr(pixels, "_decode", counted)
    for name in ("RG1_UNCR.dcm", "RG1_J2KR.dcm", f"RG1 {JPEGLosslessSV1.name}"):
        calls.clear()
        ds = rg1[name]
        ds.save_as(buffer := __import__("io").BytesIO(), enforce_file_format=True)
        process_dicom(buffer.getvalue(), ProcessOptions(secret=b"s" * 32))
        assert len(calls) == 1, name
    assert JPEG2000Lossless in pixels.PREFERRED_PLUGINS


@pytest.mark.parametrize("bits_stored", [12, 16])
def test_a_large_image_is_shown_without_copies_of_it(bits_stored):
    """The display parameters, the 8-bit rendering and the pixel hash of a 3000 x 3000
    16-bit image allocate a fraction of the image beside the 9 MB rendering, never an
    8-byte index per pixel (72 MB), nor a copy of the stored values."""
    ds = cr_dataset(8, 8, bits_stored=bits_stored)
    ds.Rows = ds.Columns = 3000
    rng = np.random.default_rng(1)
    decoded = rng.integers(0, 2**bits_stored, (3000, 3000), dtype=np.uint16)
    tracemalloc.start()
    try:
        stored = pixels._stored_values(decoded, bits_stored, signed=False)
        pixels.pixel_hash(stored)
        pixels.display_params(ds, stored)
        pixels.render_8bit(ds, stored)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert stored is decoded
    assert peak < 9_000_000 + 8_000_000
