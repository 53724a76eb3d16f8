"""The exact 16-bit display data as a JPEG-LS (ISO/IEC 14495-1) lossless stream.

The samples are `stored + stored_offset` as unsigned 16-bit values, bit for bit. JPEG-LS
and not lossless HTJ2K for this stage (bench/bench_exact_formats.py): it is 0.98-1.00x
the JPEG 2000 lossless bytes of the same pixels where lossless HTJ2K is 1.03-1.10x, for
~90 ms of encoding CPU on a 3.6-Mpixel radiograph (HTJ2K: ~35 ms). The lossy HTJ2K stage
already gives window/level early, so the exact stage needs no resolution-progressive
decoding; the browser decodes it in its worker with CharLS' WebAssembly build (FORMAT.md).
imagecodecs wraps CharLS, the library the browser runs, so both ends agree on the format.

Pure module: numpy and imagecodecs only.
"""

from __future__ import annotations

import imagecodecs
import numpy as np

#: A JPEG-LS stream starts with the JPEG start-of-image marker (CharLS then writes a SPIFF
#: header and the SOF55 frame); an HTJ2K codestream with SOC + SIZ (ff4f ff51).
START_OF_IMAGE = b"\xff\xd8"


def exact_stream(samples: np.ndarray) -> bytes:
    """Lossless JPEG-LS of a 2-D uint16 array (~90 ms for RG1's 3.6 Mpixels)."""
    if samples.dtype != np.uint16 or samples.ndim != 2:
        raise ValueError("The exact display data is a 2-D uint16 array.")
    samples = np.ascontiguousarray(samples)
    try:
        return bytes(imagecodecs.jpegls_encode(samples))
    except imagecodecs.JpeglsError:
        # imagecodecs sizes its output buffer for data that compresses; noise-like pixels
        # code to more than their raw size. Again with room for the worst case: at most
        # LIMIT = 64 bits per 16-bit sample (ISO/IEC 14495-1 A.2.1), plus the headers.
        return bytes(imagecodecs.jpegls_encode(samples, out=samples.size * 8 + 4096))


def is_jpegls(stream: bytes) -> bool:
    return stream[:2] == START_OF_IMAGE


def decode(stream: bytes) -> np.ndarray:
    """A stream back to its samples (tests and the bench; the browser decodes its own)."""
    return np.asarray(imagecodecs.jpegls_decode(stream))
