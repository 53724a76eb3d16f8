"""One DICOM file from bytes to a de-identified image with derivatives.

Pure (no Flask, no database): runs inside the sandboxed child process. Every refusal raises
``Rejected`` with a reason a trainer can act on and that never quotes a value from the file.
"""

from __future__ import annotations

import io
import re
import warnings
from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import get_decoder
from pydicom.tag import Tag
from pydicom.uid import (
    UID,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGExtended12Bit,
    generate_uid,
)
from pydicom.valuerep import VR, DSfloat

from app.cases import pixel_data, pixels
from app.cases.codestream import CodestreamError
from app.cases.deid_allowlist import ALLOWED
from app.cases.deid_values import label
from app.cases.deidentify import DeidentificationError, DeidOptions, deidentify
from app.cases.processed import (
    NO_FILE_META_REASON,
    ProcessedImage,
    ProcessOptions,
)
from app.cases.sandbox import Rejected
from app.sentences import N_, say

ACCEPTED_MODALITIES = ("CR", "DX")
MAX_DIMENSION = 6000
# Any of these makes a file without the Part 10 header a DICOM image instance.
DATASET_MARKERS = ("SOPClassUID", "Modality", "PixelData")
BARE_ENCODINGS = {(True, True): ImplicitVRLittleEndian, (False, True): ExplicitVRLittleEndian,
                  (False, False): ExplicitVRBigEndian}
PICTURE_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "JPEG2000": "JPEG 2000", "TIFF": "TIFF",
                   "GIF": "GIF", "BMP": "BMP", "WEBP": "WebP"}
VIEWS = {"PA": "PA", "AP": "AP", "LL": "LATERAL", "RL": "LATERAL", "LATERAL": "LATERAL"}


def process_dicom(data: bytes, options: ProcessOptions) -> ProcessedImage:
    try:
        return _process(data, options)
    except Rejected:
        raise
    except Exception as exc:
        named = _named_failure(exc)
        if named is None:
            raise
        raise Rejected(named) from None


# pydicom wraps a failure on one element as "With tag (gggg,eeee) got exception: ...".
TAG_IN_MESSAGE = re.compile(r"\(([0-9A-Fa-f]{4}),\s*([0-9A-Fa-f]{4})\)")


def _named_failure(exc: Exception) -> str | None:
    """A refusal naming the attribute pydicom failed on, or None when it names none.

    Only the tag is taken from the message; the rest of it may quote the value.
    """
    match = TAG_IN_MESSAGE.search(str(exc))
    if match is None:
        return None
    tag = Tag(int(match.group(1), 16), int(match.group(2), 16))
    return say(N_("%(attribute)s: the value could not be read (%(cause)s)"),
               attribute=label(tag), cause=type(exc).__name__)


def _refusal(exc: ValueError) -> str:
    """The pixel pipeline's own refusals already name their attributes in words; pydicom's
    failures on one element are named by _named_failure (never quoting the value)."""
    if isinstance(exc, pixels.UnsupportedImage):
        return str(exc)
    return _named_failure(exc) or str(exc)


