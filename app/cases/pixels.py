"""The display pipeline for chest radiographs, and the derivatives stored at ingest.

Stored pixel values go through the DICOM greyscale pipeline (PS3.3 C.11, PS3.4 N.2):
Modality LUT (rescale) -> VOI LUT or window -> MONOCHROME1 inversion -> 8 bits, with
PixelPaddingValue masked to black. Radiologists expect window/level on the stored bit depth,
so besides 8-bit JPEGs we keep the stored values as 16-bit data, lossy HTJ2K
(``app.cases.htj2k``) then exact JPEG-LS (``app.cases.jpegls``), plus the JSON parameters
(``DisplayParams``) the browser viewer needs to window them itself (see
``app/viewer/FORMAT.md``).

Pure module: numpy, Pillow, pydicom and imagecodecs (through htj2k and jpegls) only, no Flask. Error
messages never quote attribute values that could identify a patient. One module, longer
than most, because it is one pipeline whose public names other modules import; its
sections: decoding, the LUT pipeline, display parameters, derivatives, hashing and
redaction.
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import generate_frames
from pydicom.pixels import apply_modality_lut, apply_voi_lut, get_decoder

from app.cases import htj2k, jpegls
from app.sentences import N_, say

THUMBNAIL_MAX = 256  # px, longest side
PREVIEW_MAX = 1024  # px, longest side
THUMBNAIL_QUALITY = 85
# 85, not 90: 76 KB instead of 103 KB on RG1, 0.1 s sooner at 2 Mbit/s for the first
# image, which the full-resolution JPEG replaces within a second or two.
PREVIEW_QUALITY = 85
# The full-resolution default display: q85 is 247 KB on RG1 (q90: 349 KB) in ~9 ms, so it
# lands within 2.5 s at 2 Mbit/s after the preview. Optimised Huffman tables would save 6 %
# (0.06 s at 2 Mbit/s) for 2.5x the encode time, which ingest pays on every image.
FULL_DISPLAY_QUALITY = 85
SIGNED_OFFSET = 32768  # shifts int16 stored values into uint16 for the 16-bit data and LUT index

VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
PRESET_LABELS = ("lung", "mediastinum", "bone")
AUTO_LABEL = "auto"


class UnsupportedImage(ValueError):
    """The dataset cannot be shown by this pipeline; the message says why, for humans."""


@dataclass(frozen=True)
class Window:
    center: float
    width: float
    label: str  # "file 1", "file 2 (EXPLANATION)", "auto", "lung", "mediastinum", "bone"


@dataclass(frozen=True)
class DisplayParams:
    rows: int
    columns: int
    bits_stored: int
    signed: bool  # PixelRepresentation == 1
    stored_offset: int  # added to stored values in the 16-bit data (32768 when signed, else 0)
    stored_min: int  # range of stored values present, padding excluded
    stored_max: int
    rescale_slope: float
    rescale_intercept: float
    windows: tuple[Window, ...]  # file windows (or "auto"), then presets; output units
    default_window: Window  # == windows[0]
    voi_lut_function: str  # "LINEAR", "LINEAR_EXACT" or "SIGMOID"
    has_voi_lut_sequence: bool  # the default display then uses the file's VOI LUT
    invert: bool  # MONOCHROME1 (or MONOCHROME2 with Presentation LUT Shape INVERSE)
    padding_value: int | None  # stored units; rendered black
    pixel_spacing_mm: tuple[float, float] | None  # (row, column)
    # Additions to the agreed API (defaults keep constructor calls compatible): the viewer
    # needs the range limit to mask padding, and cannot reproduce a Modality LUT Sequence
    # with slope/intercept, so it must fall back to the server-rendered preview then.
    padding_range_limit: int | None = None
    has_modality_lut_sequence: bool = False

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types only: the viewer reads this as-is (documented in FORMAT.md).
        Every number is finite (UnsupportedImage otherwise): NaN and infinity are not
        JSON, and PostgreSQL's JSON column refuses them."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, Window):
                value = _window_json(value)
            elif name == "windows":
                value = [_window_json(w) for w in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        if not all_finite(out):
            raise UnsupportedImage(N_(
                "The image's display parameters are not finite numbers: its Rescale Slope, "
                "Rescale Intercept, Window Center/Width or Pixel Spacing are damaged."
            ))
        return out


def all_finite(value: Any) -> bool:
    """Whether every float in a JSON-like structure is finite."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(all_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(all_finite(v) for v in value)
    return True


def _window_json(window: Window) -> dict[str, Any]:
    return {"center": window.center, "width": window.width, "label": window.label}


@dataclass(frozen=True)
class Derivatives:
    thumbnail_jpeg: bytes  # longest side <= THUMBNAIL_MAX, default display
    preview_jpeg: bytes  # longest side <= PREVIEW_MAX, default display
    display_jpeg: bytes  # full resolution, default display
    approx_htj2k: bytes  # full resolution, 16-bit, lossy: stored + stored_offset
    exact16: bytes  # JPEG-LS, lossless: stored + stored_offset as 16-bit, bit for bit
    params: DisplayParams


# --------------------------------------------------------------------------- decoding


def stored_pixels(ds: Dataset) -> np.ndarray:
    """The stored values as an integer 2-D array.

    Raises UnsupportedImage (a ValueError) for colour, multi-frame, more than 16 bits,
    or pixel data that cannot be decoded.
    """
    return decoded_pixels(ds)[1]


