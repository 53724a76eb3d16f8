"""No patient data survives import: plant distinctive PHI everywhere, then search every
stored byte (image files, every database row, every log line) for it."""

from __future__ import annotations

import io
import json
import logging
import zipfile
from pathlib import Path

import pydicom
from sqlalchemy import select

from app.auth.roles import Role
from app.cases.models import Case, CaseImage
from app.extensions import db
from tests.dicom_factory import PHI, cr_dataset, phi_strings, to_bytes
from tests.forms import submit_form


def _database_dump() -> bytes:
    chunks = []
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(select(table)).mappings():
            chunks.append(json.dumps({k: str(v) for k, v in row.items()}))
    return "\n".join(chunks).encode()


def _stored_files(root: Path) -> list[tuple[str, bytes]]:
    return [(str(p.relative_to(root)), p.read_bytes()) for p in root.rglob("*") if p.is_file()]


def test_planted_phi_never_reaches_storage_database_or_logs(app, client, login_as, caplog):
    caplog.set_level(logging.DEBUG)
    login_as(Role.TRAINER)
    phi_file = to_bytes(cr_dataset(seed=99, phi=True, burned_in=None))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("Quarrington_Zebulon_chest.dcm", phi_file)
    buffer.seek(0)
    response = submit_form(client, "/cases/upload", button="Import", fields={
        "files": [(io.BytesIO(phi_file), "PHI-ID-K2J9X7.dcm"), (buffer, "batch.zip")]})
    assert response.status_code == 200, response.get_data(as_text=True)
    page = response.get_data(as_text=True)
    assert "1 imported · 1 already in the library · 0 refused" in page, page[-3000:]
    # The report names attributes only, never their values.
    for value in PHI.values():
        if "Date" not in value:
            assert value not in page.split("De-identification")[1]

    storage = Path(app.config["IMAGE_STORAGE_PATH"])
    haystacks = [("database", _database_dump()), ("logs", caplog.text.encode())]
    haystacks += _stored_files(storage)
    haystacks += [("file names", "\n".join(str(p) for p in storage.rglob("*")).encode())]
    for needle in phi_strings():
        for where, data in haystacks:
            assert needle not in data, f"{needle!r} found in {where}"

    image = db.session.scalars(select(CaseImage)).one()
    stored = pydicom.dcmread(storage / image.storage_key[:2] / image.storage_key / "image.dcm")
    assert stored.PatientIdentityRemoved == "YES"
    assert stored.PatientAge == "072Y"  # derived from birth and study date, then both removed
    assert "PatientBirthDate" not in stored or not stored.PatientBirthDate
    codes = {item.CodeValue for item in stored.DeidentificationMethodCodeSequence}
    assert {"113100", "113108"} <= codes
    case = db.session.scalars(select(Case)).one()
    assert (case.age_band, case.sex) == ("70-79", "F")
    assert case.pixel_review_needed  # BurnedInAnnotation absent on CR
