"""`cases rebuild-derivatives`: images stored before the HTJ2K derivatives (a 16-bit PNG as
their only full-resolution data) get the current derivatives from their stored DICOM, and
until then the viewer is sent what they have."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

from app.auth.roles import Role
from app.cases import pixels
from app.cases.ingest import ImportOptions, Source, import_files
from app.cases.models import CaseImage
from app.cases.storage import (
    APPROX_FILE,
    CURRENT_FILES,
    DICOM_FILE,
    DISPLAY_FILE,
    EXACT_FILE,
    LEGACY_FULL_FILE,
    PREVIEW_FILE,
    THUMBNAIL_FILE,
    image_store,
)
from app.extensions import db
from tests.dicom_factory import cr_dataset, to_bytes


def make_legacy(image: CaseImage) -> np.ndarray:
    """Turn a freshly imported image into one stored before HTJ2K: the files and `sizes`
    the earlier ingest wrote (thumbnail, preview, 16-bit PNG of stored + offset)."""
    store = image_store()
    ds_bytes = store.read(image.storage_key, DICOM_FILE)
    samples = pixels.decode_exact16(store.read(image.storage_key, EXACT_FILE))
    png = io.BytesIO()
    Image.fromarray(samples).save(png, format="PNG", compress_level=1)
    store.replace(image.storage_key, {LEGACY_FULL_FILE: png.getvalue()})
    for name in (DISPLAY_FILE, APPROX_FILE, EXACT_FILE):
        store.remove(image.storage_key, name)
    image.sizes = {"dicom": len(ds_bytes), "full": len(png.getvalue()),
                   **{k: image.sizes[k] for k in ("thumbnail", "preview")}}
    db.session.commit()
    return samples


def import_image(seed: int, **kwargs) -> CaseImage:
    data = to_bytes(cr_dataset(seed=seed, **kwargs))
    [result] = import_files([Source(f"{seed}.dcm", lambda: data)], actor=None,
                            options=ImportOptions()).results
    assert result.status == "imported", result.reason
    return db.session.get_one(CaseImage, result.image_id)


def run(app, *args: str):
    return app.test_cli_runner().invoke(args=["cases", "rebuild-derivatives", *args])


@pytest.fixture
def legacy(app) -> tuple[CaseImage, np.ndarray]:
    image = import_image(1, rows=80, columns=60)
    return image, make_legacy(image)


def files_of(image: CaseImage) -> list[str]:
    return sorted(p.name for p in image_store().folder(image.storage_key).iterdir())


def test_the_viewer_gets_the_png_of_an_image_not_yet_rebuilt(client, login_as, legacy):
    image, samples = legacy
    login_as(Role.TRAINER)
    data = client.get(f"/viewer/api/cases/{image.case_id}").get_json()
    [sent] = data["images"]
    assert sent["full_url"].endswith("/full?v=1")
    assert sent["display_url"] is None and sent["approx_url"] is None
    assert sent["exact_url"] is None
    full = client.get(sent["full_url"])
    assert full.mimetype == "image/png"
    np.testing.assert_array_equal(pixels.decode_full_png16(full.data), samples)
    # Asking for a file the image does not have is a 404 with a reason, not a 500.
    missing = client.get(f"/cases/images/{image.id}/exact?v=1")
    assert missing.status_code == 404
    assert "no exact data" in missing.get_data(as_text=True)


def test_rebuild_gives_an_old_image_the_current_derivatives(app, client, login_as, legacy):
    image, samples = legacy
    assert files_of(image) == sorted([DICOM_FILE, THUMBNAIL_FILE, PREVIEW_FILE,
                                      LEGACY_FULL_FILE])
    dicom = image_store().read(image.storage_key, DICOM_FILE)
    result = run(app)
    assert result.exit_code == 0, result.output
    assert "1 image(s) rebuilt, 0 already current, 0 failed." in result.output
    db.session.expire_all()
    image = db.session.get_one(CaseImage, image.id)
    assert files_of(image) == sorted(CURRENT_FILES)  # the PNG is gone
    assert image_store().read(image.storage_key, DICOM_FILE) == dicom  # the source, unchanged
    assert image.version == 2 and "full" not in image.sizes
    assert image.sizes["exact"] == len(image_store().read(image.storage_key, EXACT_FILE))
    np.testing.assert_array_equal(
        pixels.decode_exact16(image_store().read(image.storage_key, EXACT_FILE)), samples)

    login_as(Role.TRAINER)
    [sent] = client.get(f"/viewer/api/cases/{image.case_id}").get_json()["images"]
    assert sent["exact_url"].endswith("/exact?v=2") and sent["full_url"] is None
    assert client.get(sent["display_url"]).mimetype == "image/jpeg"

    again = run(app)
    assert again.exit_code == 0, again.output
    assert "0 image(s) rebuilt, 1 already current, 0 failed." in again.output


def test_an_image_that_cannot_be_rebuilt_is_named_and_the_others_are_done(app, legacy):
    broken, _ = legacy
    other = import_image(2, rows=70, columns=50)
    make_legacy(other)
    broken_id, other_id = broken.id, other.id
    image_store().remove(broken.storage_key, DICOM_FILE)
    result = run(app)
    assert result.exit_code == 1
    assert "1 image(s) rebuilt, 0 already current, 1 failed." in result.output
    assert f"image {broken_id}: a stored file could not be read" in result.output
    db.session.expire_all()
    broken = db.session.get_one(CaseImage, broken_id)
    assert broken.version == 1 and "full" in broken.sizes  # untouched: still viewable
    assert LEGACY_FULL_FILE in files_of(broken)
    assert "exact" in db.session.get_one(CaseImage, other_id).sizes


def test_all_rebuilds_current_images_too(app):
    image = import_image(3, rows=40, columns=30)
    before = image_store().read(image.storage_key, EXACT_FILE)
    result = run(app, "--all")
    assert result.exit_code == 0, result.output
    assert "1 image(s) rebuilt" in result.output
    db.session.expire_all()
    rebuilt = db.session.scalars(select(CaseImage)).one()
    assert rebuilt.version == 2
    assert image_store().read(rebuilt.storage_key, EXACT_FILE) == before  # deterministic
