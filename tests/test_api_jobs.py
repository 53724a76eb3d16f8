"""Jobs in the JSON API: a trainer's token reads the trainer's own jobs (an administrator's
every job) with the same state, progress and per-file results as the job page's status;
another person's job is not found, trainees are refused, bad query strings are a 422."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.auth.roles import Role
from app.cases.ingest import ImportOptions
from app.jobs.case_import import start_path_import
from tests.conftest import login
from tests.dicom_factory import cr_dataset, to_bytes
from tests.test_api import bearer, make_token


def _import(tmp_path: Path, user, name: str, *files: tuple[str, bytes]) -> int:
    """A finished import job of ``user`` (the test queue runs it at once)."""
    folder = tmp_path / name
    folder.mkdir()
    for file_name, data in files:
        (folder / file_name).write_bytes(data)
    return start_path_import([folder], actor=user, options=ImportOptions()).id


@pytest.fixture
def trainer(make_user):
    return make_user(Role.TRAINER, username="tom")


@pytest.fixture
def job_id(tmp_path, trainer) -> int:
    return _import(tmp_path, trainer, "mine",
                   ("one.dcm", to_bytes(cr_dataset(seed=11, rows=48, columns=48))),
                   ("notes.txt", b"not dicom"))


def test_a_trainer_reads_their_job_as_the_job_page_shows_it(client, trainer, job_id):
    token = make_token(client, trainer, scope="read")
    response = client.get(f"/api/v1/jobs/{job_id}", headers=bearer(token))
    assert response.status_code == 200, response.json
    login(client, trainer.username)
    assert response.json == client.get(f"/jobs/{job_id}/status").get_json()
    client.delete_cookie(client.application.config["SESSION_COOKIE_NAME"])
    body = response.json
    assert (body["status"], body["done"], body["total"], body["finished"]) == ("done", 2, 2,
                                                                              True)
    by_name = {Path(item["name"]).name: item for item in body["items"]}
    assert by_name["one.dcm"]["status"] == "imported" and by_name["one.dcm"]["case_id"]
    assert by_name["notes.txt"]["status"] == "rejected"
    assert "not a DICOM file" in by_name["notes.txt"]["reason"]
    # Only the results not read yet.
    later = client.get(f"/api/v1/jobs/{job_id}?after=1", headers=bearer(token)).json
    assert [item["position"] for item in later["items"]] == [1]
    assert client.get(f"/api/v1/jobs/{job_id}?after=2", headers=bearer(token)).json[
        "items"] == []

    listed = client.get("/api/v1/jobs", headers=bearer(token))
    assert listed.status_code == 200
    [row] = listed.json
    assert row["id"] == job_id and row["created_by"] == trainer.id
    assert (row["status"], row["done"], row["total"]) == ("done", 2, 2)
    assert row["created_at"] and row["finished_at"] and "items" not in row


def test_others_jobs_are_not_found_administrators_see_all_trainees_none(
        client, tmp_path, make_user, job_id, trainer):
    other = make_user(Role.TRAINER)
    theirs = _import(tmp_path, other, "theirs",
                     ("two.dcm", to_bytes(cr_dataset(seed=12, rows=48, columns=48))))
    token = make_token(client, other, scope="read")
    refused = client.get(f"/api/v1/jobs/{job_id}", headers=bearer(token))
    assert refused.status_code == 404
    assert refused.json["message"] == f"There is no job {job_id} of yours."
    assert [row["id"] for row in client.get("/api/v1/jobs",
                                            headers=bearer(token)).json] == [theirs]
    assert client.get("/api/v1/jobs/999999", headers=bearer(token)).status_code == 404
    assert client.get(f"/api/v1/jobs/{2**40}", headers=bearer(token)).status_code == 404

    admin = make_token(client, make_user(Role.ADMIN), scope="read")
    assert [row["id"] for row in client.get("/api/v1/jobs", headers=bearer(admin)).json] == [
        theirs, job_id]
    assert client.get(f"/api/v1/jobs/{job_id}", headers=bearer(admin)).status_code == 200

    trainee = make_token(client, make_user(Role.TRAINEE_RADIOLOGIST))
    for path in ("/api/v1/jobs", f"/api/v1/jobs/{job_id}"):
        response = client.get(path, headers=bearer(trainee))
        assert response.status_code == 403 and response.json["message"]


def test_jobs_need_a_token_or_a_session(client, job_id, trainer):
    assert client.get("/api/v1/jobs").status_code == 401
    assert client.get(f"/api/v1/jobs/{job_id}").status_code == 401
    login(client, trainer.username)  # the signed-in page may read them as well
    assert client.get(f"/api/v1/jobs/{job_id}").status_code == 200


BAD_AFTER = ["after=-1", "after=x", "after=1.5", "after=", f"after={2**31}",
             "after=" + "9" * 30, "after=²"]


@pytest.mark.parametrize("query", BAD_AFTER)
def test_a_bad_after_is_refused_with_the_field_named(client, trainer, job_id, query):
    token = make_token(client, trainer, scope="read")
    response = client.get(f"/api/v1/jobs/{job_id}?{query}", headers=bearer(token))
    assert response.status_code in (400, 422), (query, response.json)
    assert response.json["message"]
    if response.status_code == 422:
        assert "after" in response.json["errors"]


@pytest.mark.parametrize("query", BAD_AFTER)
def test_the_job_page_status_refuses_the_same_query_strings_with_a_reason(
        client, trainer, job_id, query):
    login(client, trainer.username)
    response = client.get(f"/jobs/{job_id}/status?{query}",
                          headers={"Accept": "application/json"})
    assert response.status_code == 400, (query, response.get_data(as_text=True))
    assert "after: must be a whole number" in response.get_json()["message"]


def test_the_page_and_the_api_read_a_query_string_alike(client, trainer, job_id):
    """A name given twice counts once (the first), a name not known is left aside."""
    token = make_token(client, trainer, scope="read")
    api = [client.get(f"/api/v1/jobs/{job_id}?{query}", headers=bearer(token)).json
           for query in ("after=1&after=0", "after=1&_=123")]
    login(client, trainer.username)
    page = [client.get(f"/jobs/{job_id}/status?{query}").get_json()
            for query in ("after=1&after=0", "after=1&_=123")]
    assert api == page
    assert [[item["position"] for item in body["items"]] for body in page] == [[1], [1]]


def test_the_document_describes_the_job_operations(client):
    spec = client.get("/api/v1/openapi.json").json
    listing = spec["paths"]["/api/v1/jobs"]["get"]["responses"]["200"]
    assert listing["content"]["application/json"]["schema"]["items"]["$ref"].endswith(
        "/JobOut")
    one = spec["paths"]["/api/v1/jobs/{job_id}"]["get"]
    assert one["responses"]["200"]["content"]["application/json"]["schema"][
        "$ref"].endswith("/JobStatusOut")
    assert [p["name"] for p in one["parameters"]] == ["after"]
    item = spec["components"]["schemas"]["JobItemOut"]
    assert set(item["required"]) >= {"position", "name", "status", "case_id", "reason"}
