"""What the sandbox's server loads before it forks a child per file (sandbox.PRELOAD).

Importing the imaging modules is not all: pydicom, Pillow and numpy load more on first use
(decoder plugins, image format plugins, dictionaries) and every child, forked afresh,
would do that again for its one file (~80 ms of CPU for RG1). Parsing one small
synthetic image here does it once, in the server. gc.freeze then keeps the collector from
writing to every preloaded object in each child, which would copy their memory pages.
Nothing of the image is kept.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

import numpy as np

from app.cases.dicom_build import dataset_bytes, dx_dataset
from app.cases.processing import ProcessOptions, process_dicom

# glibc's malloc raises its mmap threshold to the size of each large block freed (up to
# 32 MB), so that after the first image every frame-sized buffer (the file, the pixels,
# the encoders' output) comes from the heap and stays resident after it is freed: a child's
# peak then adds up buffers that were never alive together. A fixed threshold gives such
# blocks back to the system when they are freed (measured on a 3000 x 3000 16-bit image:
# the child's peak 24 MB lower, its start 12 MB lower).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
LARGE_BLOCK = 256 * 1024


def _return_large_blocks() -> None:
    path = ctypes.util.find_library("c")
    mallopt = getattr(ctypes.CDLL(path), "mallopt", None) if path else None
    if mallopt is None:  # not glibc: its allocator has its own rules
        return
    mallopt(M_MMAP_THRESHOLD, LARGE_BLOCK)
    mallopt(M_TRIM_THRESHOLD, LARGE_BLOCK)


def _warm_up() -> None:
    ramp = (np.arange(64 * 48, dtype=np.uint16).reshape(64, 48) * 5) % 4096
    process_dicom(dataset_bytes(dx_dataset(ramp, bits_stored=12, synthetic=True)),
                  ProcessOptions(secret=b"warm-up" * 5))


_return_large_blocks()
_warm_up()
gc.freeze()
