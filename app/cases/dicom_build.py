"""Build DICOM chest radiographs from pixel arrays.

Used for the synthetic phantoms and for importing public PNG datasets (NLM Shenzhen and
Montgomery, TBX11K). The result is a Part 10 file, Explicit VR Little Endian, that any
viewer opens: Digital X-Ray Image Storage - For Presentation by default, or Secondary
Capture when the pixels were not acquired as a DX image.

There is no patient behind these images, so the identifying attributes are present but
empty and the dataset says PatientIdentityRemoved YES. Provenance (which dataset, which
file, its licence) is deliberately kept out of the DICOM: de-identification strips free
text, so the caller stores it in the database instead.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import pydicom
from PIL import Image, UnidentifiedImageError
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

SYNTHETIC_MANUFACTURER = "CXR Academy phantom"
MAX_PNG_SIDE = 6000
# Greyscale PNGs saved as RGB (TBX11K, some NLM copies) repeat one value in R, G and B;
# a level or two of difference comes from lossy steps upstream and is not colour.
GREY_TOLERANCE = 2

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2")
# Display orientation of the rows and columns (PS3.3 C.7.6.1.1.1) for the usual chest
# views: a frontal film is shown as if facing the patient, so rows run to the patient's
# left; a lateral is shown with the front of the patient facing the viewer's left or right.
_ORIENTATION = {"PA": ["L", "F"], "AP": ["L", "F"], "LL": ["P", "F"], "RL": ["A", "F"]}


def dx_dataset(
    pixels: np.ndarray,
    *,
    bits_stored: int,
    photometric: str = "MONOCHROME2",
    pixel_spacing_mm: float | None = None,
    sex: str | None = None,
    age_years: int | None = None,
    view: str = "PA",
    window: tuple[float, float] | None = None,
    burned_in_annotation: str = "NO",
    secondary_capture: bool = False,
    synthetic: bool = False,
) -> FileDataset:
    """A DX (or Secondary Capture) Part 10 dataset holding ``pixels`` unchanged.

    ``pixels`` is a 2-D uint8 (bits_stored 8) or uint16 (bits_stored 8..16) array of
    stored values. Without ``window``, the VOI window spans the data's own range, since a
    For Presentation image must carry one. Raises ValueError for invalid arguments.
    """
    array = _checked_pixels(pixels, bits_stored)
    _check_options(photometric, sex, age_years, view, window, burned_in_annotation)
    if secondary_capture:
        sop_class = SecondaryCaptureImageStorage
    else:
        sop_class = DigitalXRayImageStorageForPresentation
    ds = _file_dataset(sop_class)
    _set_patient(ds, sex, age_years, synthetic)
    _set_study_and_series(ds, view, synthetic, secondary_capture)
    _set_pixels(ds, array, bits_stored, photometric)
    _set_presentation(ds, array, photometric, window, burned_in_annotation)
    if pixel_spacing_mm is not None:
        if not pixel_spacing_mm > 0:
            raise ValueError(f"pixel_spacing_mm must be positive, not {pixel_spacing_mm!r}")
        spacing = [_ds_number(pixel_spacing_mm)] * 2
        ds.ImagerPixelSpacing = spacing
        ds.PixelSpacing = spacing
    return ds


def dataset_bytes(ds: FileDataset) -> bytes:
    """The dataset as a DICOM Part 10 file: preamble, b"DICM", file meta, dataset."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def png_to_pixels(data: bytes) -> tuple[np.ndarray, int]:
    """Decode a greyscale PNG to a 2-D array and its bit depth (8 or 16).

    Accepts 8- and 16-bit greyscale and RGB(A) whose channels are equal (within
    GREY_TOLERANCE levels). The image size is checked from the PNG header before any
    pixel is decoded, so a huge declared image costs nothing. Raises ValueError for
    non-PNG data, colour images, or images larger than MAX_PNG_SIDE on a side.
    """
    width, height = _png_header_size(data)
    if width > MAX_PNG_SIDE or height > MAX_PNG_SIDE:
        raise ValueError(
            f"PNG is {width} x {height} pixels; at most {MAX_PNG_SIDE} pixels a side is allowed"
        )
    try:
        image = Image.open(io.BytesIO(data), formats=["PNG"])
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"unreadable PNG: {exc}") from exc
    return _grey_array(image)


