"""Re-making the display derivatives of stored images from their de-identified DICOM.

Images stored before the HTJ2K derivatives have a 16-bit PNG as their only full-resolution
data, images stored before the JPEG-LS exact data a lossless HTJ2K one; rebuilding gives
them the current derivatives (full-resolution JPEG, lossy HTJ2K, exact JPEG-LS) and drops
the old files. The DICOM itself is never rewritten: it is the source.

Each image is rebuilt and committed on its own, so a run that stops (or is stopped) keeps
what it did, and running again goes on with the images still to do.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field

import pydicom
from sqlalchemy import select

from app.cases import pixels
from app.cases.models import CaseImage
from app.cases.storage import (
    DICOM_FILE,
    EXACT_FILE,
    LEGACY_FILES,
    derivative_files,
    derivative_sizes,
    image_store,
)
from app.extensions import db
from app.sentences import N_, say


@dataclass
class RebuildSummary:
    rebuilt: int = 0
    skipped: int = 0  # already had the current derivatives
    failed: list[tuple[int, str]] = field(default_factory=list)  # (image id, reason)


def needs_rebuild(image: CaseImage) -> bool:
    """True for an image without the current derivatives: stored before the HTJ2K ones (no
    "exact" size), or before the JPEG-LS exact data (its exact file is the HTJ2K one)."""
    if "exact" not in (image.sizes or {}):
        return True
    return not image_store().path(image.storage_key, EXACT_FILE).is_file()


def rebuild_derivatives(
    *, every: bool = False, on_image: Callable[[CaseImage], None] | None = None
) -> RebuildSummary:
    """Re-make the derivatives of the images that need it (all images with `every`)."""
    summary = RebuildSummary()
    ids = list(db.session.scalars(select(CaseImage.id).order_by(CaseImage.id)))
    for image_id in ids:
        image = db.session.get_one(CaseImage, image_id)
        if not every and not needs_rebuild(image):
            summary.skipped += 1
        else:
            try:
                rebuild_image(image)
                summary.rebuilt += 1
            except (OSError, ValueError) as exc:  # a missing file or an undecodable image
                db.session.rollback()
                summary.failed.append((image_id, _reason(exc)))
        if on_image is not None:
            on_image(image)
        db.session.expunge(image)  # one image in the session at a time, whatever the count
    return summary


def rebuild_image(image: CaseImage) -> None:
    """The derivatives of one image, re-made from its stored DICOM and committed."""
    store = image_store()
    dicom = store.read(image.storage_key, DICOM_FILE)
    ds = pydicom.dcmread(io.BytesIO(dicom))
    stored = pixels.stored_pixels(ds)
    derived = pixels.make_derivatives(ds, stored)
    # Each file is replaced in one rename: a viewer reading meanwhile gets the old file or
    # the new one. The URLs change with the version, so browsers fetch the new files.
    store.replace(image.storage_key, derivative_files(derived))
    sizes = {**(image.sizes or {}), "dicom": len(dicom), **derivative_sizes(derived)}
    sizes.pop("full", None)
    image.sizes = sizes
    image.display_params = derived.params.to_json()
    image.version += 1
    db.session.commit()
    for name in LEGACY_FILES:  # only once nothing points to them
        store.remove(image.storage_key, name)


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return say(N_("a stored file could not be read or written (%(cause)s)"),
                   cause=exc.strerror or type(exc).__name__)
    return str(exc)[:300]
