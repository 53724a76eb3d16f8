"""What a sandboxed import child runs: process one DICOM file and write what it yields.

Kept apart from ``processed`` (the options and results the importing process handles) so
that the light side never names the processing module, which loads pydicom, numpy and the
codecs; the child imports this module, and ``processing`` only when it first processes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from app.cases import storage
from app.cases.processed import (
    STORAGE_FULL_ERRNOS,
    STORAGE_FULL_REASON,
    ProcessedImage,
    ProcessOptions,
)
from app.cases.sandbox import Rejected
from app.sentences import N_, say


def process_dicom(data: bytes, options: ProcessOptions) -> ProcessedImage:
    """app.cases.processing.process_dicom, loaded on first use: in the sandbox's children it
    is preloaded already (sandbox_server), and the importing process never calls it."""
    from app.cases.processing import process_dicom as process

    return process(data, options)


def process_into(data: bytes, options: ProcessOptions, folder: str,
                 process: Callable[[bytes, ProcessOptions], ProcessedImage] = process_dicom
                 ) -> ProcessedImage:
    """Runs in the sandbox's child: ``process`` the file and write its de-identified DICOM
    and derivatives into ``folder``, the import's staging folder for this image, returning
    the image without their bytes.

    Writing them here rather than in the importing process keeps that process's share of
    each file small (it only records the image and moves the folder into place), so a
    batch runs on as many cores as it has children: receiving and writing ~12 MB per
    RG1-sized image took it ~35 ms of the ~60 it spent per file. The folder is the
    importer's: it commits it with the database row or removes it, whatever happens here.
    """
    processed = process(data, options)
    files = {storage.DICOM_FILE: processed.dicom, **storage.derivative_files(processed)}
    try:
        for name, blob in files.items():
            storage.write_image_file(Path(folder), name, blob)
    except OSError as exc:
        if exc.errno in STORAGE_FULL_ERRNOS:
            raise Rejected(STORAGE_FULL_REASON) from None
        raise Rejected(say(N_("could not be stored (%(cause)s)"),
                           cause=exc.strerror or type(exc).__name__)) from None
    written = {"dicom": len(processed.dicom), **storage.derivative_sizes(processed)}
    return replace(processed, dicom=b"", thumbnail_jpeg=b"", preview_jpeg=b"",
                   display_jpeg=b"", approx_htj2k=b"", exact16=b"", written=written)
