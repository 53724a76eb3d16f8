"""The viewer's case data and mark saving: what each role is sent, and bad input."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.auth.roles import Role
from app.cases.ingest import ImportOptions, Source, import_files
from app.cases.models import Case, CaseStatus, ReferenceRead
from app.cases.reads import save_read
from app.extensions import db
from app.schemes.registry import get_scheme
from tests.conftest import csrf_token, login, sign_out
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
    assert image["full_url"].endswith("/full?v=1") and image["params"]["bits_stored"] == 12
    assert data["editable"] is True
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


def _save(client, case, marks, page=None):
    token = csrf_token(client, page or f"/viewer/cases/{case.id}")
    return client.post(f"/viewer/api/cases/{case.id}/marks", json={"marks": marks},
                       headers={"X-CSRFToken": token})


def test_saving_marks_adds_a_version_of_the_trainers_read(client, case):
    login(client, "expert")
    image_id = case.images[0].id
    new = [{**MARK, "image_id": image_id},
           {"finding": "nodule", "shape": "polygon", "image_id": image_id,
            "geometry": {"points": [[1, 1], [10, 1], [5, 9]]}, "confidence": 80}]
    response = _save(client, case, new)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"saved": True, "version": 2}
    reads = db.session.scalars(select(ReferenceRead).order_by(ReferenceRead.id)).all()
    assert [r.current for r in reads] == [False, True]
    assert reads[1].answers == reads[0].answers
    assert json.dumps(reads[1].marks[1]["geometry"]) == json.dumps(
        {"points": [[1.0, 1.0], [10.0, 1.0], [5.0, 9.0]]})


@pytest.mark.parametrize(
    ("marks", "message"),
    [
        ([{**MARK, "finding": "unicorn"}], "is not a finding of this scheme"),
        ([{**MARK, "shape": "star"}], "shape must be one of"),
        ([{**MARK, "geometry": {"cx": 500, "cy": 1, "rx": 1, "ry": 1}}], "within the image"),
        ([{**MARK, "confidence": 101}], "confidence must be between 0 and 100"),
        ([{**MARK, "image_id": 99999}], "must name one of this case's images"),
    ],
)
def test_bad_marks_are_400_with_the_reason(client, case, marks, message):
    login(client, "expert")
    marks = [{"image_id": case.images[0].id, **mark} for mark in marks]
    response = _save(client, case, marks)
    assert response.status_code == 400
    assert message in response.get_json()["message"]
    assert db.session.scalars(select(ReferenceRead)).all().__len__() == 1


def test_malformed_body_missing_csrf_and_no_read(client, case, login_as, make_user):
    login(client, "expert")
    token = csrf_token(client, f"/viewer/cases/{case.id}")
    bad = client.post(f"/viewer/api/cases/{case.id}/marks", data="nope",
                      headers={"X-CSRFToken": token, "Content-Type": "application/json"})
    assert bad.status_code == 400 and "marks" in bad.get_json()["message"]
    no_token = client.post(f"/viewer/api/cases/{case.id}/marks", json={"marks": []})
    assert no_token.status_code == 400 and "CSRF" in no_token.get_json()["message"]
    other = make_user(Role.TRAINER)
    sign_out(client, f"/viewer/cases/{case.id}")
    login(client, other.username)
    response = _save(client, case, [])
    assert response.status_code == 400
    assert "Write your reference read" in response.get_json()["message"]


def test_trainee_cannot_save_marks(client, case, login_as):
    _publish(case)
    login_as(Role.TRAINEE_RADIOLOGIST)
    response = _save(client, case, [], page="/training/")
    assert response.status_code == 403