# --------------------------------------------------------------------------- checks


def _checked_pixels(pixels: np.ndarray, bits_stored: int) -> np.ndarray:
    if not isinstance(pixels, np.ndarray) or pixels.ndim != 2 or 0 in pixels.shape:
        raise ValueError("pixels must be a non-empty 2-D numpy array")
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"pixels must be uint8 or uint16, not {pixels.dtype}")
    if max(pixels.shape) > 0xFFFF:
        raise ValueError("DICOM allows at most 65535 rows and columns")
    if isinstance(bits_stored, bool) or not isinstance(bits_stored, int):
        raise ValueError(f"bits_stored must be an integer, not {bits_stored!r}")
    allocated = pixels.dtype.itemsize * 8
    if not 8 <= bits_stored <= allocated:
        raise ValueError(f"bits_stored must be 8..{allocated} for {pixels.dtype} pixels")
    if int(pixels.max()) >= 1 << bits_stored:
        raise ValueError(f"pixel value {int(pixels.max())} does not fit in {bits_stored} bits")
    return np.ascontiguousarray(pixels)


def _check_options(
    photometric: str,
    sex: str | None,
    age_years: int | None,
    view: str,
    window: tuple[float, float] | None,
    burned_in_annotation: str,
) -> None:
    if photometric not in _PHOTOMETRIC:
        raise ValueError(f"photometric must be one of {', '.join(_PHOTOMETRIC)}")
    if sex not in (None, "M", "F", "O"):
        raise ValueError(f"sex must be 'M', 'F', 'O' or None, not {sex!r}")
    if age_years is not None and (
        isinstance(age_years, bool) or not isinstance(age_years, int) or not 0 <= age_years <= 999
    ):
        raise ValueError(f"age_years must be an integer 0..999, not {age_years!r}")
    if view not in _ORIENTATION:
        raise ValueError(f"view must be one of {', '.join(_ORIENTATION)}, not {view!r}")
    if window is not None and (len(window) != 2 or not window[1] >= 1):
        raise ValueError("window must be (center, width) with width >= 1")
    if burned_in_annotation not in ("YES", "NO"):
        raise ValueError("burned_in_annotation must be 'YES' or 'NO'")


# --------------------------------------------------------------------------- modules


def _file_dataset(sop_class: str) -> FileDataset:
    instance = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"PYDICOM {pydicom.__version__}"[:16]
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = instance
    return ds


def _set_patient(ds: FileDataset, sex: str | None, age: int | None, synthetic: bool) -> None:
    # Type 2 attributes: present, empty. There is no patient to name or date.
    ds.PatientName = ""
    ds.PatientID = ""
    ds.PatientBirthDate = ""
    ds.PatientSex = sex or ""
    if age is not None:
        ds.PatientAge = f"{age:03d}Y"
    ds.PatientIdentityRemoved = "YES"
    # Required with PatientIdentityRemoved YES when no method code sequence is given.
    ds.DeidentificationMethod = (
        "Synthetic image; no patient" if synthetic else "Built from pixel data only"
    )


def _set_study_and_series(ds: FileDataset, view: str, synthetic: bool, sc: bool) -> None:
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyDate = ""
    ds.StudyTime = ""
    ds.StudyID = ""
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.Modality = "DX"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Manufacturer = SYNTHETIC_MANUFACTURER if synthetic else ""
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = view
    ds.PatientOrientation = _ORIENTATION[view]
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    if sc:
        # SC Equipment: "SYN" synthetic image, "WSD" workstation (a converted file).
        ds.ConversionType = "SYN" if synthetic else "WSD"


