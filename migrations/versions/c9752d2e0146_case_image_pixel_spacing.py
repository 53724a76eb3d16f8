"""case image pixel spacing (for the 10 mm point tolerance of scoring)

Revision ID: c9752d2e0146
Revises: 6491851cb4c1
Create Date: 2026-12-05 09:00:00.000000

Existing images are backfilled from their stored (de-identified) DICOM file, read header
only: ImagerPixelSpacing, else PixelSpacing, two positive numbers in mm. Where the file
cannot be read, the spacing recorded at ingest in display_params is used; otherwise the
spacing stays NULL and scoring falls back to a 43 cm wide image.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'c9752d2e0146'
down_revision = '6491851cb4c1'
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

DICOM_FILE = "image.dcm"  # app/cases/storage.py: root / key[:2] / key / image.dcm


def upgrade():
    with op.batch_alter_table('case_image', schema=None) as batch_op:
        batch_op.add_column(sa.Column('row_spacing_mm', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('column_spacing_mm', sa.Float(), nullable=True))
    _backfill()


def downgrade():
    with op.batch_alter_table('case_image', schema=None) as batch_op:
        batch_op.drop_column('column_spacing_mm')
        batch_op.drop_column('row_spacing_mm')


def _backfill() -> None:
    images = sa.table(
        'case_image',
        sa.column('id', sa.Integer),
        sa.column('storage_key', sa.String),
        sa.column('display_params', sa.JSON),
        sa.column('row_spacing_mm', sa.Float),
        sa.column('column_spacing_mm', sa.Float),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(images.c.id, images.c.storage_key, images.c.display_params)
    ).all()
    root = _storage_root()
    found = 0
    for image_id, key, params in rows:
        spacing = _from_dicom(root, key) or _from_params(params)
        if spacing is None:
            continue
        found += 1
        bind.execute(
            images.update()
            .where(images.c.id == image_id)
            .values(row_spacing_mm=spacing[0], column_spacing_mm=spacing[1])
        )
    if rows:
        log.info("pixel spacing found for %d of %d images", found, len(rows))


def _storage_root() -> Path | None:
    try:
        from flask import current_app

        folder = current_app.config.get("IMAGE_STORAGE_PATH")
    except RuntimeError:  # no application (alembic run on its own)
        return None
    return Path(folder) if folder else None


def _valid(values: Any) -> tuple[float, float] | None:
    try:
        row, column = (float(v) for v in values)
    except (TypeError, ValueError):
        return None
    if row > 0 and column > 0 and math.isfinite(row + column):
        return row, column
    return None


def _from_dicom(root: Path | None, key: str | None) -> tuple[float, float] | None:
    if root is None or not key or not key.isalnum():
        return None
    path = root / key[:2] / key / DICOM_FILE
    if not path.is_file():
        return None
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True,
                             specific_tags=["ImagerPixelSpacing", "PixelSpacing"])
    except Exception:  # an unreadable file keeps its NULL spacing; the upgrade goes on
        log.warning("image %s: the stored DICOM could not be read for its pixel spacing", key)
        return None
    for keyword in ("ImagerPixelSpacing", "PixelSpacing"):
        value = ds.get(keyword)
        if value is not None and not isinstance(value, str | bytes):
            spacing = _valid(value)
            if spacing is not None:
                return spacing
    return None


def _from_params(params: Any) -> tuple[float, float] | None:
    if not isinstance(params, dict) or params.get("pixel_spacing_mm") is None:
        return None
    return _valid(params["pixel_spacing_mm"])
