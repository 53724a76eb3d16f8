"""What arrives in an import that is not a plain DICOM Part 10 file: pictures, text and
documents are called "not a DICOM file"; DICOM without the Part 10 header (no preamble or
file meta, as older CR systems write it) is recognised and imported when the trainer ticks
the upload page's option (``--allow-no-meta`` on the command line), and refused with a reason
that names that option otherwise. A refused file leaves nothing behind."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from bs4 import BeautifulSoup
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.dataset import FileMetaDataset
from sqlalchemy import select

from app.auth.roles import Role
from app.cases.models import CaseImage
from app.cases.processing import NO_FILE_META_REASON, ProcessOptions, process_dicom
from app.cases.sandbox import Rejected
from app.extensions import db
from tests.dicom_factory import cr_dataset, to_bytes
from tests.forms import submit_form, submit_html
from tests.realservers import missing
from tests.test_ingest import SHARED_DICOM, assert_no_residue, cli_import, counts

OPTION_LABEL = "Also accept DICOM files without a Part 10 header"


def bare_dicom(seed: int = 1) -> bytes:
    """A chest CR dataset as older systems wrote it: implicit VR little endian, no preamble,
    no 'DICM' marker, no file meta."""
    ds = cr_dataset(seed=seed, rows=40, columns=32)
    ds.file_meta = FileMetaDataset()
    out = io.BytesIO()
    ds.save_as(out, implicit_vr=True, little_endian=True, enforce_file_format=False)
    return out.getvalue()


def picture(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("L", (64, 48), 90).save(out, fmt)
    return out.getvalue()


NOT_DICOM = {
    "png": (picture("PNG"), "a PNG image"),
    "jpeg": (picture("JPEG"), "a JPEG image"),
    "text": (b"Chest X-ray of the left lung, reported normal.\n" * 20, None),
    "short": (b"nope", None),
    "empty": (b"", None),
    "pdf": (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n" * 10, None),
    "zeros": (bytes(4096), None),
}


# ---- the pure reading step --------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(NOT_DICOM))
@pytest.mark.parametrize("allow_no_meta", [False, True])
def test_files_that_are_not_dicom_are_called_so(kind, allow_no_meta):
    data, named = NOT_DICOM[kind]
    with pytest.raises(Rejected) as refused:
        process_dicom(data, ProcessOptions(secret=b"s", allow_no_meta=allow_no_meta))
    reason = str(refused.value)
    assert reason.startswith("not a DICOM file"), reason
    assert "allow-no-meta" not in reason and "file meta" not in reason
    if named:
        assert named in reason


def test_dicom_without_file_meta_is_recognised_and_needs_the_option():
    data = bare_dicom()
    with pytest.raises(Rejected) as refused:
        process_dicom(data, ProcessOptions(secret=b"s"))
    assert str(refused.value) == NO_FILE_META_REASON
    assert OPTION_LABEL in NO_FILE_META_REASON and "--allow-no-meta" in NO_FILE_META_REASON

    processed = process_dicom(data, ProcessOptions(secret=b"s", allow_no_meta=True))
    assert (processed.modality, processed.rows, processed.columns) == ("CR", 40, 32)
    assert processed.transfer_syntax == "Implicit VR Little Endian"
    assert processed.dicom[128:132] == b"DICM"  # stored as a proper Part 10 file


@pytest.mark.parametrize("cut", [128, 132], ids=["marker-first", "file-meta-first"])
def test_part10_file_without_its_preamble_is_read_with_its_own_transfer_syntax(cut):
    """The file meta survives (with or without its 'DICM' marker) when only the 128-byte
    preamble was lost: the transfer syntax it declares is the one used."""
    whole = to_bytes(cr_dataset(seed=2, rows=40, columns=32))
    with pytest.raises(Rejected) as refused:
        process_dicom(whole[cut:], ProcessOptions(secret=b"s"))
    assert str(refused.value) == NO_FILE_META_REASON
    processed = process_dicom(whole[cut:], ProcessOptions(secret=b"s", allow_no_meta=True))
    assert processed.transfer_syntax == "Explicit VR Little Endian"
    reference = process_dicom(whole, ProcessOptions(secret=b"s"))
    assert processed.pixel_hash == reference.pixel_hash


@pytest.mark.parametrize(("implicit", "little", "syntax"), [
    (True, True, "Implicit VR Little Endian"),
    (False, True, "Explicit VR Little Endian"),
    (False, False, "Explicit VR Big Endian"),
])
def test_bare_dataset_keeps_the_encoding_it_was_written_in(implicit, little, syntax):
    ds = cr_dataset(seed=5, rows=40, columns=32, bits_stored=12)
    reference = process_dicom(to_bytes(ds), ProcessOptions(secret=b"s"))
    ds.file_meta = FileMetaDataset()
    if not little:  # pydicom writes OW pixel bytes as given: swap them for big endian
        ds.PixelData = np.frombuffer(ds.PixelData, "<u2").astype(">u2").tobytes()
    out = io.BytesIO()
    ds.save_as(out, implicit_vr=implicit, little_endian=little, enforce_file_format=False)
    processed = process_dicom(out.getvalue(), ProcessOptions(secret=b"s", allow_no_meta=True))
    assert processed.transfer_syntax == syntax
    assert processed.pixel_hash == reference.pixel_hash  # the same pixel values


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=1024))
def test_arbitrary_bytes_get_one_of_the_two_answers(data):
    with pytest.raises(Rejected) as refused:
        process_dicom(data, ProcessOptions(secret=b"s"))
    assert str(refused.value).startswith("not a DICOM file") or (
        str(refused.value) == NO_FILE_META_REASON
    )


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(min_value=0, max_value=400), flips=st.lists(
    st.tuples(st.integers(min_value=0, max_value=399), st.integers(0, 255)), max_size=4))
def test_damaged_dicom_without_header_is_refused_with_a_reason(cut, flips):
    """Cut short or with bytes changed, a bare dataset is refused, never a crash."""
    data = bytearray(bare_dicom()[:cut])
    for at, value in flips:
        if at < len(data):
            data[at] = value
    with pytest.raises(Rejected) as refused:
        process_dicom(bytes(data), ProcessOptions(secret=b"s"))
    assert str(refused.value).startswith("not a DICOM file") or (
        str(refused.value) == NO_FILE_META_REASON
    )


def test_damaged_part10_file_keeps_its_own_reason():
    whole = to_bytes(cr_dataset(seed=3, rows=40, columns=32))
    with pytest.raises(Rejected) as refused:
        process_dicom(whole[:200], ProcessOptions(secret=b"s"))
    assert not str(refused.value).startswith("not a DICOM file")


# ---- the upload page ----------------------------------------------------------------------


@pytest.fixture
def trainer(login_as):
    return login_as(Role.TRAINER)


def upload(client, *files: tuple[bytes, str], **fields):
    return submit_form(client, "/cases/upload", button="Import", follow_redirects=True, fields={
        **fields, "files": [(io.BytesIO(data), name) for data, name in files]})


def results(response) -> dict[str, tuple[str, str]]:
    """File name -> (result, reason) as the report shows them."""
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    rows = {}
    for row in soup.select('[data-testid="file-result"]'):
        name, outcome, details = row.find_all("td")
        reason = details.select_one(".reason")
        rows[name.get_text(strip=True)] = (outcome.get_text(" ", strip=True),
                                           reason.get_text(" ", strip=True) if reason else "")
    return rows


def test_upload_page_offers_the_option_and_imports_dicom_without_file_meta(client, trainer, app):
    page = client.get("/cases/upload").get_data(as_text=True)
    assert OPTION_LABEL in page

    response = upload(client, (bare_dicom(), "IMG0001"), allow_no_meta=True)
    assert response.status_code == 200
    outcome, _reason = results(response)["IMG0001"]
    assert outcome.startswith("imported")
    image = db.session.scalars(select(CaseImage)).one()
    assert (image.modality, image.rows, image.columns) == ("CR", 40, 32)
    assert_no_residue(app, 1)


def test_upload_without_the_option_names_it_and_stores_nothing(client, trainer, app):
    response = upload(client, (bare_dicom(), "IMG0001"))
    assert response.status_code == 200
    outcome, reason = results(response)["IMG0001"]
    assert outcome == "refused"
    assert reason == NO_FILE_META_REASON
    assert counts() == (0, 0)
    assert_no_residue(app)


def test_report_leads_back_to_the_page_with_the_option_ticked(client, trainer, app):
    refused = upload(client, (bare_dicom(), "IMG0001"))
    assert refused.status_code == 200
    soup = BeautifulSoup(refused.get_data(as_text=True), "html.parser")
    again = soup.find("a", string=lambda s: s and "accepting DICOM without a Part 10 header" in s)
    assert again is not None
    page = client.get(again["href"])
    assert page.status_code == 200
    ticked = BeautifulSoup(page.get_data(as_text=True), "html.parser").find(
        "input", attrs={"name": "allow_no_meta"})
    assert ticked is not None and ticked.has_attr("checked")

    # The trainer picks the file again and presses Import, leaving the box as it is.
    response = submit_html(client, page.get_data(as_text=True), again["href"], button="Import",
                           fields={"files": [(io.BytesIO(bare_dicom()), "IMG0001")]},
                           follow_redirects=True)
    assert response.status_code == 200
    assert results(response)["IMG0001"][0].startswith("imported")
    assert counts() == (1, 1)


@pytest.mark.parametrize("allow_no_meta", [False, True])
def test_pictures_and_text_are_not_dicom_on_the_page(client, trainer, app, allow_no_meta):
    response = upload(client, (NOT_DICOM["png"][0], "chest.png"),
                      (NOT_DICOM["text"][0], "notes.dcm"), allow_no_meta=allow_no_meta)
    assert response.status_code == 200
    shown = results(response)
    assert shown["chest.png"][0] == "refused"
    assert shown["chest.png"][1].startswith("not a DICOM file (a PNG image")
    assert shown["notes.dcm"][1] == "not a DICOM file"
    assert counts() == (0, 0)
    assert_no_residue(app)


def zip_of(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def test_zip_members_get_their_own_reason(client, trainer, app):
    archive = zip_of({"scan.png": NOT_DICOM["png"][0], "readme.txt": NOT_DICOM["text"][0],
                      "old/IMG0001": bare_dicom(seed=4)})

    response = upload(client, (archive, "batch.zip"))
    assert response.status_code == 200
    shown = results(response)
    assert shown["batch.zip / scan.png"][1].startswith("not a DICOM file (a PNG image")
    assert shown["batch.zip / readme.txt"][1] == "not a DICOM file"
    assert shown["batch.zip / old/IMG0001"][1] == NO_FILE_META_REASON
    assert counts() == (0, 0)

    response = upload(client, (archive, "batch.zip"), allow_no_meta=True)
    assert response.status_code == 200
    shown = results(response)
    assert shown["batch.zip / old/IMG0001"][0].startswith("imported")
    assert shown["batch.zip / scan.png"][1].startswith("not a DICOM file")
    assert shown["batch.zip / readme.txt"][1] == "not a DICOM file"
    assert counts() == (1, 1)
    assert_no_residue(app, 1)


def test_real_cr_without_file_meta_through_the_page(client, trainer, app):
    path = SHARED_DICOM / "CR-MONO1-10-chest.dcm"
    if not path.is_file():
        missing(f"real CXR DICOM files not found at {SHARED_DICOM}")
    data = path.read_bytes()
    refused = upload(client, (data, path.name))
    assert results(refused)[path.name] == ("refused", NO_FILE_META_REASON)

    response = upload(client, (data, path.name), allow_no_meta=True)
    assert response.status_code == 200
    assert results(response)[path.name][0].startswith("imported")
    image = db.session.scalars(select(CaseImage)).one()
    assert (image.modality, image.rows, image.columns) == ("CR", 440, 440)
    assert image.display_params["invert"] is True  # MONOCHROME1


# ---- the command line ---------------------------------------------------------------------


def test_command_line_says_not_a_dicom_file_and_names_its_flag(app, tmp_path: Path):
    (tmp_path / "notes.txt").write_bytes(NOT_DICOM["text"][0])
    (tmp_path / "scan.png").write_bytes(NOT_DICOM["png"][0])
    (tmp_path / "IMG0001").write_bytes(bare_dicom())
    result = cli_import(app, str(tmp_path))
    assert result.exit_code == 1
    lines = {Path(line.split(": ")[0].split()[-1]).name: line
             for line in result.output.splitlines()[:-1]}
    assert lines["notes.txt"].endswith(": not a DICOM file")
    assert "not a DICOM file (a PNG image" in lines["scan.png"]
    assert "--allow-no-meta" in lines["IMG0001"]
    assert counts() == (0, 0)

    allowed = cli_import(app, "--allow-no-meta", str(tmp_path / "IMG0001"))
    assert allowed.exit_code == 0, allowed.output
    assert counts() == (1, 1)
