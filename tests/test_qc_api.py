"""POST /api/v1/qc/records on both databases: token scopes and roles, the batch all or none
with a per-record report in English, duplicates and re-imports, the batch size limit, and
the OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.auth.models import Clinic, User
from app.auth.roles import Role
from app.extensions import db
from app.qc.entry import MAX_BATCH
from app.qc.models import QcImportBatch, QcRecord
from tests.conftest import csrf_token, login
from tests.test_api import bearer, make_token

URL = "/api/v1/qc/records"


@pytest.fixture
def people(make_user: Callable[..., User], make_clinic: Callable[..., Clinic]) -> dict[str, Any]:
    clinic = make_clinic("Mathare Clinic", country="KE")
    return {"clinic": clinic, "amina": make_user(username="amina", clinic=clinic),
            "qc": make_user(Role.TRAINER, username="dr.qc"),
            "admin": make_user(Role.ADMIN, username="root")}


def record(**values: Any) -> dict[str, Any]:
    base = {"study_reference": "ACC-1", "reader": "amina", "read_date": "2026-03-02",
            "qc_radiologist": "dr.qc", "grade": "1", "primary_classification": "normal",
            "qc_classification": "normal"}
    return {**base, **values}


def count(model: type) -> int:
    return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def post(client: FlaskClient, token: str, body: Any) -> Any:
    return client.post(URL, json=body, headers=bearer(token))


def test_a_trainers_write_token_imports_a_batch_and_again_changes_nothing(
        client: FlaskClient, people: dict[str, Any]) -> None:
    token = make_token(client, people["qc"])
    body = {"records": [
        record(),
        record(study_reference="ACC-2", grade="3b", qc_classification="abnormal_tb",
               qc_findings=["infiltrate", "cavitary_lesion"], qc_tb_likelihood=5,
               comment="Jane Wanjiru, bed 4"),
        record(),  # the same record twice: imported once
    ]}
    response = post(client, token, body)
    assert response.status_code == 201, response.json
    result = response.json
    assert (result["created"], result["updated"], result["unchanged"], result["duplicate"]) == (
        2, 0, 0, 1)
    assert [(r["index"], r["status"], r["same_as_index"]) for r in result["records"]] == [
        (0, "created", None), (1, "created", None), (2, "duplicate", 0)]
    second = db.session.get(QcRecord, result["records"][1]["record_id"])
    assert second is not None and second.qc_read == {
        "classification": "abnormal_tb", "findings": ["infiltrate", "cavitary_lesion"],
        "tb_likelihood": 5}
    batch = db.session.get(QcImportBatch, result["batch_id"])
    assert batch is not None and (batch.source, batch.imported_by_id) == ("api",
                                                                         people["qc"].id)
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "qc.import"))
    assert event is not None and event.detail["source"] == "api"
    again = post(client, token, body)
    assert again.status_code == 200, again.json
    assert (again.json["created"], again.json["unchanged"]) == (0, 2)
    corrected = post(client, token, {"records": [record(grade="2a")]})
    assert corrected.status_code == 200 and corrected.json["records"][0]["status"] == "updated"
    assert count(QcRecord) == 2
    stored = json.dumps([[str(v) for v in row] for row in db.session.execute(
        select(QcRecord.__table__)).all()] + [str(e.detail) for e in db.session.scalars(
            select(AuditEvent))]).lower()
    assert "wanjiru" not in stored and "acc-1" not in stored


def test_malformed_records_are_refused_each_with_its_reason_and_nothing_is_written(
        client: FlaskClient, people: dict[str, Any]) -> None:
    token = make_token(client, people["qc"])
    people["qc"].language = "fr"  # the API speaks English all the same
    db.session.commit()
    body = {"records": [record(), record(study_reference="ACC-2", reader="nobody"),
                        record(study_reference="ACC-3", grade="9", read_date="02/03/2026")]}
    response = post(client, token, body)
    assert response.status_code == 422, response.json
    assert response.json["reason"] == "records_refused"
    assert response.json["message"] == "3 problems; nothing was imported."
    assert response.json["problems"] == [
        {"index": 1, "field": "reader",
         "reason": "no account has the user name or e-mail nobody"},
        {"index": 2, "field": "read_date",
         "reason": "02/03/2026 is not a date in the form YYYY-MM-DD"},
        {"index": 2, "field": "grade", "reason": "9 is not a grade (1, 2a, 2b, 3a or 3b)"},
    ]
    assert count(QcRecord) == 0 and count(QcImportBatch) == 0


def test_fields_the_template_does_not_have_are_refused(
        client: FlaskClient, people: dict[str, Any]) -> None:
    token = make_token(client, people["qc"])
    response = post(client, token, {"records": [record(qc_finding="infiltrate",
                                                       patient_name="Jane")]})
    assert response.status_code == 422
    assert {(p["index"], p["field"], p["reason"]) for p in response.json["problems"]} == {
        (0, "qc_finding", "this field is not known"),
        (0, "patient_name", "this field is not known")}
    unknown_scheme = post(client, token, {"scheme": "nothing", "records": [record()]})
    assert unknown_scheme.status_code == 422
    assert unknown_scheme.json["problems"][0]["reason"] == "there is no reporting scheme nothing"
    assert count(QcRecord) == 0


@pytest.mark.parametrize("body", [
    {}, {"records": "ACC-1"}, {"records": ["ACC-1"]}, {"records": [record()], "extra": 1},
    {"scheme": "", "records": [record()]}, [record()],
])
def test_bodies_the_schema_refuses_are_422_with_the_field(
        client: FlaskClient, people: dict[str, Any], body: Any) -> None:
    token = make_token(client, people["qc"])
    response = post(client, token, body)
    assert response.status_code == 422, response.json
    assert response.json["errors"] and response.json["message"]
    assert count(QcRecord) == 0


def test_an_empty_batch_is_refused(client: FlaskClient, people: dict[str, Any]) -> None:
    token = make_token(client, people["qc"])
    response = post(client, token, {"records": []})
    assert response.status_code == 422
    assert response.json["problems"] == [{"index": None, "field": "",
                                          "reason": "there are no rows to import"}]


def test_a_batch_larger_than_the_limit_is_413_and_writes_nothing(
        client: FlaskClient, people: dict[str, Any]) -> None:
    token = make_token(client, people["qc"])
    body = {"records": [record(study_reference=f"ACC-{n}") for n in range(MAX_BATCH + 1)]}
    response = post(client, token, body)
    assert response.status_code == 413, response.json
    assert f"at most {MAX_BATCH} records" in response.json["message"]
    assert count(QcRecord) == 0 and count(QcImportBatch) == 0


@pytest.mark.parametrize(("roles", "scope", "status"), [
    ((Role.TRAINER,), "read", 403), ((Role.ADMIN,), "read", 403),
    ((Role.TRAINEE_RADIOLOGIST,), "write", 403), ((Role.PROGRAMME_LEAD,), "write", 403),
    ((Role.ADMIN,), "write", 201), ((Role.TRAINER,), "write", 201),
])
def test_a_write_token_of_a_trainer_or_administrator_is_needed(
        client: FlaskClient, people: dict[str, Any], make_user: Callable[..., User],
        roles: tuple[Role, ...], scope: str, status: int) -> None:
    token = make_token(client, make_user(*roles), scope=scope)
    response = post(client, token, {"records": [record()]})
    assert response.status_code == status, response.json
    if status == 403:
        assert response.json["message"]
        if scope == "read":
            assert response.json["reason"] == "read_only_token"
        assert count(QcRecord) == 0 and count(QcImportBatch) == 0


def test_a_session_needs_the_csrf_token(client: FlaskClient, people: dict[str, Any]) -> None:
    assert login(client, "dr.qc").status_code == 302
    assert client.post(URL, json={"records": [record()]}).status_code == 400
    token = csrf_token(client, "/qc/import")
    response = client.post(URL, json={"records": [record()]}, headers={"X-CSRFToken": token})
    assert response.status_code == 201, response.json
    assert count(QcRecord) == 1


def test_the_openapi_document_describes_the_batch(client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").json
    operation = spec["paths"]["/api/v1/qc/records"]["post"]
    assert {"200", "201", "413", "422"} <= set(operation["responses"])
    assert "all or none" in operation["summary"]
    assert "nothing is imported" in operation["description"]
