"""What processing one DICOM file takes and yields, without the processing.

The importing process (the web application, a worker, the command line) builds the options,
hands the file to a sandboxed child and stores what comes back; only the child decodes,
de-identifies and encodes. Importing this module loads no imaging library, so the
application does not pay for pydicom, numpy, Pillow and the codecs at start-up (about half
a second of CPU) to import files it never parses itself.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Any

from app.sentences import N_

STORAGE_FULL_REASON = N_(
    "storage full: there is no space left for the images, so this file was not stored "
    "(nothing of it was kept)"
)
STORAGE_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
NO_FILE_META_REASON = N_(
    "DICOM without a Part 10 header (no preamble or file meta), as older systems write it: "
    "import it with \"Also accept DICOM files without a Part 10 header\" ticked "
    "(--allow-no-meta on the command line)"
)


@dataclass(frozen=True)
class ProcessOptions:
    secret: bytes
    allow_no_meta: bool = False
    retain_patient_characteristics: bool = True
    dates: str = "shift"
    keep_own_pseudonyms: bool = False


@dataclass
class ProcessedImage:
    dicom: bytes  # the de-identified DICOM Part 10 file
    thumbnail_jpeg: bytes
    preview_jpeg: bytes
    display_jpeg: bytes
    approx_htj2k: bytes
    exact16: bytes
    display_params: dict[str, Any]
    deid_report: dict[str, Any]
    pixel_hash: str
    pixel_review_needed: bool
    modality: str
    transfer_syntax: str
    rows: int
    columns: int
    bits_stored: int
    study_uid: str
    sop_uid: str
    patient_pseudonym: str | None
    view: str
    sex: str | None
    age: str | None  # DICOM AS, e.g. "045Y"
    pixel_spacing_mm: tuple[float, float] | None = None  # (row, column), as display_params
    extra: dict[str, Any] = field(default_factory=dict)
    # Bytes per stored file (storage.FILES names) once the child has written the files
    # itself (process_into); the byte fields above are then empty.
    written: dict[str, int] | None = None
