"""Time of de-identifying headers with many private elements, by hand:

    .venv/bin/python bench/bench_deidentify.py [--repeat N] [--sizes 2000 20000 ...]

Not a test (tests never depend on wall-clock speed; tests/test_deidentify.py counts the work
instead). Prints, per number of private elements, the best of N runs (default 3) in
milliseconds and the time per element in microseconds, which stays flat when the
de-identification is linear.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ComputedRadiographyImageStorage, ExplicitVRLittleEndian, generate_uid

from app.cases.deidentify import DeidOptions, deidentify

ELEMENTS_PER_BLOCK = 200  # a private block holds at most 256 elements


def header(private_elements: int) -> Dataset:
    """A small CR image whose header carries this many private elements."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ComputedRadiographyImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "CR"
    ds.PatientName = "Bench^Patient"
    ds.PatientID = "BENCH-1"
    ds.StudyDate = "20240102"
    ds.Rows = ds.Columns = 16
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.zeros((16, 16), dtype=np.uint16).tobytes()
    for block_number in range(-(-private_elements // ELEMENTS_PER_BLOCK)):
        group = 0x0009 + 2 * (block_number // 16)
        block = ds.private_block(group, f"BENCH VENDOR {block_number}", create=True)
        first = block_number * ELEMENTS_PER_BLOCK
        for element in range(min(ELEMENTS_PER_BLOCK, private_elements - first)):
            block.add_new(element, "LO", f"vendor note {first + element}")
    return ds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2_000, 20_000, 50_000])
    args = parser.parse_args()
    options = DeidOptions(secret=b"bench-secret-0123456789abcdef")
    print(f"{'private elements':>16} {'best ms':>10} {'us/element':>11}")
    for size in args.sizes:
        template = header(size)
        best = float("inf")
        for _ in range(args.repeat):
            ds = copy.deepcopy(template)
            start = time.perf_counter()
            report = deidentify(ds, options)
            best = min(best, time.perf_counter() - start)
            assert report.private_tags_removed >= size
        print(f"{size:>16} {best * 1000:>10.1f} {best / size * 1e6:>11.2f}")


if __name__ == "__main__":
    main()
