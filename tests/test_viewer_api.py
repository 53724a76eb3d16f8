"""The viewer's case data: what each role is sent."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.auth.roles import Role
from app.cases.ingest import ImportOptions, Source, import_files
from app.cases.models import Case, CaseStatus
from app.cases.reads import save_read
from app.extensions import db
from app.schemes.registry import get_scheme
from tests.conftest import login, post_hand_built
from tests.dicom_factory import cr_dataset, to_bytes

MARK = {"finding": "cavitary_lesion", "shape": "ellipse",
        "geometry": {"cx": 20.5, "cy": 30.0, "rx": 5.0, "ry": 6.0}}


@pytest.fixture
def case(app, make_user) -> Case:
    trainer = make_user(Role.TRAINER, username="expert")
    data = to_bytes(cr_dataset(seed=11, rows=80, columns=60))
    import_files([Source("x.dcm", lambda: data)], actor=trainer, options=ImportOptions())
    case = db.session.scalars(select(Case)).one()
    save_read(case, author=trainer, scheme=get_scheme("ds3030"),
              answers={"overall": "abnormal", "findings": ["cavitary_lesion"]},
              marks=[{**MARK, "image_id": case.images[0].id}])
    return case


def _publish(case: Case) -> None:
    case.status = CaseStatus.PUBLISHED.value
    db.session.commit()


def test_trainer_gets_images_labels_and_reference_marks(client, case):
    login(client, "expert")
    data = client.get(f"/viewer/api/cases/{case.id}").get_json()
    [image] = data["images"]
    assert (image["columns"], image["rows"]) == (60, 80)
    assert image["exact_url"].endswith("/exact?v=1") and image["params"]["bits_stored"] == 12
    assert image["display_url"].endswith("/display?v=1")
    assert image["approx_url"].endswith("/approx?v=1") and image["full_url"] is None
    assert data["editable"] is False  # marks are edited beside the reference read
    assert {"value": "cavitary_lesion", "label": "Cavitary lesion"} in data["labels"]
    assert data["marks"][0]["geometry"] == MARK["geometry"]
    assert data["reference_marks"]


def test_trainee_never_receives_reference_marks(client, case, login_as):
    _publish(case)
    login_as(Role.TRAINEE_RADIOLOGIST)
    response = client.get(f"/viewer/api/cases/{case.id}")
    data = response.get_json()
    assert data["marks"] == [] and "reference_marks" not in data and "save_url" not in data
    assert "cavitary" not in response.get_data(as_text=True)
    page = client.get(f"/viewer/cases/{case.id}").get_data(as_text=True)
    assert "cavitary" not in page


def test_trainee_cannot_open_unpublished_cases(client, case, login_as):
    login_as(Role.TRAINEE_RADIOLOGIST)
    assert client.get(f"/viewer/api/cases/{case.id}").status_code == 404
    assert client.get(f"/viewer/cases/{case.id}").status_code == 404


def test_trainee_cannot_write_a_reference_read(client, case, login_as):
    # Marks are saved with the reference read (tests/test_reference_read_page.py): a trainee
    # cannot open that page, let alone post it.
    _publish(case)
    login_as(Role.TRAINEE_RADIOLOGIST)
    assert client.get(f"/cases/{case.id}/read").status_code == 403
    response = post_hand_built(client, f"/cases/{case.id}/read",  # deliberately hostile
                               {"overall": "normal", "marks": "[]"}, page="/training/")
    assert response.status_code == 403


def test_trainee_viewer_never_shows_the_library_case_id(client, case, login_as):
    """The library names a case by its id ("Case 18"); a trainee, who may have the case in
    an open exam, is shown the images untitled (issue: cases are numbered within attempts)."""
    _publish(case)
    login_as(Role.TRAINEE_RADIOLOGIST)
    data = client.get(f"/viewer/api/cases/{case.id}").get_json()
    assert data["case"] == {"title": "Library case"}
    page = client.get(f"/viewer/cases/{case.id}").get_data(as_text=True)
    assert f"Case {case.id}" not in page and "Library case" in page
