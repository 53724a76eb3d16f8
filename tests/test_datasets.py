"""Public collections in their published layouts, built from ../shared/cxr in a temp folder."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from app.cases.models import Case, ReferenceRead
from app.cases.reads import reference_for
from app.extensions import db
from tests.realservers import missing

SHARED = Path(__file__).resolve().parents[2] / "shared" / "cxr"


@pytest.fixture
def shared() -> Path:
    if not SHARED.is_dir():
        missing(f"real CXR images not found at {SHARED}")
    return SHARED


def run(app, *args: str):
    return app.test_cli_runner().invoke(args=["cases", "import-dataset", *args])


@pytest.fixture
def shenzhen(shared, tmp_path) -> Path:
    """Three Shenzhen images in the NLM layout, readings written from the metadata."""
    root = tmp_path / "ChinaSet_AllFiles"
    (root / "CXR_png").mkdir(parents=True)
    (root / "ClinicalReadings").mkdir()
    metadata = {row["study_id"]: row for row in
                csv.DictReader((shared / "labels" / "shenzhen_metadata.csv").open())}
    names = sorted(p.name for p in (shared / "images" / "nlm_shenzhen").glob("*.png"))
    chosen = [n for n in names if n.endswith("_1.png")][:2] + [
        n for n in names if n.endswith("_0.png")][:1]
    for name in chosen:
        shutil.copy(shared / "images" / "nlm_shenzhen" / name, root / "CXR_png" / name)
        row = metadata[name]
        (root / "ClinicalReadings" / name.replace(".png", ".txt")).write_text(
            f"{row['sex'].lower()} {row['age']}yrs\n{row['findings']}\n")
    return root


def test_nlm_shenzhen_layout(app, shenzhen):
    result = run(app, "nlm", str(shenzhen))
    assert result.exit_code == 0, result.output
    assert "3 imported" in result.output
    cases = db.session.scalars(select(Case).order_by(Case.id)).all()
    assert len(cases) == 3
    labels = []
    for case in cases:
        reference = reference_for(case)
        labels.append(reference.answers["classification"])
        assert case.sex in ("M", "F") and case.age_band
        assert case.source == "NLM TB chest X-ray sets" and "NLM" in case.licence
        assert case.status == "draft"
        assert case.images[0].transfer_syntax
    assert sorted(labels) == ["abnormal_tb", "abnormal_tb", "normal"]
    tb_case = next(c for c in cases if reference_for(c).tb_positive)
    assert tb_case.teaching_notes  # the reading text
    assert tb_case.reference_tb_positive is True
    again = run(app, "nlm", str(shenzhen))
    assert "3 duplicate" in again.output
    assert db.session.query(ReferenceRead).count() == 3


@pytest.fixture
def tbx11k(shared, tmp_path) -> Path:
    root = tmp_path / "TBX11K"
    for folder in ("tb", "health"):
        (root / "imgs" / folder).mkdir(parents=True)
    (root / "annotations" / "xml").mkdir(parents=True)
    tb_images = sorted((shared / "images" / "tbx11k").rglob("tb*.png"))[:2]
    for image in tb_images:
        shutil.copy(image, root / "imgs" / "tb" / image.name)
        shutil.copy(shared / "labels" / "tbx11k_xml" / f"{image.stem}.xml",
                    root / "annotations" / "xml" / f"{image.stem}.xml")
    healthy = next((shared / "images" / "tbx11k").rglob("h*.png"))
    shutil.copy(healthy, root / "imgs" / "health" / healthy.name)
    return root


def test_tbx11k_boxes_become_rectangle_marks_in_png_pixels(app, tbx11k, shared):
    from defusedxml import ElementTree

    result = run(app, "tbx11k", str(tbx11k))
    assert result.exit_code == 0, result.output
    assert "3 imported" in result.output
    tb_cases = [c for c in db.session.scalars(select(Case)) if c.reference_tb_positive]
    assert len(tb_cases) == 2
    for case in tb_cases:
        image = case.images[0]
        reference = reference_for(case)
        assert reference.answers["findings"] == ["tb_lesion"]
        assert reference.marks and all(m["shape"] == "rectangle" for m in reference.marks)
        for mark in reference.marks:
            g = mark["geometry"]
            assert g["x"] >= 0 and g["x"] + g["width"] <= image.columns
            assert g["y"] >= 0 and g["y"] + g["height"] <= image.rows
    # Scaling: the first box of one file, from the original size to the 512-pixel PNG.
    xml = sorted((tbx11k / "annotations" / "xml").glob("*.xml"))[0]
    tree = ElementTree.parse(xml)
    width = int(tree.findtext("size/width"))
    xmin = float(tree.find("object/bndbox/xmin").text)
    expected_x = round(xmin * 512 / width, 1)
    xs = {m["geometry"]["x"] for c in tb_cases for m in reference_for(c).marks}
    assert expected_x in xs


def test_wrong_layouts_and_bad_files_are_clear_errors(app, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run(app, "nlm", str(empty))
    assert result.exit_code != 0 and "no PNG images found" in result.output
    assert "no imgs/ folder" in run(app, "tbx11k", str(empty)).output
    assert run(app, "dicomdir", str(empty)).exit_code != 0  # unknown format
    bad = tmp_path / "bad" / "CXR_png"
    bad.mkdir(parents=True)
    (bad / "CHNCXR_0001_0.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (bad / "holiday.png").write_bytes(b"x")
    result = run(app, "nlm", str(bad.parent))
    assert result.exit_code == 1
    assert "not an NLM file name" in result.output
    assert "CHNCXR_0001_0.png" in result.output
    assert db.session.scalars(select(Case)).all() == []


def test_hostile_annotation_xml_is_refused(app, tmp_path, shared):
    root = tmp_path / "T"
    (root / "imgs" / "tb").mkdir(parents=True)
    (root / "annotations").mkdir()
    image = sorted((shared / "images" / "tbx11k").rglob("tb*.png"))[0]
    shutil.copy(image, root / "imgs" / "tb" / image.name)
    (root / "annotations" / f"{image.stem}.xml").write_text(
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><annotation>&b;</annotation>')
    result = run(app, "tbx11k", str(root))
    assert result.exit_code == 1
    assert "annotation XML could not be read (EntitiesForbidden)" in result.output