def _process(data: bytes, options: ProcessOptions) -> ProcessedImage:
    ds = _read(data, options.allow_no_meta)
    _decode_elements(ds)
    _check_header(ds)
    try:
        decoded, stored = pixels.decoded_pixels(ds)
    except ValueError as exc:
        raise Rejected(_refusal(exc)) from None
    except Exception as exc:
        raise Rejected(say(N_("the pixel data could not be decoded (%(cause)s)"),
                           cause=type(exc).__name__)) from None
    pixel_hash = pixels.pixel_hash(stored)
    transfer_syntax = UID(ds.file_meta.TransferSyntaxUID).name

    try:
        report = deidentify(
            ds,
            DeidOptions(
                secret=options.secret,
                retain_patient_characteristics=options.retain_patient_characteristics,
                dates=options.dates,  # type: ignore[arg-type]
                keep_own_pseudonyms=options.keep_own_pseudonyms,
            ),
        )
    except DeidentificationError as exc:  # names the attribute, never its value
        raise Rejected(str(exc)) from None
    try:
        derivatives = pixels.make_derivatives(ds, stored)
        display_params = derivatives.params.to_json()
    except ValueError as exc:
        raise Rejected(_refusal(exc)) from None
    removed = _keep_declared_image(ds, decoded, stored)

    _ensure_presentation_window(ds, stored)
    # The pixels as read (the file's Pixel Data before it was rewritten) are not needed
    # while the file is written: freed here, they lower the process's peak by an image.
    del decoded, stored
    _ensure_instance_uids(ds)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return ProcessedImage(
        dicom=out.getvalue(),
        thumbnail_jpeg=derivatives.thumbnail_jpeg,
        preview_jpeg=derivatives.preview_jpeg,
        display_jpeg=derivatives.display_jpeg,
        approx_htj2k=derivatives.approx_htj2k,
        exact16=derivatives.exact16,
        display_params=display_params,
        deid_report=_with_pixel_data(report.to_json(), removed),
        pixel_hash=pixel_hash,
        pixel_review_needed=report.pixel_review_needed,
        modality=str(ds.Modality),
        transfer_syntax=transfer_syntax,
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        bits_stored=int(ds.BitsStored),
        study_uid=str(ds.StudyInstanceUID),
        sop_uid=str(ds.SOPInstanceUID),
        patient_pseudonym=str(ds.get("PatientID") or "") or None,
        view=VIEWS.get(str(ds.get("ViewPosition", "") or "").upper(), "PA"),
        sex=_sex(ds),
        age=str(ds.get("PatientAge") or "") or None,
        pixel_spacing_mm=derivatives.params.pixel_spacing_mm,
    )


def _read(data: bytes, allow_no_meta: bool) -> Dataset:
    if data[:4] == b"DICM":
        # Only the 128-byte preamble was lost: put it back so the file meta is read as such.
        data = bytes(128) + data
        has_marker = False
    else:
        has_marker = len(data) >= 132 and data[128:132] == b"DICM"
    if has_marker:
        try:
            ds: Dataset = pydicom.dcmread(io.BytesIO(data))
        except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, OSError) as exc:
            raise Rejected(
                _named_failure(exc)
                or say(N_("the file could not be read as DICOM (%(cause)s)"),
                       cause=type(exc).__name__)
            ) from None
    else:
        # Pictures, text and documents get the plain answer; only a file that really is a
        # DICOM dataset is told about the option, so nobody ticks it in vain.
        ds = _read_without_header(data)
        if not allow_no_meta:
            raise Rejected(NO_FILE_META_REASON)
    if "TransferSyntaxUID" not in ds.file_meta:
        raise Rejected(N_("the file meta has no transfer syntax"))
    return ds


