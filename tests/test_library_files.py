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
