"""No patient data survives import: plant distinctive PHI everywhere, then search every
stored byte (image files, every database row, every log line) for it."""

from __future__ import annotations

import html
import io
import json
import logging
import warnings
import zipfile
from pathlib import Path

import pydicom
import pytest
from bs4 import BeautifulSoup
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag
from sqlalchemy import func, select

from app.audit.security_log import destination
from app.auth.roles import Role
from app.cases.deidentify import IMPLEMENTATION_CLASS_UID
from app.cases.models import Case, CaseImage
from app.cases.reads import save_read
from app.extensions import db
from app.schemes.registry import get_scheme
from tests.dicom_factory import (
    PHI,
    coded_phi_strings,
    cr_dataset,
    phi_strings,
    plant_coded_phi,
    to_bytes,
)
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
    response = submit_form(client, "/cases/upload", button="Import", follow_redirects=True, fields={
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
    security_log = Path(destination(app))
    haystacks += [("security log", security_log.read_bytes() if security_log.exists() else b"")]
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


def test_free_text_in_kept_attributes_never_reaches_storage_api_or_export(
        app, client, login_as, tmp_path):
    """Codes, labels and device fields the allow-list keeps hold only registry values."""
    trainer = login_as(Role.TRAINER)
    ds = cr_dataset(seed=98, phi=True, burned_in="NO")
    plant_coded_phi(ds)
    data = to_bytes(ds)
    response = submit_form(client, "/cases/upload", button="Import", follow_redirects=True, fields={
        "files": [(io.BytesIO(data), "coded.dcm")]})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "1 imported" in response.get_data(as_text=True)

    case = db.session.scalars(select(Case)).one()
    save_read(case, author=trainer, scheme=get_scheme("ds3030"), answers={"overall": "normal"})
    db.session.commit()
    viewer = client.get(f"/viewer/api/cases/{case.id}")
    assert viewer.status_code == 200
    result = app.test_cli_runner().invoke(
        args=["cases", "export-library", str(tmp_path / "export"), "--status", "all"])
    assert result.exit_code == 0, result.output

    storage = Path(app.config["IMAGE_STORAGE_PATH"])
    haystacks = [("database", _database_dump()), ("viewer API", viewer.get_data())]
    haystacks += _stored_files(storage)
    haystacks += [(f"export {name}", content) for name, content in _stored_files(tmp_path)]
    for needle in coded_phi_strings() + phi_strings():
        for where, content in haystacks:
            assert needle not in content, f"{needle!r} found in {where}"

    image = db.session.scalars(select(CaseImage)).one()
    stored = pydicom.dcmread(storage / image.storage_key[:2] / image.storage_key / "image.dcm")
    assert stored.ViewCodeSequence[0].CodeMeaning == "postero-anterior"
    assert stored.ViewCodeSequence[0].ViewModifierCodeSequence[0].CodeMeaning == "cephalad"
    assert stored.AnatomicRegionSequence[0].CodeMeaning == "Chest"
    assert stored.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert stored.SOPClassUID == stored.file_meta.MediaStorageSOPClassUID
    assert "WindowCenterWidthExplanation" not in stored


def _upload_raw(client, keyword: str, vr: str, value: bytes) -> str:
    ds = cr_dataset(seed=97)
    if len(value) % 2:
        value += b"\x00" if vr == "UI" else b" "
    tag = Tag(keyword)
    ds[tag] = RawDataElement(tag, vr, len(value), value, 0, False, True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the planted value
        data = to_bytes(ds)
    response = submit_form(client, "/cases/upload", button="Import", follow_redirects=True, fields={
        "files": [(io.BytesIO(data), "planted.dcm")]})
    # Nothing imported: the job page says why.
    assert response.status_code == 200
    return html.unescape(response.get_data(as_text=True))


@pytest.mark.parametrize(
    ("keyword", "tag"),
    [("StudyInstanceUID", "(0020,000D)"), ("SeriesInstanceUID", "(0020,000E)"),
     ("SOPInstanceUID", "(0008,0018)"), ("SOPClassUID", "(0008,0016)")],
)
def test_multi_valued_uids_are_refused_naming_the_attribute(app, client, login_as, keyword,
                                                            tag):
    login_as(Role.TRAINER)
    page = _upload_raw(client, keyword, "UI", b"1.2.3.4\\1.2.3.5")
    assert "0 imported" in page and "1 refused" in page, page[-2000:]
    # DICOM names are marked not for translation inside the sentence: read the page's text.
    assert f"{keyword} {tag} holds 2 UIDs" in BeautifulSoup(page, "html.parser").get_text()
    assert db.session.scalar(select(func.count(CaseImage.id))) == 0


@pytest.mark.parametrize(
    ("keyword", "vr", "value", "reason"),
    [("NumberOfFrames", "IS", b"PHI2", "NumberOfFrames (0028,0008) must hold one integer"),
     ("SamplesPerPixel", "US", b"\x01\x00\x01\x00",
      "SamplesPerPixel (0028,0002) must hold one integer"),
     ("RescaleSlope", "DS", b"PHI2",  # Type 1 in the DX IOD: cannot be left out
      "RescaleSlope (0028,1053) must hold one number other than zero"),
     ("SOPClassUID", "UI", b"1.2.840.99999.2.777",  # a vendor's private SOP class
      "SOPClassUID (0008,0016) is not a registered DICOM SOP Class")],
)
def test_refusals_caused_by_a_value_name_the_attribute(app, client, login_as, keyword, vr,
                                                        value, reason):
    login_as(Role.TRAINER)
    page = _upload_raw(client, keyword, vr, value)
    assert reason in BeautifulSoup(page, "html.parser").get_text(), page[-2000:]
    assert "(ValueError)" not in page and "(TypeError)" not in page
    assert "PHI2" not in page and "99999" not in page


def test_a_failure_on_one_element_is_refused_naming_it_without_its_value(monkeypatch):
    from app.cases import processing
    from app.cases.sandbox import Rejected

    def failing(ds, stored):
        raise ValueError("With tag (0028,1050) got exception: cannot use 'PHI-VALUE-77'")

    monkeypatch.setattr(processing.pixels, "make_derivatives", failing)
    with pytest.raises(Rejected) as raised:
        processing.process_dicom(to_bytes(cr_dataset(seed=96)),
                                 processing.ProcessOptions(secret=b"named-failure"))
    assert str(raised.value) == (
        "WindowCenter (0028,1050): the value could not be read (ValueError)")