def _read_without_header(data: bytes) -> Dataset:
    """A dataset written without the Part 10 header; Rejected when it is not DICOM at all."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        first = next(iter(ds.keys()), None)
    except Exception:  # a forced parse of arbitrary bytes fails in arbitrary ways
        raise Rejected(_not_dicom(data)) from None
    # Arbitrary bytes parse as one or two nonsense elements; a real dataset starts with a
    # standard (even) group and carries the elements that make it an image instance.
    if first is None or first.group % 2 or not any(k in ds for k in DATASET_MARKERS):
        raise Rejected(_not_dicom(data))
    # pydicom detected the encoding of a bare dataset; record it as file meta.
    if "TransferSyntaxUID" not in ds.file_meta:
        implicit, little = ds.original_encoding
        syntax = BARE_ENCODINGS.get((bool(implicit), bool(little)))
        if syntax is None:
            raise Rejected(N_("implicit VR big endian is not a DICOM transfer syntax"))
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = syntax
    if "SOPClassUID" in ds:
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "SOPInstanceUID" in ds:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def _not_dicom(data: bytes) -> str:
    """Name the picture formats people export from a viewer instead of the DICOM file."""
    try:
        with Image.open(io.BytesIO(data), formats=list(PICTURE_FORMATS)) as picture:
            shown = PICTURE_FORMATS[str(picture.format)]
    except Exception:  # not a picture either (or a damaged one): nothing more to say
        return N_("not a DICOM file")
    return say(N_("not a DICOM file (a %(format)s image: import the original DICOM file from "
                  "the X-ray system or the PACS; a picture lacks the pixel values and header "
                  "the portal needs)"), format=shown)


# Read by value below: each must hold exactly one value (PS3.3 C.12.1, C.7.2.1, C.7.3.1).
SINGLE_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
VR_NAMES = {"IS": N_("integer string"), "DS": N_("decimal string"), "DA": N_("date"),
            "TM": N_("time"), "DT": N_("date-time"), "AS": N_("age string"), "UI": N_("UID"),
            "CS": N_("code string")}


def _decode_elements(ds: Dataset) -> None:
    """Convert every value now, so that a value pydicom cannot read is named.

    pydicom converts lazily; a value it cannot convert raises a bare ValueError wherever
    it is first touched, and the refusal would then say only "(ValueError)". Attributes the
    allow-list drops anyway (private, or not kept) are removed here instead of refusing the
    image for them; a kept one refuses the file with its keyword, tag and VR. The
    exception's own message is not used: it quotes the value.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for tag in list(ds.keys()):
            try:
                elem = ds[tag]
                if elem.VR == "SQ":
                    for item in elem.value:
                        _decode_elements(item)
            except Exception as exc:
                if isinstance(exc, Rejected):
                    raise
                raw = ds.get_item(tag)
                keyword = "" if tag.is_private else keyword_for_tag(tag)
                if keyword not in ALLOWED:
                    del ds[tag]
                    continue
                vr = getattr(raw, "VR", None) or "?"
                if vr not in VR.__members__:  # damaged bytes: never echo them into a reason
                    raise Rejected(say(N_("%(attribute)s: its value representation is not one "
                                          "DICOM defines"), attribute=label(tag))) from None
                raise Rejected(
                    say(N_("%(attribute)s: the value is not a valid %(vr)s (%(vr_name)s)"),
                        attribute=label(tag), vr=vr, vr_name=VR_NAMES[vr]) if vr in VR_NAMES
                    else say(N_("%(attribute)s: the value is not a valid %(vr)s"),
                             attribute=label(tag), vr=vr)
                ) from None


