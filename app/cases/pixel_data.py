"""The Pixel Data that is stored: the declared image and nothing else.

What a file carries beside its image can identify a patient: text in a compressed stream
(JPEG COM/APPn segments, JPEG 2000 comments, bytes after the end of the image), bytes
after the declared frame, and an overlay hidden in the bits above Bits Stored. The stored
file keeps:

- uncompressed: exactly Rows x Columns values, written from the stored values (unused
  high bits cleared, or the sign for signed images), padded to even length;
- JPEG, JPEG-LS, JPEG 2000, HTJ2K: the codestream rewritten marker by marker
  (``codestream``), so a lossy image is not re-encoded, in one fragment. When the stream
  decodes to values above Bits Stored, which only a codestream declaring more bits than
  the header can hold, the values are stored uncompressed instead (lossless; such a stream
  cannot be rewritten without decoding it);
- RLE: re-encoded from the stored values (its header's unused offsets and the bytes
  between segments are free space).

Pure module: pydicom and numpy, no Flask. CodestreamError (a ValueError) says why a
stream was refused.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import (
    UID,
    JPEG2000TransferSyntaxes,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
    RLELossless,
)

from app.cases import codestream, pixels

FAMILIES = {
    **{UID(s): "jpeg" for s in (*JPEGTransferSyntaxes, *JPEGLSTransferSyntaxes)},
    **{UID(s): "j2k" for s in JPEG2000TransferSyntaxes},
}
HIGH_BITS = "values above Bits Stored"


def keep_declared_image(ds: Dataset, decoded: np.ndarray, stored: np.ndarray) -> tuple[str, ...]:
    """Rewrite ds's Pixel Data to hold the declared image alone; what was removed.

    decoded and stored are pixels.decoded_pixels(ds) of the file as read.
    """
    syntax = UID(ds.file_meta.TransferSyntaxUID)
    if not syntax.is_encapsulated:
        ds.PixelData = _native_bytes(ds, stored)
        return ()
    # Offsets into the old fragments; one new fragment needs none.
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if keyword in ds:
            delattr(ds, keyword)
    family = FAMILIES.get(syntax)
    if family is None:
        _re_encode(ds, stored)
        return ()
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    cleaned = codestream.clean(frame, family)
    if cleaned.precision > int(ds.BitsStored) and not np.array_equal(decoded, stored):
        _store_uncompressed(ds, stored)
        return (*cleaned.removed, HIGH_BITS)
    ds.PixelData = encapsulate([cleaned.data], has_bot=False)  # one frame: no offsets needed
    # Only decoding-relevant segments are kept, so the image decodes the same; checked,
    # at the cost of one more decode, when a dropped segment was one a decoder might read.
    if not cleaned.decodes_unchanged and not _decodes_to(ds, stored):
        _store_uncompressed(ds, stored)
    return cleaned.removed


def _decodes_to(ds: Dataset, stored: np.ndarray) -> bool:
    try:
        return np.array_equal(pixels.stored_pixels(ds), stored)
    except ValueError:  # the decoder needed a dropped segment after all
        return False


def _native_bytes(ds: Dataset, stored: np.ndarray) -> bytes:
    """The stored values in the byte order of the file's transfer syntax."""
    little = UID(ds.file_meta.TransferSyntaxUID).is_little_endian
    size = int(ds.BitsAllocated) // 8
    kind = "i" if stored.dtype.kind == "i" else "u"
    data = np.ascontiguousarray(stored, dtype=f"{'<' if little else '>'}{kind}{size}").tobytes()
    if len(data) % 2:
        data += b"\x00"
    if not little and size == 1 and ds["PixelData"].VR == "OW":
        # 8-bit values in OW words: big endian swaps each pair of bytes (PS3.5 8.1.1).
        data = np.frombuffer(data, dtype="<u2").byteswap().tobytes()
    return data


def _store_uncompressed(ds: Dataset, stored: np.ndarray) -> None:
    """Explicit VR Little Endian; Lossy Image Compression stays as the file declared it."""
    ds.set_pixel_data(stored, str(ds.PhotometricInterpretation), int(ds.BitsStored),
                      generate_instance_uid=False)


def _re_encode(ds: Dataset, stored: np.ndarray) -> None:
    if UID(ds.file_meta.TransferSyntaxUID) == RLELossless:
        ds.compress(RLELossless, stored, generate_instance_uid=False)
    else:  # a lossless syntax without an encoder here
        _store_uncompressed(ds, stored)