def decoded_pixels(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(as decoded, stored values) of the declared frame.

    As decoded: the decoder's output, bits above Bits Stored and all. Stored values: those
    bits cleared, or for signed images filled with the sign extended from Bits Stored
    (PS3.5 8.1.1: they are not part of the value, and may carry a hidden overlay). The two
    differ only when something other than the image lives in those bits. Bytes after the
    declared frame are never decoded.
    """
    _check_supported(ds)
    try:
        decoded = _decode(ds)
    except UnsupportedImage:
        raise
    except Exception as exc:  # decoders raise anything from KeyError to RuntimeError
        name = getattr(_transfer_syntax(ds), "name", "unknown transfer syntax")
        raise UnsupportedImage(say(N_("The pixel data could not be decoded (%(syntax)s): "
                                      "%(cause)s"), syntax=name, cause=_short(exc))) from exc
    if decoded.ndim != 2 or not np.issubdtype(decoded.dtype, np.integer):
        raise UnsupportedImage(say(N_("Expected one greyscale frame of integers, got an array of "
                                      "shape %(shape)s and type %(type)s."),
                                   shape=decoded.shape, type=decoded.dtype))
    return decoded, _stored_values(decoded, int(ds.BitsStored), _signed(ds))


def _stored_values(decoded: np.ndarray, bits_stored: int, signed: bool) -> np.ndarray:
    """Shift the unused high bits out and back: logical for unsigned, arithmetic (sign
    extension) for signed, as pydicom's own correction does."""
    dtype = np.dtype(f"{'i' if signed else 'u'}{decoded.itemsize}")
    shift = decoded.itemsize * 8 - bits_stored
    if shift <= 0:
        return decoded.astype(dtype, copy=False)
    if decoded.size and decoded.dtype == dtype:
        # Nothing above Bits Stored (the usual case): the decoded array itself, rather than
        # a copy of the image; min/max allocate nothing.
        low, high = (-(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1) if signed \
            else (0, (1 << bits_stored) - 1)
        if low <= int(decoded.min()) and int(decoded.max()) <= high:
            return decoded
    values = decoded.astype(dtype)  # a copy in native byte order, of the header's sign
    np.left_shift(values, shift, out=values)
    np.right_shift(values, shift, out=values)
    return values


def _check_supported(ds: Dataset) -> None:
    """Reject, from the header alone, what the pipeline cannot show (cheaper than decoding)."""
    if "PixelData" not in ds:
        raise UnsupportedImage(N_("The file has no (integer) Pixel Data: it is not an image."))
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if not photometric:
        raise UnsupportedImage(N_("The file has no Photometric Interpretation."))
    samples = _int_or_none(ds.get("SamplesPerPixel")) or 1
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise UnsupportedImage(say(N_(
            "Colour images are not supported (Photometric Interpretation '%(photometric)s', "
            "%(samples)s samples per pixel); only greyscale MONOCHROME1/MONOCHROME2 "
            "radiographs can be shown."), photometric=photometric, samples=samples))
    frames = _int_or_none(ds.get("NumberOfFrames")) or 1
    if frames != 1:
        raise UnsupportedImage(say(N_("Multi-frame images are not supported (%(frames)s frames); "
                                      "export the chest radiograph as a single-frame image."),
                                   frames=frames))
    allocated = _int_or_none(ds.get("BitsAllocated"))
    stored = _int_or_none(ds.get("BitsStored"))
    if allocated not in (8, 16) or stored is None or not 1 <= stored <= allocated:
        raise UnsupportedImage(say(N_(
            "Unsupported bit depth (Bits Allocated %(allocated)s, Bits Stored %(stored)s); only "
            "8- or 16-bit greyscale with at most 16 stored bits is supported."),
            allocated=allocated, stored=stored))
    if _int_or_none(ds.get("PixelRepresentation")) not in (None, 0, 1):
        raise UnsupportedImage(N_("Pixel Representation must be 0 (unsigned) or 1 (signed)."))


def _transfer_syntax(ds: Dataset) -> uid.UID | None:
    """The file's transfer syntax, or the one it was evidently read with when the file
    meta is missing (old ACR-NEMA style files such as CR-MONO1-10-chest.dcm)."""
    meta = getattr(ds, "file_meta", None)
    found = meta.get("TransferSyntaxUID") if meta is not None else None
    if found:
        return uid.UID(found)
    encoding = getattr(ds, "original_encoding", (None, None))
    if "PixelData" not in ds or ds["PixelData"].is_undefined_length or None in encoding:
        return None  # encapsulated (compressed) data cannot be guessed
    implicit, little = encoding
    if not little:
        return uid.ExplicitVRBigEndian
    return uid.ImplicitVRLittleEndian if implicit else uid.ExplicitVRLittleEndian


#: The decoder's output untouched (pydicom would clear or sign-extend the unused high
#: bits, which decoded_pixels does itself so that it can see whether they held anything),
#: and only the declared frame however many bytes follow it.
RAW_DECODING = {"correct_unused_bits": False, "apply_j2k_sign_correction": False,
                "apply_jls_sign_correction": False, "allow_excess_frames": False}


#: The fastest installed decoder per transfer syntax, as pydicom decoder plugins. Left to
#: itself pydicom tries GDCM first for JPEG 2000 and JPEG-LS, and its own pure-Python RLE
#: decoder. CPU time for RG1 (1841 x 1955, 15 bits; bench/bench_ingest.py --decoders):
#: JPEG 2000 lossless, OpenJPEG (pylibjpeg) ~485 ms, GDCM ~560 ms, imagecodecs ~480 ms (the
#: same OpenJPEG: no reason to leave pydicom's plugin); JPEG-LS, CharLS (pyjpegls) ~95 ms,
#: GDCM ~160 ms, imagecodecs ~90 ms (the same CharLS); RLE, pylibjpeg-rle ~15 ms, pydicom
#: ~200 ms.
PREFERRED_PLUGINS = {
    **{uid.UID(s): "pylibjpeg" for s in uid.JPEG2000TransferSyntaxes},
    **{uid.UID(s): "pyjpegls" for s in uid.JPEGLSTransferSyntaxes},
    uid.RLELossless: "pylibjpeg",
}
#: JPEG lossless: imagecodecs (~40 ms for RG1) where pydicom has GDCM alone (~120 ms).
#: imagecodecs has no pydicom plugin, hence this small decoder of our own (ljpeg_decode).
IMAGECODECS_SYNTAXES = (uid.JPEGLossless, uid.JPEGLosslessSV1)


def _decode(ds: Dataset) -> np.ndarray:
    """The first frame as decoded by the fastest decoder for the file's transfer syntax,
    or, when the file meta lacks one, for the inferred one (the decoder reads the dataset
    without needing or modifying its file meta). Should that decoder fail, pydicom's other
    decoders get their turn: a file one of them reads is not refused."""
    tsyntax = _transfer_syntax(ds)
    if tsyntax is None:
        raise UnsupportedImage(N_(
            "The file has no Transfer Syntax UID and its pixel data is compressed, "
            "so it cannot be decoded."
        ))
    with warnings.catch_warnings():
        # Excess bytes are expected here (they are dropped from the stored file).
        warnings.simplefilter("ignore", UserWarning)
        decoder = get_decoder(tsyntax)
        try:
            if tsyntax in IMAGECODECS_SYNTAXES:
                return _decode_lossless_jpeg(ds)
            plugin = PREFERRED_PLUGINS.get(tsyntax)
            if plugin in decoder.available_plugins:
                options: Any = {**RAW_DECODING, "decoding_plugin": plugin}
                return decoder.as_array(ds, **options)[0]
        except Exception:  # noqa: S110 (the other decoders say why, if they fail too)
            pass
        # view_only: uncompressed pixels are read in place, not copied (18 MB for a
        # 3000 x 3000 image); nothing writes into the decoded or stored arrays.
        return decoder.as_array(ds, view_only=True, **RAW_DECODING)[0]  # type: ignore[arg-type]


def _decode_lossless_jpeg(ds: Dataset) -> np.ndarray:
    """The first frame of a JPEG lossless (process 14) image, with imagecodecs, as
    pydicom's decoders give it: the header's sign and width, the stream's bits as they are."""
    import imagecodecs  # type: ignore[import-untyped]  # loaded only for such files

    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    decoded = imagecodecs.ljpeg_decode(frame)
    shape = (int(ds.Rows), int(ds.Columns))
    if decoded.shape != shape:
        raise ValueError(f"the stream holds a {decoded.shape} image, the header {shape}")
    dtype = np.dtype(f"{'i' if _signed(ds) else 'u'}{int(ds.BitsAllocated) // 8}")
    if decoded.itemsize != dtype.itemsize:
        decoded = decoded.astype(f"u{dtype.itemsize}")
    return decoded.view(dtype)


# ------------------------------------------------------------------ the LUT pipeline


@dataclass(frozen=True)
class _Pipeline:
    """The stored-value domain and its modality output, computed once per image."""

    offset: int  # LUT index = stored value + offset
    values: np.ndarray  # the stored value at each LUT index
    modality: np.ndarray  # float64 modality-LUT output at each LUT index
    invert: bool


def _pipeline(ds: Dataset, stored: np.ndarray) -> _Pipeline:
    _check_pixels(ds, stored)
    signed = _signed(ds)
    if signed:
        # Every value an int16 can hold: cheap (65,536 entries) and robust to data that
        # ignores Bits Stored.
        offset = SIGNED_OFFSET
        values = np.arange(-SIGNED_OFFSET, SIGNED_OFFSET, dtype=np.int64)
    else:
        offset = 0
        size = max(2 ** int(ds.BitsStored), int(stored.max()) + 1 if stored.size else 0)
        values = np.arange(size, dtype=np.int64)
    try:
        modality = np.asarray(apply_modality_lut(values, _core_dataset(ds)), dtype=np.float64)
    except Exception as exc:  # malformed Modality LUT Sequence
        raise UnsupportedImage(say(N_("The Modality LUT could not be applied: %(cause)s"),
                                   cause=_short(exc))) from exc
    if not np.isfinite(modality).all():
        # e.g. a slope of 1e308: windows computed from it would be NaN, which neither JSON
        # nor PostgreSQL's JSON column can hold.
        raise UnsupportedImage(N_(
            "The Rescale Slope (0028,1053) and Rescale Intercept (0028,1052) take the pixel "
            "values beyond the range of numbers: the file's rescale is damaged."
        ))
    return _Pipeline(offset, values, modality, _inverted(ds))


def _check_pixels(ds: Dataset, stored: np.ndarray) -> None:
    _check_supported(ds)
    if stored.ndim != 2 or not np.issubdtype(stored.dtype, np.integer) or stored.itemsize > 2:
        raise UnsupportedImage(N_("Expected a 2-D array of 8- or 16-bit integer stored values."))
    if (stored.dtype.kind == "i") != _signed(ds):
        raise UnsupportedImage(N_("The stored values' signedness disagrees with the header."))


def _core_dataset(ds: Dataset) -> Dataset:
    """The attributes pydicom's LUT functions read, in a private dataset.

    apply_windowing re-assigns BitsStored/RescaleSlope/RescaleIntercept on the dataset it
    is given (turning DS strings into floats); the caller's dataset must stay untouched.
    PhotometricInterpretation is MONOCHROME2 here because we invert separately, after
    scaling to 8 bits.
    """
    core = Dataset()
    core.file_meta = FileMetaDataset()
    # LUT Data with VR OW is decoded with the transfer syntax's byte order.
    core.file_meta.TransferSyntaxUID = _transfer_syntax(ds) or uid.ExplicitVRLittleEndian
    core.PhotometricInterpretation = "MONOCHROME2"
    core.BitsStored = int(ds.BitsStored)
    core.PixelRepresentation = int(_signed(ds))
    rescale = _rescale_or_none(ds)
    if rescale is not None:
        core.add_new("RescaleSlope", "FD", rescale[0])
        core.add_new("RescaleIntercept", "FD", rescale[1])
    if ds.get("ModalityLUTSequence"):
        core["ModalityLUTSequence"] = ds["ModalityLUTSequence"]
    return core


def _window_dataset(ds: Dataset, window: Window, function: str) -> Dataset:
    """core + exactly one window, for pydicom's apply_voi_lut."""
    voi = _core_dataset(ds)  # fresh: Dataset(other) would share other's elements
    # FD, not DS: DS would round the values to 16 characters; this is never written.
    voi.add_new("WindowCenter", "FD", float(window.center))
    voi.add_new("WindowWidth", "FD", float(window.width))
    voi.VOILUTFunction = function
    return voi


def _window_output_range(voi: Dataset) -> tuple[float, float]:
    """The output range pydicom's windowing maps into, to scale it to 0..255.

    Mirrors pydicom.pixels.processing.apply_windowing (PS3.3 C.11.2.1.2): the stored
    value range, through the rescale when there is one.
    """
    if voi.get("ModalityLUTSequence"):
        return 0.0, float(2 ** int(voi.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    bits = int(voi.BitsStored)
    if int(voi.PixelRepresentation) == 0:
        low, high = 0.0, float(2**bits - 1)
    else:
        low, high = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    if "RescaleSlope" in voi and "RescaleIntercept" in voi:
        slope, intercept = float(voi.RescaleSlope), float(voi.RescaleIntercept)
        low, high = low * slope + intercept, high * slope + intercept
    return low, high


def _apply_voi_lut_sequence(ds: Dataset, values: np.ndarray) -> tuple[np.ndarray, float]:
    """The file's first VOI LUT applied by pydicom to `values`, and the LUT's maximum
    output (2**bits - 1, PS3.3 C.11.2.1.1).

    Two guards around pydicom 3.0.2's apply_voi, which builds its index array in the
    entries' dtype: an 8-bit LUT longer than 256 entries would wrap its indices (so the
    copy given to pydicom declares 16 bits; the values are unchanged), and inputs more
    than 65,535 past the first mapped value would wrap too (so inputs are clipped to the
    LUT's domain first, which is what the standard's clamping does anyway).
    """
    item = ds.VOILUTSequence[0]
    entries, first, bits = (int(v) for v in item.LUTDescriptor)
    entries = entries or 65536
    if _signed(ds) and first >= SIGNED_OFFSET:  # US/SS ambiguity: read as unsigned
        first -= 2 * SIGNED_OFFSET
    copy = Dataset()
    copy.LUTDescriptor = [entries % 65536, first, max(bits, 16)]
    copy["LUTData"] = item["LUTData"]
    voi = _core_dataset(ds)
    voi.VOILUTSequence = [copy]
    # Modality output is integral for CXR; rint also keeps pydicom's float warning quiet.
    inputs = np.clip(np.rint(values), first, first + entries - 1).astype(np.int64)
    output = apply_voi_lut(inputs, voi)
    high = float(2**bits - 1)
    # Some writers declare 16-bit entries but store 12-bit values or vice versa; trust
    # the declaration unless the data contradicts it.
    peak = int(np.max(output)) if output.size else 0
    if peak > high:
        high = float(2 ** peak.bit_length() - 1)
    return output, high


def _to_uint8(voi_output: np.ndarray, low: float, high: float, invert: bool) -> np.ndarray:
    """Scale the VOI output range to 0..255 (rounded), then invert for MONOCHROME1."""
    if high == low:
        raise UnsupportedImage(N_("The VOI output range is empty; the image cannot be shown."))
    scaled = (np.asarray(voi_output, dtype=np.float64) - low) * (255.0 / (high - low))
    grey = np.rint(np.clip(scaled, 0.0, 255.0)).astype(np.uint8)
    return 255 - grey if invert else grey


def _build_lut(
    pipe: _Pipeline, ds: Dataset, params: DisplayParams, window: Window | None
) -> np.ndarray:
    """Apply pydicom's VOI stage once to every possible stored value (DESIGN.md: ~8 ms
    instead of ~60 ms for the whole image, identical output)."""
    try:
        if window is None and params.has_voi_lut_sequence:
            output, high = _apply_voi_lut_sequence(ds, pipe.modality)
            return _to_uint8(output, 0.0, high, pipe.invert)
        if window is not None:
            _check_window(window, "LINEAR")
            voi = _window_dataset(ds, window, "LINEAR")
        else:
            default = params.default_window
            function = params.voi_lut_function if _is_file_window(default) else "LINEAR"
            voi = _window_dataset(ds, default, function)
        output = apply_voi_lut(pipe.modality, voi)
    except UnsupportedImage:
        raise
    except Exception as exc:  # malformed LUT or window
        raise UnsupportedImage(say(N_("The VOI LUT could not be applied: %(cause)s"),
                                   cause=_short(exc))) from exc
    low, high = _window_output_range(voi)
    return _to_uint8(output, low, high, pipe.invert)


#: Rows per block when a whole image is looked up or counted: numpy turns an index array
#: into 8-byte integers first, 72 MB for a 3000 x 3000 image at once; ~2 MB per block.
BLOCK_PIXELS = 1 << 18


def _row_blocks(stored: np.ndarray) -> range:
    rows = max(1, BLOCK_PIXELS // max(stored.shape[1], 1))
    return range(0, stored.shape[0], rows)


def _lut_index(stored: np.ndarray, offset: int) -> np.ndarray:
    """stored + offset as a non-negative index (int16/int8 would overflow in place)."""
    if offset == 0:
        return stored
    return stored.astype(np.int32) + offset


def _lookup(lut: np.ndarray, stored: np.ndarray, offset: int) -> np.ndarray:
    """lut[stored + offset], a block of rows at a time (see BLOCK_PIXELS)."""
    out = np.empty(stored.shape, dtype=lut.dtype)
    rows = _row_blocks(stored)
    for top in rows:
        block = slice(top, top + rows.step)
        np.take(lut, _lut_index(stored[block], offset), out=out[block])
    return out


def display_lut(ds: Dataset, stored: np.ndarray, window: Window | None = None) -> np.ndarray:
    """uint8 lookup table indexed by (stored value + stored_offset).

    Covers every possible stored value. Default display (window None): the file's VOI LUT
    Sequence if usable, else its first window with its VOI LUT Function, else the computed
    "auto" window. An explicit window always uses the LINEAR function, as the viewer does.
    Padding is not in the table (render_8bit masks it).
    """
    pipe = _pipeline(ds, stored)
    return _build_lut(pipe, ds, _params(ds, stored, pipe), window)


def render_8bit(ds: Dataset, stored: np.ndarray, window: Window | None = None) -> np.ndarray:
    """(rows, columns) uint8 display image: lut[stored], padding black."""
    pipe = _pipeline(ds, stored)
    params = _params(ds, stored, pipe)
    return _render(stored, pipe, params, _build_lut(pipe, ds, params, window))


def _render(
    stored: np.ndarray, pipe: _Pipeline, params: DisplayParams, lut: np.ndarray
) -> np.ndarray:
    padding = _padding_slice(params, pipe)
    if padding is not None:
        # Masking 1 to 65,536 table entries is cheaper than masking millions of pixels.
        lut = lut.copy()
        lut[padding] = 0
    return _lookup(lut, stored, pipe.offset)


def window_linear(
    values: np.ndarray,
    center: float,
    width: float,
    *,
    out_min: float = 0.0,
    out_max: float = 255.0,
) -> np.ndarray:
    """The DICOM LINEAR window function (PS3.3 C.11.2.1.2.1), vectorised, float64 output.

    Independent reference for tests and the browser viewer; the pipeline itself uses
    pydicom. The arithmetic follows the standard's formula term by term.
    """
    if not (math.isfinite(center) and math.isfinite(width)) or width < 1:
        raise ValueError("A LINEAR window needs a finite center and a width of at least 1.")
    x = np.asarray(values, dtype=np.float64)
    c, w = center - 0.5, width - 1.0
    below = x <= c - w / 2
    above = x > c + w / 2
    out = np.empty_like(x)
    out[below] = out_min
    out[above] = out_max
    between = ~(below | above)  # empty when width == 1, so w == 0 is never divided by
    out[between] = ((x[between] - c) / w + 0.5) * (out_max - out_min) + out_min
    return out


# ----------------------------------------------------------------- display parameters


def display_params(ds: Dataset, stored: np.ndarray) -> DisplayParams:
    """Everything the viewer needs to window the full-resolution 16-bit data itself."""
    return _params(ds, stored, _pipeline(ds, stored))


def _params(ds: Dataset, stored: np.ndarray, pipe: _Pipeline) -> DisplayParams:
    padding, limit = _padding(ds)
    counts = _histogram(stored, pipe, padding, limit)
    present = np.flatnonzero(counts)
    if present.size == 0:
        raise UnsupportedImage(N_("The image has no pixels."))
    function = _voi_function(ds)
    file_windows = _file_windows(ds, function)
    default = file_windows[0] if file_windows else _auto_window(pipe, counts)
    presets = _preset_windows(pipe, counts)
    slope, intercept = _rescale_or_none(ds) or (1.0, 0.0)
    return DisplayParams(
        rows=int(stored.shape[0]),
        columns=int(stored.shape[1]),
        bits_stored=int(ds.BitsStored),
        signed=_signed(ds),
        stored_offset=pipe.offset,
        stored_min=int(pipe.values[present[0]]),
        stored_max=int(pipe.values[present[-1]]),
        rescale_slope=slope,
        rescale_intercept=intercept,
        windows=(*(file_windows or (default,)), *presets),
        default_window=default,
        voi_lut_function=function,
        has_voi_lut_sequence=_usable_voi_lut_sequence(ds, pipe),
        invert=pipe.invert,
        padding_value=padding,
        pixel_spacing_mm=_pixel_spacing(ds),
        padding_range_limit=limit,
        has_modality_lut_sequence=bool(ds.get("ModalityLUTSequence")),
    )


def _histogram(
    stored: np.ndarray, pipe: _Pipeline, padding: int | None, limit: int | None
) -> np.ndarray:
    """Pixel count per LUT index, padding excluded (unless the image is all padding)."""
    counts = np.zeros(pipe.values.size, dtype=np.int64)
    rows = _row_blocks(stored)
    for top in rows:  # a block at a time: see BLOCK_PIXELS
        index = _lut_index(stored[top : top + rows.step], pipe.offset).ravel()
        counts += np.bincount(index, minlength=pipe.values.size)[: pipe.values.size]
    if padding is None:
        return counts
    low, high = sorted((padding, padding if limit is None else limit))
    masked = counts.copy()
    masked[max(low + pipe.offset, 0) : max(high + pipe.offset + 1, 0)] = 0
    return masked if masked.any() else counts


def _quantiles(pipe: _Pipeline, counts: np.ndarray, percents: list[float]) -> list[float]:
    """Percentiles of the modality output over the image, from the histogram: no sort of
    millions of pixels, and correct for non-monotonic Modality LUTs too."""
    order = np.argsort(pipe.modality, kind="stable")
    cumulative = np.cumsum(counts[order])
    targets = np.maximum(np.asarray(percents) / 100.0 * cumulative[-1], 1)
    picks = np.minimum(np.searchsorted(cumulative, targets), order.size - 1)
    return [float(v) for v in pipe.modality[order][picks]]


def _window_between(low: float, high: float, label: str) -> Window:
    """The LINEAR window mapping low to black and high to white (width >= 1)."""
    low, high = min(low, high), max(low, high)
    width = max(high - low + 1.0, 1.0)
    return Window(round(low + width / 2, 4), round(width, 4), label)


def _auto_window(pipe: _Pipeline, counts: np.ndarray) -> Window:
    low, high = _quantiles(pipe, counts, [1.0, 99.0])
    return _window_between(low, high, AUTO_LABEL)


def _preset_windows(pipe: _Pipeline, counts: np.ndarray) -> tuple[Window, ...]:
    """Histogram-based starting points (CXR values are not calibrated like CT's HU).

    Percentiles are taken in order of density: denser tissue is brighter, which means
    higher output values for MONOCHROME2 and lower ones for MONOCHROME1.
    lung: the less dense 60% (lung fields, soft tissue edges);
    mediastinum: the denser 60% (heart, mediastinum, diaphragm);
    bone: the densest 40% (ribs, clavicles, spine).
    """
    spans = {"lung": (1.0, 60.0), "mediastinum": (40.0, 99.5), "bone": (60.0, 100.0)}
    windows = []
    for label in PRESET_LABELS:
        first, last = spans[label]
        if pipe.invert:
            first, last = 100.0 - last, 100.0 - first
        low, high = _quantiles(pipe, counts, [first, last])
        windows.append(_window_between(low, high, label))
    return tuple(windows)


def _file_windows(ds: Dataset, function: str) -> tuple[Window, ...]:
    """All of the file's window centre/width pairs that the VOI function accepts."""
    centers = _floats(ds, "WindowCenter")
    widths = _floats(ds, "WindowWidth")
    explanations = _strings(ds, "WindowCenterWidthExplanation")
    windows = []
    for number, (center, width) in enumerate(zip(centers, widths, strict=False), start=1):
        if not _valid_window(center, width, function):
            continue  # e.g. width 0: pydicom would refuse it at display time
        explanation = explanations[number - 1] if number <= len(explanations) else ""
        label = f"file {number}" + (f" ({explanation})" if explanation else "")
        windows.append(Window(center, width, label))
    return tuple(windows)


def _valid_window(center: float, width: float, function: str) -> bool:
    # Both ends finite too: the viewer computes center +- width / 2.
    if not all(math.isfinite(v) for v in (center, width, center - width, center + width)):
        return False
    return width >= 1 if function == "LINEAR" else width > 0


def _check_window(window: Window, function: str) -> None:
    if not _valid_window(float(window.center), float(window.width), function):
        raise ValueError(
            f"Invalid {function} window (center {window.center}, width {window.width}): "
            "the width must be at least 1."
        )


def _is_file_window(window: Window) -> bool:
    return window.label.startswith("file ")


def _voi_function(ds: Dataset) -> str:
    """VOILUTFunction, defaulting to LINEAR (also for values this pipeline does not know)."""
    value = str(ds.get("VOILUTFunction", "") or "").strip().upper()
    return value if value in VOI_FUNCTIONS else "LINEAR"


def _usable_voi_lut_sequence(ds: Dataset, pipe: _Pipeline) -> bool:
    """True when the first VOI LUT Sequence item is complete and pydicom can apply it;
    otherwise the windows are used instead of failing the whole image."""
    sequence = ds.get("VOILUTSequence")
    if not sequence or "LUTDescriptor" not in sequence[0] or "LUTData" not in sequence[0]:
        return False
    try:
        _apply_voi_lut_sequence(ds, pipe.modality[:2])
    except Exception:
        return False
    return True


def _padding(ds: Dataset) -> tuple[int | None, int | None]:
    """PixelPaddingValue and PixelPaddingRangeLimit in stored units (signed when the pixel
    data is signed: the ambiguous US/SS VR is sometimes read as US)."""
    values = []
    for keyword in ("PixelPaddingValue", "PixelPaddingRangeLimit"):
        value = _int_or_none(ds.get(keyword))
        if value is not None and _signed(ds) and value >= SIGNED_OFFSET:
            value -= 2 * SIGNED_OFFSET
        values.append(value)
    padding, limit = values
    return padding, (limit if padding is not None else None)


def _padding_slice(params: DisplayParams, pipe: _Pipeline) -> slice | None:
    if params.padding_value is None:
        return None
    limit = params.padding_range_limit
    low, high = sorted((params.padding_value, params.padding_value if limit is None else limit))
    return slice(max(low + pipe.offset, 0), max(high + pipe.offset + 1, 0))


def _pixel_spacing(ds: Dataset) -> tuple[float, float] | None:
    """ImagerPixelSpacing (at the detector, what a CXR reader measures with), else
    PixelSpacing; zero or malformed values (RG1 has 0\\0) mean unknown."""
    for keyword in ("ImagerPixelSpacing", "PixelSpacing"):
        spacing = _floats(ds, keyword)
        if len(spacing) == 2 and all(math.isfinite(v) and v > 0 for v in spacing):
            return spacing[0], spacing[1]
    return None


def _rescale_or_none(ds: Dataset) -> tuple[float, float] | None:
    """Slope and intercept, applied (as pydicom does) only when both are present. A
    malformed, non-finite or zero-slope pair (which would make every pixel the same
    value) counts as absent rather than failing or blanking the image."""
    slope, intercept = _floats(ds, "RescaleSlope"), _floats(ds, "RescaleIntercept")
    if len(slope) != 1 or len(intercept) != 1 or not math.isfinite(slope[0] + intercept[0]):
        return None
    return (slope[0], intercept[0]) if slope[0] != 0 else None


def _inverted(ds: Dataset) -> bool:
    """Whether low output values display white.

    MONOCHROME1 always. Presentation LUT Shape INVERSE is what MONOCHROME1 images carry
    (PS3.3 C.8.11.6: that inversion *is* the MONOCHROME1 one, never a second one); on a
    MONOCHROME2 image it can only mean "display inverted", so it is honoured.
    """
    photometric = str(ds.PhotometricInterpretation).strip().upper()
    shape = str(ds.get("PresentationLUTShape", "") or "").strip().upper()
    return photometric == "MONOCHROME1" or shape == "INVERSE"


def _signed(ds: Dataset) -> bool:
    return _int_or_none(ds.get("PixelRepresentation")) == 1


# ----------------------------------------------------------------------- derivatives


def make_derivatives(ds: Dataset, stored: np.ndarray) -> Derivatives:
    """Thumbnail, preview and full-resolution JPEGs (default display), and the 16-bit
    data twice: lossy HTJ2K (arrives first) and exact JPEG-LS."""
    pipe = _pipeline(ds, stored)
    params = _params(ds, stored, pipe)
    image = Image.fromarray(_render(stored, pipe, params, _build_lut(pipe, ds, params, None)))
    preview = _fit(image, PREVIEW_MAX)
    # From the preview, not the full image: 4x fewer pixels to filter, same look at 256 px.
    thumbnail = _fit(preview, THUMBNAIL_MAX)
    jpegs = (_jpeg(thumbnail, THUMBNAIL_QUALITY), _jpeg(preview, PREVIEW_QUALITY),
             _jpeg(image, FULL_DISPLAY_QUALITY))
    # The 8-bit images go before the HTJ2K encoder runs: its buffers (up to twice the
    # stream) are the process's peak, which need not hold a rendered image as well.
    del image, preview, thumbnail
    samples = _samples16(stored, pipe.offset)
    exact = jpegls.exact_stream(samples)
    return Derivatives(
        thumbnail_jpeg=jpegs[0],
        preview_jpeg=jpegs[1],
        display_jpeg=jpegs[2],
        approx_htj2k=htj2k.approx_stream(samples, len(exact)),
        exact16=exact,
        params=params,
    )


def _fit(image: Image.Image, longest: int) -> Image.Image:
    """Shrink (never enlarge) to `longest` px on the longest side, keeping the aspect."""
    width, height = image.size
    scale = longest / max(width, height)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # reducing_gap: box-reduce first, then Lanczos; visually the same, several times faster.
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _jpeg(image: Image.Image, quality: int, *, optimize: bool = False) -> bytes:
    # Pillow, not simplejpeg: the same libjpeg-turbo, the same time and bytes on RG1
    # (bench_derivatives), and one dependency less.
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, optimize=optimize)
    return buffer.getvalue()


def _samples16(stored: np.ndarray, offset: int) -> np.ndarray:
    """stored + stored_offset as uint16: the samples of the 16-bit display data."""
    shifted = (stored.astype(np.int32) + offset) if offset else stored
    return np.ascontiguousarray(shifted, dtype=np.uint16)


def decode_exact16(data: bytes) -> np.ndarray:
    """16-bit display data back to a uint16 array of stored + stored_offset: the exact
    JPEG-LS stream, or an HTJ2K one (the approximate stream, and the exact stream of images
    stored before JPEG-LS), told apart by their first bytes."""
    codec, name = (jpegls, "JPEG-LS") if jpegls.is_jpegls(data) else (htj2k, "HTJ2K")
    try:
        samples = codec.decode(data)
    except Exception as exc:  # imagecodecs raises its own error types per codec
        raise ValueError(f"Not a readable {name} stream: {_short(exc)}") from exc
    if samples.dtype != np.uint16 or samples.ndim != 2:
        raise ValueError(f"Expected 16-bit greyscale {name} data.")
    return samples


def decode_full_png16(data: bytes) -> np.ndarray:
    """A full PNG (the 16-bit data of images stored before HTJ2K) back to a uint16 array of
    stored + stored_offset."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "PNG" or image.mode not in ("I;16", "I;16B", "I"):
                raise ValueError(f"Expected a 16-bit greyscale PNG, got {image.mode}.")
            arr = np.array(image)
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:  # Pillow's errors
        raise ValueError(f"Not a readable PNG: {_short(exc)}") from exc
    if arr.dtype != np.uint16:  # Pillow's "I" mode is int32
        if arr.min() < 0 or arr.max() > 0xFFFF:
            raise ValueError("The PNG holds values outside 0..65535.")
        arr = arr.astype(np.uint16)
    return arr


# ------------------------------------------------------------- hashing and redaction


def pixel_hash(stored: np.ndarray) -> str:
    """sha256 over shape, dtype and values: two files with the same pixels are the same
    image whatever their headers or transfer syntax (lossless)."""
    # Little-endian bytes whatever the file's byte order (big-endian syntaxes and bare
    # big-endian datasets decode to '>u2'), so one image has one hash.
    values = np.ascontiguousarray(stored, dtype=stored.dtype.newbyteorder("<"))
    digest = hashlib.sha256()
    digest.update(f"{tuple(values.shape)}|{values.dtype.str}|".encode())
    digest.update(values.data)  # the array's own memory: tobytes() would copy the image
    return digest.hexdigest()


def redact(stored: np.ndarray, rects: list[tuple[int, int, int, int]], value: int) -> np.ndarray:
    """A copy of stored with each (x, y, width, height) rectangle, clipped to the image,
    set to `value`. Empty, negative or fully outside rectangles raise ValueError: a
    redaction that silently does nothing would leave burned-in text visible."""
    if np.issubdtype(stored.dtype, np.integer):
        info = np.iinfo(stored.dtype)
        if not info.min <= value <= info.max:
            raise ValueError(f"Redaction value {value} does not fit {stored.dtype}.")
    out = stored.copy()
    rows, columns = stored.shape[:2]
    for rect in rects:
        x, y, width, height = (int(v) for v in rect)
        if width <= 0 or height <= 0:
            raise ValueError(f"Redaction rectangle {rect} is empty or negative.")
        left, top = max(x, 0), max(y, 0)
        right, bottom = min(x + width, columns), min(y + height, rows)
        if left >= right or top >= bottom:
            raise ValueError(f"Redaction rectangle {rect} lies outside the image.")
        out[top:bottom, left:right] = value
    return out


def background_value(ds: Dataset, stored: np.ndarray) -> int:
    """The stored value that shows as black under the default display, so that redacted
    areas look like background: PixelPaddingValue if present, else among the values that
    display black (preferring those present in the image) the largest for MONOCHROME1
    and the smallest for MONOCHROME2 (the ends of the range where black lives)."""
    pipe = _pipeline(ds, stored)
    params = _params(ds, stored, pipe)
    if params.padding_value is not None:
        return params.padding_value
    lut = _build_lut(pipe, ds, params, None)
    present = (pipe.values >= params.stored_min) & (pipe.values <= params.stored_max)
    for candidates in (present & (lut == 0), lut == 0):
        indices = np.flatnonzero(candidates)
        if indices.size:
            return int(pipe.values[indices[-1] if pipe.invert else indices[0]])
    darkest = np.flatnonzero(lut == lut.min())  # nothing is fully black: the darkest
    return int(pipe.values[darkest[-1] if pipe.invert else darkest[0]])


# --------------------------------------------------------------------------- helpers


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


def _floats(ds: Dataset, keyword: str) -> list[float]:
    """A numeric (possibly multi-valued) attribute as floats; malformed values -> []."""
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return []
        items = [value] if isinstance(value, (str, bytes, int, float)) else list(value)
        return [float(v) for v in items]
    except (TypeError, ValueError, OverflowError):
        return []


def _strings(ds: Dataset, keyword: str) -> list[str]:
    value = ds.get(keyword)
    if value is None or value == "":
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [str(v).strip() for v in items]


def _short(exc: BaseException) -> str:
    """First line of an exception, bounded: enough to diagnose, no dumps in logs."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
