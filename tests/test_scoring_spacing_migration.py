"""The migration that adds CaseImage's pixel spacing backfills existing images from their
stored DICOM (header only), else from the spacing recorded at ingest, else leaves NULL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from app import MIGRATIONS_DIR
from app.cases.ingest import ImportOptions, Source, import_files
from app.cases.storage import DICOM_FILE, image_store
from app.extensions import db
from tests.dicom_factory import cr_dataset, to_bytes

BEFORE = "6491851cb4c1"  # the head this migration follows

IMAGES = sa.table(
    "case_image",
    sa.column("id", sa.Integer),
    sa.column("storage_key", sa.String),
    sa.column("display_params", sa.JSON),
)


def _import(seed: int, **extra) -> int:
    data = to_bytes(cr_dataset(seed=seed, **extra))
    [result] = import_files([Source("x.dcm", lambda: data)], actor=None,
                            options=ImportOptions()).results
    assert result.image_id is not None, result.reason
    return result.image_id


def test_existing_images_are_backfilled_from_their_stored_dicom(app) -> None:
    from_file = _import(8101, ImagerPixelSpacing=[0.15, 0.16])
    from_params = _import(8102, PixelSpacing=[0.3, 0.3])
    without = _import(8103)
    keys = dict(db.session.execute(sa.select(IMAGES.c.id, IMAGES.c.storage_key)).all())
    db.session.remove()
    try:
        downgrade(directory=str(MIGRATIONS_DIR), revision=BEFORE)
        with db.engine.begin() as conn:
            # The file is the only source for the first image...
            params = conn.execute(sa.select(IMAGES.c.display_params)
                                  .where(IMAGES.c.id == from_file)).scalar_one()
            conn.execute(IMAGES.update().where(IMAGES.c.id == from_file)
                         .values(display_params={**params, "pixel_spacing_mm": None}))
        # ...and the second one's file is gone: its ingest record stands in.
        image_store().path(keys[from_params], DICOM_FILE).unlink()
        upgrade(directory=str(MIGRATIONS_DIR))
    finally:
        upgrade(directory=str(MIGRATIONS_DIR))
    with db.engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT id, row_spacing_mm, column_spacing_mm FROM case_image")).all()
    spacing = {row[0]: (row[1], row[2]) for row in rows}
    assert spacing[from_file] == pytest.approx((0.15, 0.16))
    assert spacing[from_params] == pytest.approx((0.3, 0.3))
    assert spacing[without] == (None, None)
