"""Import from a PACS, against a real Orthanc (DICOMweb and DIMSE): search, import as a job
through the upload's de-identifying ingest, and the failures a trainer or admin meets.

Imports here run on the test configuration's immediate queue (the job runs inside the call
that queues it); tests/test_pacs_import.py runs them on a real queue and worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from app.audit.models import AuditEvent
from app.auth.roles import Role
from app.cases.models import Case, CaseImage
from app.extensions import db
from app.jobs.lifecycle import JobError, spool_dir, unseal
from app.jobs.models import Job, JobItem
from app.jobs.pacs_import import MAX_STUDIES_PER_IMPORT, start_pacs_import
from app.jobs.services import item_name
from app.pacs.clients import PacsError, SearchCriteria
from app.pacs.models import PacsEndpoint
from app.pacs.services import (
    EndpointSettings,
    save_endpoint,
    search,
    test_connection,
)
from tests.conftest import login, post_hand_built
from tests.dicom_factory import phi_strings
from tests.forms import submit_form, submit_html
from tests.orthanc import (
    DX_PATIENT_ID,
    PACS_PASSWORD,
    PACS_USER,
    PHI_PATIENT_ID,
    PORTAL_AE,
    RG1_STUDY,
    Orthanc,
    load_test_studies,
    orthanc_server,
)
from tests.realservers import free_port
from tests.test_ingest import assert_no_residue, store
from tests.test_jobs import (
    REPO,
    queue,  # noqa: F401  (fixture: the app on a real SQLite queue)
    wait_finished,
)


@pytest.fixture(scope="module")
def orthanc() -> Iterator[tuple[Orthanc, dict[str, str]]]:
    with orthanc_server() as server:
        yield server, load_test_studies(server)


def dicomweb(server: Orthanc, *, password: str = PACS_PASSWORD, url: str | None = None,
             name: str = "Orthanc web") -> PacsEndpoint:
    return save_endpoint(EndpointSettings(name=name, kind="dicomweb",
                                          url=url or server.dicomweb_url,
                                          username=PACS_USER, password=password), actor=None)


def dimse(server: Orthanc, *, port: int | None = None, calling_ae: str = PORTAL_AE,
          name: str = "Orthanc DIMSE") -> PacsEndpoint:
    return save_endpoint(EndpointSettings(name=name, kind="dimse", host="127.0.0.1",
                                          port=port or server.dicom_port, called_ae="TESTPACS",
                                          calling_ae=calling_ae), actor=None)


def jobs() -> int:
    return db.session.scalar(select(func.count(Job.id))) or 0


def import_job(endpoint: PacsEndpoint, study_uids: list[str]) -> tuple[Job, list[JobItem]]:
    """Queue the import and, the queue being immediate, find it done: the job and its
    per-file results."""
    job_id = start_pacs_import(endpoint, study_uids, actor=None).id
    db.session.expire_all()
    job = db.session.get(Job, job_id)
    assert job is not None and job.finished, job
    return job, list(job.items)


def results(items: list[JobItem]) -> list[tuple[str, str, str | None]]:
    return [(item_name(i), i.status, i.reason) for i in items]


def counts() -> tuple[int, int]:
    return (db.session.scalar(select(func.count(Case.id))) or 0,
            db.session.scalar(select(func.count(CaseImage.id))) or 0)


def assert_deidentified(app) -> None:
    """No planted identifier is in any stored file of the library."""
    image_store = store(app)
    for key in image_store.keys():  # noqa: SIM118 (a method, not a dict)
        for path in image_store.folder(key).iterdir():
            data = path.read_bytes()
            for value in phi_strings():
                assert value not in data, (path.name, value)
            assert b"CompressedSamples" not in data and b"9RG1" not in data


# ---- DICOMweb ---------------------------------------------------------------------------


def test_dicomweb_search_and_import_deidentified(app, orthanc):
    server, studies = orthanc
    endpoint = dicomweb(server)
    hits = search(endpoint, SearchCriteria(patient_id=PHI_PATIENT_ID))
    assert [h.study_uid for h in hits] == [studies["phi"]]
    assert hits[0].modalities == ("CR",) and hits[0].importable

    job, items = import_job(endpoint, [studies["phi"], RG1_STUDY])
    assert job.status == "done" and job.kind == "pacs_import"
    assert [item_name(i) for i in items] == [
        "PACS study 1 of 2, image 1 of 1", "PACS study 2 of 2, image 1 of 3",
        "PACS study 2 of 2, image 2 of 3", "PACS study 2 of 2, image 3 of 3"]
    assert [i.position for i in items] == [0, 1, 2, 3]
    assert (job.progress_done, job.progress_total) == (4, 4)
    # RG1 in three transfer syntaxes (in the order the PACS sends them): the lossless
    # JPEG 2000 copy holds the uncompressed file's pixels, so one of the two is a duplicate.
    assert items[0].status == "imported"
    assert sorted(i.status for i in items[1:]) == ["duplicate", "imported", "imported"]
    assert counts() == (2, 3)
    assert {c.source for c in db.session.scalars(select(Case))} == {"PACS Orthanc web"}
    assert all(db.session.get(CaseImage, i.image_id).deid_report
               for i in items if i.status == "imported")
    assert_deidentified(app)
    assert_no_residue(app, 3)
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "cases.import")).one()
    assert event.detail["imported"] == 3 and event.detail["source"] == "PACS Orthanc web"
    # The study UIDs are in the job's sealed parameters only; the retrieved files are gone.
    assert unseal(job.params_encrypted)["study_uids"] == [studies["phi"], RG1_STUDY]
    assert studies["phi"] not in job.params_encrypted
    assert not spool_dir(job.id).exists()


def test_dicomweb_search_criteria(app, orthanc):
    server, studies = orthanc
    endpoint = dicomweb(server)
    everything = search(endpoint, SearchCriteria(modality="any"))
    assert studies["ct"] in {h.study_uid for h in everything}
    chest = search(endpoint, SearchCriteria())
    assert studies["ct"] not in {h.study_uid for h in chest}
    assert {studies["phi"], studies["dx"], RG1_STUDY} <= {h.study_uid for h in chest}
    # The PACS answers in an order of its own.
    assert {h.study_uid for h in search(endpoint, SearchCriteria(modality="DX"))} \
        == {h.study_uid for h in chest if "DX" in h.modalities}
    assert [h.study_uid for h in search(endpoint, SearchCriteria(accession="ACC-DX-1"))] \
        == [studies["dx"]]
    assert [h.study_uid for h in search(endpoint, SearchCriteria(description="teaching"))] \
        == [studies["dx"]]
    in_range = search(endpoint, SearchCriteria(date_from=date(2022, 1, 1),
                                               date_to=date(2022, 12, 31)))
    assert [h.study_uid for h in in_range] == [studies["dx"]]


def test_dicomweb_wrong_credentials(app, orthanc):
    server, studies = orthanc
    endpoint = dicomweb(server, password="not-the-password")
    worked, message = test_connection(endpoint)
    assert not worked and "refused the user name or password" in message
    with pytest.raises(PacsError, match="refused the user name or password"):
        start_pacs_import(endpoint, [studies["phi"]], actor=None)
    assert counts() == (0, 0) and jobs() == 0  # refused at once: nothing queued
    assert_no_residue(app)


def test_unreachable_pacs(app, orthanc):
    server, studies = orthanc
    for endpoint in (dicomweb(server, url=f"http://127.0.0.1:{free_port()}/dicom-web"),
                     dimse(server, port=free_port())):
        started = time.monotonic()
        worked, message = test_connection(endpoint)
        # A refused connection is said at once, not after rounds of retries.
        assert time.monotonic() - started < 5
        assert not worked and "could not be reached" in message, message
        with pytest.raises(PacsError, match="could not be reached"):
            search(endpoint, SearchCriteria())
        with pytest.raises(PacsError, match="could not be reached"):
            start_pacs_import(endpoint, [studies["phi"]], actor=None)
    assert counts() == (0, 0) and jobs() == 0
    assert_no_residue(app)


def test_study_not_cr_or_dx_refused_whole(app, orthanc):
    server, studies = orthanc
    for endpoint in (dicomweb(server), dimse(server)):
        job, [result] = import_job(endpoint, [studies["ct"]])
        assert job.status == "done" and result.status == "rejected"
        assert item_name(result) == "PACS study 1 of 1"
        assert "holds CT images" in (result.reason or "")
        assert "only CR and DX" in (result.reason or "")
    assert counts() == (0, 0)
    assert_no_residue(app)


def test_bad_study_uids_refused(app, orthanc):
    server, _ = orthanc
    endpoint = dicomweb(server)
    # Refused at once, with nothing queued: a malformed UID (never quoted back), none, too many.
    with pytest.raises(JobError, match="A selected study has no valid Study Instance UID") \
            as refused:
        start_pacs_import(endpoint, ["1.2.3.999999", "not/a uid"], actor=None)
    assert "not/a uid" not in str(refused.value)
    with pytest.raises(JobError, match="No study was selected"):
        start_pacs_import(endpoint, [" "], actor=None)
    with pytest.raises(JobError, match=f"At most {MAX_STUDIES_PER_IMPORT} studies"):
        start_pacs_import(endpoint, [f"1.2.3.{n}" for n in range(MAX_STUDIES_PER_IMPORT + 1)],
                          actor=None)
    assert jobs() == 0
    # A well-formed UID the PACS does not hold is the job's to find out.
    _, items = import_job(endpoint, ["1.2.3.999999"])
    assert results(items) == [("PACS study 1 of 1", "rejected",
                               "the PACS does not hold this study")]
    assert counts() == (0, 0)


# ---- DIMSE ------------------------------------------------------------------------------


def test_dimse_search_and_import_deidentified(app, orthanc, caplog):
    server, studies = orthanc
    caplog.set_level("DEBUG")
    endpoint = dimse(server)
    worked, message = test_connection(endpoint)
    assert worked and "C-ECHO" in message
    hits = search(endpoint, SearchCriteria(patient_id=DX_PATIENT_ID))
    assert [(h.study_uid, h.modalities) for h in hits] == [(studies["dx"], ("DX",))]
    assert [h.study_uid for h in search(endpoint, SearchCriteria(description="teaching"))] \
        == [studies["dx"]]
    assert DX_PATIENT_ID not in caplog.text  # the C-FIND identifier is not logged

    job, items = import_job(endpoint, [studies["dx"], studies["phi"], RG1_STUDY])
    assert job.status == "done" and (job.progress_done, job.progress_total) == (5, 5)
    assert [i.status for i in items[:2]] == ["imported", "imported"]
    assert sorted(i.status for i in items[2:]) == ["duplicate", "imported", "imported"]
    assert counts() == (3, 4)
    assert not spool_dir(job.id).exists()
    assert_deidentified(app)
    assert_no_residue(app, 4)


def test_dimse_unknown_calling_ae_refused(app, orthanc):
    server, _ = orthanc
    endpoint = dimse(server, calling_ae="STRANGER")
    with pytest.raises(PacsError):
        search(endpoint, SearchCriteria())
    assert counts() == (0, 0)


# ---- pages ------------------------------------------------------------------------------


def _all_rows_text() -> str:
    parts = []
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(select(table)):
            parts.append(repr(tuple(row)))
    return "\n".join(parts)


def worker_process(app, queue_url: str) -> subprocess.Popen:
    """`cxr-academy worker` from this checkout, logging everything at DEBUG to its output
    (which the caller reads), in its own process group."""
    cfg = app.config
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "CXR_ACADEMY_INSTANCE_PATH": app.instance_path,
        "CXR_ACADEMY_SQLALCHEMY_DATABASE_URI": cfg["SQLALCHEMY_DATABASE_URI"],
        "CXR_ACADEMY_JOB_QUEUE_URL": queue_url,
        "CXR_ACADEMY_JOB_STALE_AFTER": str(cfg["JOB_STALE_AFTER"]),
        "CXR_ACADEMY_SECRET_KEY": cfg["SECRET_KEY"],
        "CXR_ACADEMY_DEID_SECRET": cfg["DEID_SECRET"],
        "CXR_ACADEMY_FIELD_ENCRYPTION_KEYS": ",".join(cfg["FIELD_ENCRYPTION_KEYS"]),
        "CXR_ACADEMY_IMAGE_STORAGE_PATH": cfg["IMAGE_STORAGE_PATH"],
        "CXR_ACADEMY_JOB_SPOOL_PATH": str(spool_dir(0).parent),
    }
    code = ("import logging; logging.basicConfig(level=logging.DEBUG); "
            "from app.cli import main; main()")
    return subprocess.Popen([sys.executable, "-c", code, "worker"], cwd=REPO, env=env,
                            start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def stop_worker(worker: subprocess.Popen) -> str:
    """Stop it as Ctrl+C does (the job in hand ends first); its output."""
    worker.send_signal(signal.SIGINT)
    try:
        return worker.communicate(timeout=30)[0]
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        return worker.communicate()[0]


def test_trainer_search_select_import_keeps_no_typed_identifier(app, client, make_user,
                                                                orthanc, caplog,
                                                                queue):  # noqa: F811
    """The import runs on a real queue and a worker process: the page answers with the
    job's page at once; the typed patient ID is in no table (the job's included), no
    database or queue file, no log of the app or of the worker, and not in the session."""
    server, studies = orthanc
    caplog.set_level("DEBUG")
    dicomweb(server)
    trainer = make_user(Role.TRAINER)
    assert login(client, trainer.username).status_code == 302

    found = submit_form(client, "/pacs/", button="Search",
                        fields={"patient_id": PHI_PATIENT_ID, "modality": ""})
    assert found.status_code == 200, found.get_data(as_text=True)
    html = found.get_data(as_text=True)
    assert html.count('data-testid="pacs-study"') == 1
    assert PACS_PASSWORD not in html and server.url not in html
    imported = submit_html(client, html, "/pacs/", button="Import selected studies",
                           fields={"study": [studies["phi"]]})
    assert imported.status_code == 303, imported.get_data(as_text=True)
    job_url = imported.headers["Location"]
    assert job_url.startswith("/jobs/")
    queued = client.get(job_url).get_data(as_text=True)
    assert "PACS import · job" in queued and 'data-testid="job-status">queued' in queued
    assert counts() == (0, 0)  # answered before anything was retrieved

    worker = worker_process(app, queue)
    try:
        status = wait_finished(client, job_url)
    finally:
        output = stop_worker(worker)
    assert status["status"] == "done", (status, output)
    assert [(i["name"], i["status"]) for i in status["items"]] == [
        ("PACS study 1 of 1, image 1 of 1", "imported")]
    report = client.get(job_url).get_data(as_text=True)
    assert "1 imported" in report and "PACS study 1 of 1, image 1 of 1" in report
    assert "De-identification:" in report
    assert counts() == (1, 1)

    typed = PHI_PATIENT_ID.encode()
    db.session.expire_all()
    job = db.session.scalars(select(Job)).one()
    assert job.items and job.runs == 1
    assert PHI_PATIENT_ID not in json.dumps(unseal(job.params_encrypted))
    assert PHI_PATIENT_ID not in " ".join(item_name(i) for i in job.items)
    assert PHI_PATIENT_ID not in _all_rows_text()  # every table, the job's among them
    url = str(db.engine.url)
    if url.startswith("sqlite"):
        database = Path(db.engine.url.database or "")
        for path in database.parent.glob(database.name + "*"):
            assert typed not in path.read_bytes(), path
    for path in Path(queue.removeprefix("sqlite:///")).parent.glob("queue.sqlite3*"):
        assert typed not in path.read_bytes(), path
    from app.audit.security_log import destination

    security_log = Path(destination(app))
    assert security_log.exists()
    assert typed not in security_log.read_bytes()
    assert PHI_PATIENT_ID not in caplog.text
    # The worker's log, at DEBUG: it ran the job (its lines are there), never with the ID.
    assert f"job {job.id}" in output or "run_job" in output, output
    assert PHI_PATIENT_ID not in output
    # Nor the study's own UID, which stands for the patient's study like an identifier: it
    # is in the job's sealed parameters only (the WADO-RS request lines are logged without it).
    assert "/dicom-web/studies/" in output and studies["phi"] not in output
    assert studies["phi"] not in caplog.text
    with client.session_transaction() as session:
        assert PHI_PATIENT_ID not in repr(dict(session))
    assert not spool_dir(job.id).exists()
    assert_deidentified(app)


def test_search_page_refusals(app, client, make_user, orthanc):
    server, _ = orthanc
    dicomweb(server, password="wrong-one", name="Wrong")
    trainer = make_user(Role.TRAINER)
    login(client, trainer.username)
    refused = submit_form(client, "/pacs/", button="Search", fields={"accession": "A\\B"})
    assert refused.status_code == 400
    assert "a backslash cannot be searched for" in refused.get_data(as_text=True)
    failed = submit_form(client, "/pacs/", button="Search", fields={})
    assert failed.status_code == 502
    assert "refused the user name or password" in failed.get_data(as_text=True)
    backwards = submit_form(client, "/pacs/", button="Search",
                            fields={"date_from": "2022-02-01", "date_to": "2022-01-01"})
    assert backwards.status_code == 400
    assert "The end date is before the start date." in backwards.get_data(as_text=True)


def test_admin_configures_endpoint_credentials_never_shown_or_exported(app, client, make_user,
                                                                       orthanc, tmp_path):
    server, _ = orthanc
    admin = make_user(Role.ADMIN)
    login(client, admin.username)
    added = submit_form(client, "/pacs/endpoints", button="Add endpoint", fields={
        "name": "Main PACS", "kind": "dicomweb", "url": server.dicomweb_url,
        "username": PACS_USER, "password": PACS_PASSWORD}, follow_redirects=True)
    page = added.get_data(as_text=True)
    assert added.status_code == 200, page
    assert "Credentials: <strong>set</strong>" in page
    assert PACS_PASSWORD not in page and f'value="{PACS_USER}"' not in page
    endpoint = db.session.scalars(select(PacsEndpoint)).one()
    assert PACS_PASSWORD not in (endpoint.credentials_encrypted or "")
    assert PACS_USER not in (endpoint.credentials_encrypted or "")

    tested = submit_form(client, f"/pacs/endpoints/{endpoint.id}", button="Test connection")
    assert tested.status_code == 200
    assert "Connection works" in tested.get_data(as_text=True)
    assert PACS_PASSWORD not in tested.get_data(as_text=True)

    # Saving other settings with the credential fields left empty keeps the credentials.
    saved = submit_form(client, f"/pacs/endpoints/{endpoint.id}", button="Save",
                        fields={"name": "Main PACS renamed"}, follow_redirects=True)
    assert saved.status_code == 200
    retested = submit_form(client, f"/pacs/endpoints/{endpoint.id}", button="Test connection")
    assert "Connection works" in retested.get_data(as_text=True)

    # Replaced by a wrong password: the test says so, in words.
    submit_form(client, f"/pacs/endpoints/{endpoint.id}", button="Save",
                fields={"username": PACS_USER, "password": "a-wrong-password"})
    wrong = submit_form(client, f"/pacs/endpoints/{endpoint.id}", button="Test connection")
    assert wrong.status_code == 502
    assert "refused the user name or password" in wrong.get_data(as_text=True)
    submit_form(client, f"/pacs/endpoints/{endpoint.id}", button="Save",
                fields={"username": PACS_USER, "password": PACS_PASSWORD})

    archive = tmp_path / "backup.tar"
    result = app.test_cli_runner().invoke(args=["backup", str(archive)])
    assert result.exit_code == 0, result.output
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.isfile():
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                assert PACS_PASSWORD.encode() not in data, member.name
    assert "a-wrong-password" not in _all_rows_text()
    audit = " ".join(repr(e.detail) for e in db.session.scalars(select(AuditEvent)))
    assert PACS_PASSWORD not in audit and "pacs.endpoint_update" in " ".join(
        e.action for e in db.session.scalars(select(AuditEvent)))


def test_endpoint_form_refusals(app, client, make_user):
    admin = make_user(Role.ADMIN)
    login(client, admin.username)
    no_url = submit_form(client, "/pacs/endpoints", button="Add endpoint",
                         fields={"name": "X", "kind": "dicomweb", "url": "ftp://pacs"})
    assert no_url.status_code == 400
    assert "must start with http:// or https://" in no_url.get_data(as_text=True)
    no_host = submit_form(client, "/pacs/endpoints", button="Add endpoint",
                          fields={"name": "Y", "kind": "dimse", "called_ae": "PACS"})
    assert no_host.status_code == 400
    assert "needs the PACS&#39;s host and port" in no_host.get_data(as_text=True)
    in_url = submit_form(client, "/pacs/endpoints", button="Add endpoint", fields={
        "name": "Z", "kind": "dicomweb", "url": "https://user:secret@pacs.example.org/dw"})
    assert in_url.status_code == 400
    assert "not in the URL" in in_url.get_data(as_text=True)
    assert db.session.scalar(select(func.count(PacsEndpoint.id))) == 0


def test_trainer_cannot_configure_endpoints(app, client, make_user):
    trainer = make_user(Role.TRAINER)
    login(client, trainer.username)
    assert client.get("/pacs/endpoints").status_code == 403


def test_thumbnail_proxied_without_credentials(app, client, make_user, orthanc):
    server, studies = orthanc
    endpoint = dicomweb(server)
    trainer = make_user(Role.TRAINER)
    login(client, trainer.username)
    picture = client.get(f"/pacs/{endpoint.id}/thumbnail/{studies['dx']}")
    assert picture.status_code == 200
    assert picture.mimetype == "image/jpeg" and picture.data[:2] == b"\xff\xd8"
    assert client.get(f"/pacs/{endpoint.id}/thumbnail/1.2.3.4").status_code == 404
    assert client.get(f"/pacs/{endpoint.id}/thumbnail/not-a-uid").status_code == 404


def test_migration_table_present(app):
    assert db.session.execute(text("SELECT count(*) FROM pacs_endpoint")).scalar() == 0


def test_import_page_when_pacs_refuses_imports_nothing(app, client, make_user, orthanc):
    server, studies = orthanc
    endpoint = dicomweb(server)
    trainer = make_user(Role.TRAINER)
    login(client, trainer.username)
    found = submit_form(client, "/pacs/", button="Search", fields={"accession": "ACC-DX-1"})
    assert found.status_code == 200
    # Between the search and the import, the PACS's password was changed.
    save_endpoint(EndpointSettings(name=endpoint.name, kind="dicomweb", url=endpoint.url,
                                   username=PACS_USER, password="changed-meanwhile"),
                  actor=None, endpoint=endpoint)
    refused = submit_html(client, found.get_data(as_text=True), "/pacs/",
                          button="Import selected studies", fields={"study": [studies["dx"]]})
    assert refused.status_code == 502
    assert "Nothing was imported: the PACS refused the user name or password" \
        in refused.get_data(as_text=True)
    assert 'data-testid="pacs-search"' in refused.get_data(as_text=True)  # search again
    none_chosen = submit_html(client, found.get_data(as_text=True), "/pacs/",
                              button="Import selected studies")
    assert none_chosen.status_code == 400
    assert "No study was selected" in none_chosen.get_data(as_text=True)
    # A study UID altered in the page is refused before anything is queued.
    save_endpoint(EndpointSettings(name=endpoint.name, kind="dicomweb", url=endpoint.url,
                                   username=PACS_USER, password=PACS_PASSWORD),
                  actor=None, endpoint=endpoint)
    altered = post_hand_built(client, "/pacs/import", {
        "endpoint": str(endpoint.id), "study": [studies["dx"], "1.2.3'; DROP TABLE job"]},
        page="/pacs/")
    assert altered.status_code == 400
    assert "no valid Study Instance UID" in altered.get_data(as_text=True)
    assert "DROP TABLE" not in altered.get_data(as_text=True)
    too_many = post_hand_built(client, "/pacs/import", {
        "endpoint": str(endpoint.id),
        "study": [f"1.2.3.{n}" for n in range(MAX_STUDIES_PER_IMPORT + 1)]}, page="/pacs/")
    assert too_many.status_code == 400
    assert f"At most {MAX_STUDIES_PER_IMPORT} studies" in too_many.get_data(as_text=True)
    unknown = post_hand_built(client, "/pacs/import", {"endpoint": "999999",
                                                       "study": studies["dx"]}, page="/pacs/")
    assert unknown.status_code == 400
    assert "There is no such PACS endpoint" in unknown.get_data(as_text=True)
    assert counts() == (0, 0) and jobs() == 0
    assert_no_residue(app)
