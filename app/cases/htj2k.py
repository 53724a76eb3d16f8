"""The lossy 16-bit display data as an HTJ2K (High-Throughput JPEG 2000, ISO/IEC 15444-15)
codestream, and the lossless HTJ2K of images stored before the exact data became JPEG-LS.

The samples are `stored + stored_offset` as unsigned 16-bit values:

* the **approximate** stream: irreversible 9/7 wavelet at a quantisation step chosen so the
  stream is about ``APPROX_TARGET_BYTES``, the bytes a 2 Mbit/s link carries in the seconds
  it has before window/level should act on full-resolution data (FORMAT.md);
* the **exact** stream, bit for bit, is JPEG-LS (``app.cases.jpegls``: fewer bytes,
  FORMAT.md). Images stored before have a lossless HTJ2K one (reversible 5/3 wavelet,
  ``exact16.j2c``), which ``decode`` still reads; ``exact_stream`` still makes that
  lossless HTJ2K as the approximate stream of images small enough to send whole.

Raw codestreams (no JP2/JPH box) in resolution-major order (RPCL, imagecodecs' default),
which is what the browser's OpenJPH WebAssembly decoder reads. imagecodecs wraps OpenJPH,
the same library the browser runs, so both ends agree on the format.

Pure module: numpy and imagecodecs only.
"""

from __future__ import annotations

import math

import imagecodecs
import numpy as np

# ~4.4 s at 2 Mbit/s after the preview and the full-resolution JPEG (bench_viewer_network).
APPROX_TARGET_BYTES = 550_000
# Accepted band around the target: outside it the step is corrected once.
APPROX_TOLERANCE = (0.7, 1.15)
# Bits per pixel saved per doubling of the quantisation step, measured on RG1 and on a
# 12-bit 2500x2048 radiograph (1.0-1.3 between 0.5 and 3 bits per pixel): the first guess.
BITS_PER_STEP_DOUBLING = 1.1
# Lossless HTJ2K spends about this many more bits per pixel than JPEG-LS on a radiograph
# (RG1 0.48, the 12-bit 2500x2048 image 0.50): the rate model was fitted on HTJ2K's
# lossless size and is given JPEG-LS's.
HTJ2K_OVER_JPEGLS_BPP = 0.5
UINT16_RANGE = 65536  # imagecodecs' `level` for uint16 is the step as a fraction of this


def exact_stream(samples: np.ndarray) -> bytes:
    """Lossless HTJ2K of a uint16 array (~35 ms for RG1's 3.6 Mpixels): the approximate
    stream of an image small enough to send exactly in the approximate stage's time."""
    return bytes(imagecodecs.htj2k_encode(_contiguous(samples), reversible=True))


def approx_stream(samples: np.ndarray, exact_bytes: int,
                  target_bytes: int = APPROX_TARGET_BYTES) -> bytes:
    """Lossy full-resolution HTJ2K of a uint16 array, close to `target_bytes`.

    `exact_bytes` is the size of the exact (JPEG-LS) stream of the same samples. HTJ2K has
    no quality layers to cut a stream at a byte count, so the step comes from a rate model:
    the lossless size gives the bits per pixel of the image's own detail and noise, and
    every doubling of the step saves about BITS_PER_STEP_DOUBLING of them. One correction,
    from the measured size, when the guess falls outside the tolerance band.
    """
    samples = _contiguous(samples)
    if exact_bytes <= target_bytes:  # small or flat images: the exact data arrives in time
        return exact_stream(samples)
    pixels = samples.size
    lossless_bpp = exact_bytes * 8 / pixels + HTJ2K_OVER_JPEGLS_BPP
    target_bpp = target_bytes * 8 / pixels
    step = 2.0 ** ((lossless_bpp - target_bpp) / BITS_PER_STEP_DOUBLING)
    stream = _lossy(samples, step)
    low, high = APPROX_TOLERANCE
    if not low * target_bytes <= len(stream) <= high * target_bytes:
        # The same rule from where the guess landed: the miss in bits per pixel, in
        # doublings of the step.
        missed_bpp = len(stream) * 8 / pixels - target_bpp
        step = max(1.0, step * 2.0 ** (missed_bpp / BITS_PER_STEP_DOUBLING))
        retry = _lossy(samples, step)
        # A retry that overshoots the top of the band is kept only if the guess was even
        # larger: arriving late is worse than a little more quantisation.
        if len(retry) <= high * target_bytes or len(retry) < len(stream):
            stream = retry
    return stream


def decode(stream: bytes) -> np.ndarray:
    """A stream back to its uint16 samples (tests and the bench; the browser decodes its own)."""
    return np.asarray(imagecodecs.htj2k_decode(stream))


def _lossy(samples: np.ndarray, step: float) -> bytes:
    level = min(max(step, 1.0), UINT16_RANGE / 4) / UINT16_RANGE
    if not math.isfinite(level):
        level = 1.0 / UINT16_RANGE
    return bytes(imagecodecs.htj2k_encode(samples, level=level, reversible=False))


def _contiguous(samples: np.ndarray) -> np.ndarray:
    if samples.dtype != np.uint16 or samples.ndim != 2:
        raise ValueError("HTJ2K display data is a 2-D uint16 array.")
    return np.ascontiguousarray(samples)