def _check_header(ds: Dataset) -> None:
    """Refuse what we cannot show, before any pixel array is allocated."""
    for keyword in SINGLE_UIDS:
        if keyword in ds and isinstance(ds[keyword].value, MultiValue | list):
            raise Rejected(say(N_("%(attribute)s holds %(count)s UIDs; DICOM allows exactly one"),
                               attribute=label(ds[keyword].tag), count=len(ds[keyword].value)))
    modality = str(ds.get("Modality", "") or "").upper()
    if modality not in ACCEPTED_MODALITIES:
        if modality.isalnum() and len(modality) <= 4:
            raise Rejected(say(N_("modality %(modality)s is not a chest radiograph: only CR and "
                                  "DX images are accepted (Modality (0008,0060))"),
                               modality=modality))
        raise Rejected(N_("modality missing is not a chest radiograph: only CR and DX images "
                          "are accepted (Modality (0008,0060))"))
    if "PixelData" not in ds:
        raise Rejected(N_("the file has no pixel data"))
    if _int(ds, "NumberOfFrames", 1) != 1:
        raise Rejected(N_("multi-frame images are not accepted: one radiograph per file "
                          "(NumberOfFrames (0028,0008))"))
    if _int(ds, "SamplesPerPixel", 1) != 1 or str(
        ds.get("PhotometricInterpretation", "")
    ) not in ("MONOCHROME1", "MONOCHROME2"):
        raise Rejected(N_("only greyscale (MONOCHROME1/MONOCHROME2) images are accepted"))
    rows, columns = _int(ds, "Rows", 0), _int(ds, "Columns", 0)
    if not rows or not columns:
        raise Rejected(N_("the image size (Rows/Columns) is missing"))
    if rows > MAX_DIMENSION or columns > MAX_DIMENSION:
        raise Rejected(say(N_("the image is %(columns)s x %(rows)s pixels (Columns (0028,0011) x "
                              "Rows (0028,0010)); the limit is %(limit)s x %(limit)s"),
                           columns=columns, rows=rows, limit=MAX_DIMENSION))
    bits_allocated = _int(ds, "BitsAllocated", 0)
    bits_stored = _int(ds, "BitsStored", bits_allocated)
    if bits_allocated not in (8, 16) or not 1 <= bits_stored <= bits_allocated:
        raise Rejected(say(N_("only 8- or 16-bit images with up to 16 stored bits are accepted "
                              "(BitsAllocated (0028,0100) is %(allocated)s, BitsStored "
                              "(0028,0101) is %(stored)s)"),
                           allocated=bits_allocated, stored=bits_stored))
    syntax = UID(ds.file_meta.TransferSyntaxUID)
    if not syntax.is_transfer_syntax:
        raise Rejected(N_("the transfer syntax is not a known DICOM transfer syntax"))
    if syntax == JPEGExtended12Bit and bits_stored > 8:
        # No well-kept, non-GPL decoder handles 12-bit lossy JPEG (libjpeg's is GPL; GDCM's
        # Python build lacks it), so such files are refused rather than shown wrongly.
        raise Rejected(N_("12-bit lossy JPEG (JPEG Extended, process 4) is not supported: export "
                          "the image uncompressed, as JPEG 2000 or as JPEG lossless"))
    if syntax.is_compressed:
        try:
            decoder = get_decoder(syntax)
        except NotImplementedError:
            decoder = None
        if decoder is None or not decoder.is_available:
            raise Rejected(say(N_("no decoder is installed for the transfer syntax %(syntax)s"),
                               syntax=syntax.name))
    else:
        expected = rows * columns * (bits_allocated // 8)
        if len(ds.PixelData) < expected:
            raise Rejected(say(N_("the pixel data is truncated (%(size)s of %(expected)s bytes)"),
                               size=len(ds.PixelData), expected=expected))


def _keep_declared_image(ds: Dataset, decoded: np.ndarray, stored: np.ndarray) -> list[str]:
    """The stored Pixel Data holds the image alone (see pixel_data); what was removed."""
    try:
        return list(pixel_data.keep_declared_image(ds, decoded, stored))
    except CodestreamError as exc:
        raise Rejected(say(N_("the compressed pixel data is damaged: %(cause)s"),
                           cause=str(exc))) from None
    except Exception as exc:  # an encoder or decoder failing on what it was given
        raise Rejected(say(N_("the pixel data could not be stored without what lies beside the "
                              "image (%(cause)s)"), cause=type(exc).__name__)) from None


def _with_pixel_data(report: dict[str, Any], removed: list[str]) -> dict[str, Any]:
    """The de-identification report also names what was cut from the pixel data (e.g.
    COM, APP1): the record of a privacy review should show it."""
    return {**report, "pixel_data_removed": sorted(set(removed))} if removed else report


def _ensure_presentation_window(ds: Dataset, stored: Any) -> None:
    """A DX image for presentation needs a window or a VOI LUT (PS3.3 C.8.11.3, Type 1C).

    When the file's window was invalid and removed by the de-identification, the stored
    file gets one spanning the image's values (after the rescale), as the portal's own
    DX files do; the derivatives were made before and keep their own presets.
    """
    if ds.get("SOPClassUID") != DigitalXRayImageStorageForPresentation or "WindowCenter" in ds:
        return
    if ds.get("PresentationIntentType") == "FOR PROCESSING" or "VOILUTSequence" in ds:
        return
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    ends = sorted(float(v) * slope + intercept for v in (stored.min(), stored.max()))
    ds.WindowCenter = DSfloat((ends[0] + ends[1]) / 2, auto_format=True)
    ds.WindowWidth = DSfloat(max(ends[1] - ends[0], 1.0), auto_format=True)


def _int(ds: Dataset, keyword: str, default: int) -> int:
    """One integer attribute, or a refusal naming it (its value may be a list or text)."""
    value = ds.get(keyword)
    if value is None or value == "":
        return default
    try:
        if isinstance(value, MultiValue | list | tuple | bytes):
            raise TypeError
        return int(value)
    except (TypeError, ValueError):
        raise Rejected(say(N_("%(attribute)s must hold one integer"),
                           attribute=label(ds[keyword].tag))) from None


def _ensure_instance_uids(ds: Dataset) -> None:
    """Some files lack their instance UIDs; give them fresh ones (a study of its own)."""
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        if not ds.get(keyword):
            setattr(ds, keyword, generate_uid())
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if "SOPClassUID" in ds:
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID


def _sex(ds: Dataset) -> str | None:
    value = str(ds.get("PatientSex", "") or "").upper()
    return value if value in ("M", "F", "O") else None
