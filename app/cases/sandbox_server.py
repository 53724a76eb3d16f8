"""What the sandbox's server loads before it forks a child per file (sandbox.PRELOAD).

Importing the imaging modules is not all: pydicom, Pillow and numpy load more on first use
(decoder plugins, image format plugins, dictionaries) and every child, forked afresh,
would do that again for its one file (~80 ms of CPU for RG1). Parsing one small
synthetic image here does it once, in the server. gc.freeze then keeps the collector from
writing to every preloaded object in each child, which would copy their memory pages.
Nothing of the image is kept.
"""

from __future__ import annotations

import gc

import numpy as np

from app.cases.dicom_build import dataset_bytes, dx_dataset
from app.cases.processing import ProcessOptions, process_dicom


def _warm_up() -> None:
    ramp = (np.arange(64 * 48, dtype=np.uint16).reshape(64, 48) * 5) % 4096
    process_dicom(dataset_bytes(dx_dataset(ramp, bits_stored=12, synthetic=True)),
                  ProcessOptions(secret=b"warm-up" * 5))


_warm_up()
gc.freeze()