def _set_pixels(ds: FileDataset, array: np.ndarray, bits_stored: int, photometric: str) -> None:
    allocated = array.dtype.itemsize * 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = array.shape
    ds.BitsAllocated = allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    data = array.astype("<u2" if allocated == 16 else "u1", copy=False).tobytes()
    if len(data) % 2:
        data += b"\0"  # DICOM values have even length
    ds.add_new(0x7FE00010, "OW" if allocated == 16 else "OB", data)


def _set_presentation(
    ds: FileDataset,
    array: np.ndarray,
    photometric: str,
    window: tuple[float, float] | None,
    burned_in_annotation: str,
) -> None:
    monochrome2 = photometric == "MONOCHROME2"
    # DX Image module: stored values are proportional to log exposure; with MONOCHROME2
    # high values mean less X-ray intensity (dense), hence sign -1.
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = -1 if monochrome2 else 1
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.RescaleType = "US"
    ds.PresentationLUTShape = "IDENTITY" if monochrome2 else "INVERSE"
    ds.LossyImageCompression = "00"
    ds.BurnedInAnnotation = burned_in_annotation
    if window is None:
        low, high = int(array.min()), int(array.max())
        window = ((low + high + 1) / 2, float(max(high - low + 1, 2)))
    ds.WindowCenter = _ds_number(window[0])
    ds.WindowWidth = _ds_number(window[1])


def _ds_number(value: float) -> str:
    """A Decimal String (at most 16 characters) for a float."""
    text = f"{float(value):.6g}"
    return text if len(text) <= 16 else f"{float(value):.8e}"


# --------------------------------------------------------------------------- PNG


def _png_header_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which the PNG format puts first."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValueError("PNG data must be bytes")
    head = bytes(data[:24])
    if not head.startswith(_PNG_SIGNATURE):
        raise ValueError("not a PNG file (missing PNG signature)")
    if len(head) < 24 or head[12:16] != b"IHDR":
        raise ValueError("not a valid PNG file (no IHDR header)")
    width, height = struct.unpack(">II", head[16:24])
    if width == 0 or height == 0:
        raise ValueError("PNG header declares an empty image")
    return width, height


def _grey_array(image: Image.Image) -> tuple[np.ndarray, int]:
    mode = image.mode
    if mode == "L":
        return np.array(image, dtype=np.uint8), 8
    if mode.startswith("I;16") or mode == "I":
        values = np.array(image)
        if values.min() < 0 or values.max() > 0xFFFF:
            raise ValueError(f"PNG values out of the 16-bit range (mode {mode})")
        return values.astype(np.uint16), 16
    if mode == "1":
        return np.array(image.convert("L"), dtype=np.uint8), 8
    if mode in ("LA", "La"):
        return np.array(image.getchannel("L"), dtype=np.uint8), 8
    if mode in ("P", "PA"):
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGB", "RGBA", "RGBa", "RGBX"):
        return _grey_from_rgb(np.asarray(image)[..., :3]), 8
    raise ValueError(f"unsupported PNG pixel format {mode!r}; expected greyscale")


def _grey_from_rgb(rgb: np.ndarray) -> np.ndarray:
    spread = int((rgb.max(axis=2) - rgb.min(axis=2)).max())
    if spread > GREY_TOLERANCE:
        raise ValueError(
            f"colour image: colour channels differ by up to {spread} levels; "
            "a chest radiograph must be greyscale"
        )
    if spread == 0:
        return np.array(rgb[..., 0], dtype=np.uint8)
    total = rgb.astype(np.uint16).sum(axis=2)
    return ((total + 1) // 3).astype(np.uint8)


__all__ = [
    "GREY_TOLERANCE",
    "MAX_PNG_SIDE",
    "SYNTHETIC_MANUFACTURER",
    "dataset_bytes",
    "dx_dataset",
    "png_to_pixels",
]
