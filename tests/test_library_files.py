"""Case files: the committed demo library, loading, exporting and exchanging curated cases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.cases.demo_library import demo_specs
from app.cases.library_files import load_library
from app.cases.models import Case, CaseImage, CaseStatus
from app.cases.reads import reference_for
from app.extensions import db

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "case_library"


def test_committed_demo_library_matches_its_generator():
    """The reviewed case files are exactly what demo_library.py generates (pixels, marks)."""
    committed = {p.stem: json.loads(p.read_text()) for p in (LIBRARY / "cases").glob("*.json")}
    generated = {spec["id"]: json.loads(json.dumps(spec)) for spec in demo_specs()}
    assert committed == generated
    assert len(committed) >= 20
    abnormal = [c for c in committed.values() if c["reference"]["answers"]["overall"] != "normal"]
    assert len(abnormal) >= 10
    assert all(c["reference"]["marks"] for c in abnormal if c["source"].endswith("phantom"))


def test_no_image_files_are_committed_with_the_library():
    assert {p.suffix for p in LIBRARY.rglob("*") if p.is_file()} <= {".json", ".md"}


@pytest.fixture
def small_library(tmp_path) -> Path:
    folder = tmp_path / "lib"
    (folder / "cases").mkdir(parents=True)
    for name in ("phantom-cavity-1", "phantom-normal-1", "sample-rg1-chest-cr"):
        shutil.copy(LIBRARY / "cases" / f"{name}.json", folder / "cases")
    return folder


def test_loading_publishes_cases_with_their_reference_and_is_idempotent(app, small_library):
    results = load_library(small_library)
    assert [r.status for r in results] == ["loaded"] * 3, results
    cases = db.session.scalars(select(Case).order_by(Case.id)).all()
    assert {c.status for c in cases} == {CaseStatus.PUBLISHED.value}
    cavity = next(c for c in cases if "cavitary_lesion" in c.tags)
    reference = reference_for(cavity)
    assert reference.tb_positive is True
    [mark] = reference.marks
    assert mark["finding"] == "cavitary_lesion" and mark["shape"] == "ellipse"
    assert mark["image_id"] == cavity.images[0].id
    spec = json.loads((small_library / "cases" / "phantom-cavity-1.json").read_text())
    assert cavity.images[0].pixel_hash == spec["images"][0]["pixel_sha256"]
    assert cavity.teaching_notes.startswith("Synthetic phantom")

    again = load_library(small_library)
    assert [r.status for r in again] == ["present"] * 3
    assert db.session.scalar(select(func.count(Case.id))) == 3


def test_export_then_import_into_another_installation(app, small_library, tmp_path):
    load_library(small_library)
    exported = tmp_path / "exported"
    runner = app.test_cli_runner()
    result = runner.invoke(args=["cases", "export-library", str(exported)])
    assert result.exit_code == 0, result.output
    assert "3 case files written" in result.output
    assert len(list((exported / "images").glob("*.dcm"))) == 3
    def summary() -> list[str]:
        return sorted(
            json.dumps([reference_for(c).answers, reference_for(c).marks and len(
                reference_for(c).marks), c.tags, c.teaching_notes], sort_keys=True)
            for c in db.session.scalars(select(Case))
        )

    before = summary()
    # A second installation: empty tables and image storage.
    for table in reversed(db.metadata.sorted_tables):
        db.session.execute(table.delete())
    db.session.commit()
    shutil.rmtree(app.config["IMAGE_STORAGE_PATH"])

    result = runner.invoke(args=["cases", "import-library", str(exported)])
    assert result.exit_code == 0, result.output
    assert "3 loaded, 0 already present, 0 refused" in result.output
    assert summary() == before


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda s: s.update(format="something-else"), "not a case file"),
        (lambda s: s.update(images=[]), "at least one image"),
        (lambda s: s["images"][0].update(pixel_sha256="0" * 64), "do not match"),
        (lambda s: s["images"][0].update(origin={"file": "../../etc/passwd"}),
         "leaves the library folder"),
        (lambda s: s["images"][0].update(origin={"ftp": "x"}), "no known origin"),
        (lambda s: s["reference"]["answers"].update(overall="sideways"), "not one of the options"),
        (lambda s: s["reference"]["marks"][0].update(image=5), "an image the case does not have"),
    ],
)
def test_bad_case_files_are_refused_and_leave_nothing(app, small_library, change, reason):
    path = small_library / "cases" / "phantom-cavity-1.json"
    spec = json.loads(path.read_text())
    change(spec)
    path.write_text(json.dumps(spec))
    for other in ("phantom-normal-1", "sample-rg1-chest-cr"):
        (small_library / "cases" / f"{other}.json").unlink()
    [result] = load_library(small_library)
    assert result.status == "refused"
    assert reason in result.reason
    assert db.session.scalar(select(func.count(Case.id))) == 0
    assert db.session.scalar(select(func.count(CaseImage.id))) == 0
    storage = Path(app.config["IMAGE_STORAGE_PATH"])
    assert not [p for p in storage.rglob("*") if p.is_file()]


def test_import_library_of_a_folder_without_case_files_is_a_clear_error(app, tmp_path):
    result = app.test_cli_runner().invoke(args=["cases", "import-library", str(tmp_path)])
    assert result.exit_code != 0 and "has no cases/ folder" in result.output


def test_case_page_draws_the_reference_marks(app, client, login_as, small_library):
    from app.auth.roles import Role

    load_library(small_library)
    login_as(Role.TRAINER)
    cavity = next(c for c in db.session.scalars(select(Case)) if "cavitary_lesion" in c.tags)
    [mark] = reference_for(cavity).marks
    page = client.get(f"/cases/{cavity.id}").get_data(as_text=True)
    g = mark["geometry"]
    assert f'viewBox="0 0 {cavity.images[0].columns} {cavity.images[0].rows}"' in page
    assert f'<ellipse cx="{g["cx"]}" cy="{g["cy"]}" rx="{g["rx"]}" ry="{g["ry"]}"/>' in page


# ---- exchange between installations: review state and de-identification -------------------


def another_installation(app) -> None:
    """Empty tables and image storage, and a de-identification secret of its own."""
    for table in reversed(db.metadata.sorted_tables):
        db.session.execute(table.delete())
    db.session.commit()
    shutil.rmtree(app.config["IMAGE_STORAGE_PATH"])
    app.config["DEID_SECRET"] = "another-installation-secret-0123456789"


def export(app, folder: Path, *args: str) -> None:
    result = app.test_cli_runner().invoke(args=["cases", "export-library", str(folder), *args])
    assert result.exit_code == 0, result.output


def import_library(app, folder: Path, *args: str):
    return app.test_cli_runner().invoke(args=["cases", "import-library", str(folder), *args])


@pytest.fixture
def burned_in_library(tmp_path) -> Path:
    """The demo case whose pixels carry burned-in text (held in review when loaded)."""
    folder = tmp_path / "burned"
    (folder / "cases").mkdir(parents=True)
    shutil.copy(LIBRARY / "cases" / "phantom-burned-in-1.json", folder / "cases")
    return folder


def test_an_unreviewed_case_exported_in_review_is_not_published_elsewhere(
        app, burned_in_library, tmp_path):
    [loaded] = load_library(burned_in_library)
    case = db.session.get_one(Case, loaded.case_id)
    assert (case.status, case.pixel_review_needed, case.pixel_reviewed_at) == (
        CaseStatus.IN_REVIEW.value, True, None)
    exported = tmp_path / "exported"
    export(app, exported, "--status", "in_review")
    [path] = (exported / "cases").glob("*.json")
    assert "pixel_review" not in json.loads(path.read_text())

    another_installation(app)
    result = import_library(app, exported)
    assert result.exit_code == 0, result.output
    assert "held in review" in result.output and "no pixel review" in result.output
    [case] = db.session.scalars(select(Case)).all()
    assert case.status == CaseStatus.IN_REVIEW.value
    assert (case.pixel_review_needed, case.pixel_reviewed_at) == (True, None)

    # Nor when the file no longer says "in review": no recorded review, no publication.
    another_installation(app)
    spec = json.loads(path.read_text())
    spec.pop("status", None)
    path.write_text(json.dumps(spec))
    result = import_library(app, exported)
    assert result.exit_code == 0, result.output
    [case] = db.session.scalars(select(Case)).all()
    assert case.status == CaseStatus.IN_REVIEW.value and case.pixel_reviewed_at is None


def test_a_review_done_elsewhere_travels_with_the_case_and_names_the_reviewer(
        app, client, login_as, make_user, burned_in_library, tmp_path):
    from app.auth.roles import Role
    from app.cases.services import change_status, complete_pixel_review

    reviewer = make_user(Role.TRAINER, username="areviewer", full_name="Ann Reviewer")
    [loaded] = load_library(burned_in_library)
    case = db.session.get_one(Case, loaded.case_id)
    complete_pixel_review(case, actor=reviewer)
    change_status(case, CaseStatus.PUBLISHED, actor=reviewer)
    reviewed_at = case.pixel_reviewed_at
    exported = tmp_path / "exported"
    export(app, exported)
    [path] = (exported / "cases").glob("*.json")
    review = json.loads(path.read_text())["pixel_review"]
    assert review["reviewed_by"] == "Ann Reviewer (areviewer)"

    another_installation(app)
    result = import_library(app, exported)
    assert result.exit_code == 0, result.output
    [case] = db.session.scalars(select(Case)).all()
    assert case.status == CaseStatus.PUBLISHED.value
    assert case.pixel_reviewed_by is None  # the person has no account here
    assert case.pixel_reviewed_by_name == "Ann Reviewer (areviewer)"
    assert case.pixel_reviewed_at == reviewed_at.replace(microsecond=0)
    login_as(Role.TRAINER)
    page = client.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "by Ann Reviewer (areviewer) (on another installation)" in page

    # Exported again from here, the review keeps its reviewer and date.
    again = tmp_path / "again"
    export(app, again)
    [path] = (again / "cases").glob("*.json")
    assert json.loads(path.read_text())["pixel_review"] == review


@pytest.mark.parametrize(
    "review",
    [{"reviewed_by": "", "reviewed_at": "2026-01-02T03:04:05+00:00"},
     {"reviewed_by": "Ann Reviewer", "reviewed_at": "yesterday"},
     "done"],
)
def test_a_malformed_review_record_is_refused(app, burned_in_library, review):
    path = burned_in_library / "cases" / "phantom-burned-in-1.json"
    spec = json.loads(path.read_text())
    spec["pixel_review"] = review
    path.write_text(json.dumps(spec))
    [result] = load_library(burned_in_library)
    assert result.status == "refused" and "pixel review" in result.reason
    assert db.session.scalar(select(func.count(Case.id))) == 0


def stored_identifiers() -> dict[str, tuple[str, ...]]:
    """Per image (by pixel hash): the identifiers de-identification derives."""
    import io

    import pydicom

    from app.cases.storage import DICOM_FILE, image_store

    found = {}
    for image in db.session.scalars(select(CaseImage)):
        ds = pydicom.dcmread(io.BytesIO(image_store().read(image.storage_key, DICOM_FILE)))
        found[image.pixel_hash] = (
            *(str(ds.get(k, "")) for k in ("PatientID", "StudyDate", "SeriesDate",
                                           "StudyInstanceUID", "SeriesInstanceUID",
                                           "SOPInstanceUID")),
            image.patient_pseudonym, image.study_uid, image.sop_uid)
    return found


def test_round_trip_keeps_dates_pseudonyms_and_uids(app, small_library, tmp_path):
    load_library(small_library)
    before = stored_identifiers()
    assert any(ids[1] for ids in before.values())  # the real CR has a (shifted) study date
    exported = tmp_path / "exported"
    export(app, exported)

    another_installation(app)
    result = import_library(app, exported)
    assert result.exit_code == 0, result.output
    assert stored_identifiers() == before


def test_a_tampered_export_is_still_cleaned(app, small_library, tmp_path):
    """Files marked as de-identified by CXR Academy keep their pseudonyms, but everything
    else is checked again: a name, a real patient ID or a private tag slipped in are gone."""
    import hashlib

    import pydicom

    load_library(small_library)
    exported = tmp_path / "exported"
    export(app, exported)
    another_installation(app)
    path = exported / "cases" / next(p.name for p in (exported / "cases").glob("*.json")
                                     if "RG1" in p.read_text() or "NEMA" in p.read_text())
    spec = json.loads(path.read_text())
    image_file = exported / spec["images"][0]["origin"]["file"]
    ds = pydicom.dcmread(image_file)
    assert ds.PatientIdentityRemoved == "YES"
    ds.PatientName = "SMUGGLED^NAME"
    ds.PatientID = "REAL-MRN-4711"
    ds.InstitutionName = "SMUGGLED HOSPITAL"
    ds.private_block(0x0011, "SMUGGLER", create=True).add_new(0x01, "LO", "SMUGGLED NOTE")
    ds.save_as(image_file)
    data = image_file.read_bytes()
    spec["images"][0]["origin"]["sha256"] = hashlib.sha256(data).hexdigest()
    path.write_text(json.dumps(spec))

    result = import_library(app, exported)
    assert result.exit_code == 0, result.output
    image = next(i for i in db.session.scalars(select(CaseImage)) if i.modality == "CR")
    from app.cases.storage import DICOM_FILE, image_store

    stored = image_store().read(image.storage_key, DICOM_FILE)
    assert b"SMUGGLED" not in stored and b"REAL-MRN" not in stored
    assert image.patient_pseudonym.startswith("ANON-")


def test_a_redacted_case_travels_with_its_redacted_pixels(app, make_user, burned_in_library,
                                                          tmp_path):
    from app.auth.roles import Role
    from app.cases.services import change_status, complete_pixel_review, redact_image

    reviewer = make_user(Role.TRAINER, username="areviewer", full_name="Ann Reviewer")
    [loaded] = load_library(burned_in_library)
    case = db.session.get_one(Case, loaded.case_id)
    redact_image(case.images[0], [(0, 0, 200, 60)], actor=reviewer)
    complete_pixel_review(case, actor=reviewer)
    change_status(case, CaseStatus.PUBLISHED, actor=reviewer)
    exported = tmp_path / "exported"
    export(app, exported)

    # Loading it again here finds the case present (by the pixels it was imported with).
    again = import_library(app, exported)
    assert again.exit_code == 0 and "0 loaded, 1 already present" in again.output, again.output

    another_installation(app)
    result = import_library(app, exported)
    assert result.exit_code == 0, result.output
    [case] = db.session.scalars(select(Case)).all()
    assert case.status == CaseStatus.PUBLISHED.value
    assert case.pixel_reviewed_by_name == "Ann Reviewer (areviewer)"
