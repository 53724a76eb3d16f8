"""PACS imports as jobs against a real Orthanc: studies retrieved as the PACS's own Part 10
files into the job's folder (never parsed outside the sandbox), refused whole past the
per-study limits, a worker killed mid-study and another started importing every image once,
and a PACS that fails after the job was queued."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pydicom
import pytest
import requests
from pydicom.uid import generate_uid
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.cases.models import CaseImage
from app.extensions import db
from app.jobs.lifecycle import spool_dir
from app.jobs.models import Job, JobItem
from app.jobs.pacs_import import start_pacs_import
from app.jobs.queue import BackgroundWorker
from app.jobs.services import item_name
from app.pacs.clients import DicomWebPacs, DimsePacs, PacsClient
from app.pacs.retrieval import StudyLimits, StudyRefused
from app.pacs.services import EndpointSettings, delete_endpoint, save_endpoint
from tests.conftest import base_config
from tests.dicom_factory import cr_dataset, to_bytes
from tests.orthanc import (
    PACS_PASSWORD,
    PACS_USER,
    PORTAL_AE,
    RG1_STUDY,
    SHARED_DICOM,
    Orthanc,
    load_test_studies,
    orthanc_server,
)
from tests.test_ingest import assert_no_residue
from tests.test_jobs import (
    kill_once_done,
    queue,  # noqa: F401  (fixture: the app on a real SQLite queue)
)
from tests.test_pacs import (
    assert_deidentified,
    counts,
    dicomweb,
    dimse,
    import_job,
    jobs,
    results,
    stop_worker,
    worker_process,
)

RG1_FILES = ("RG1_UNCR.dcm", "RG1_J2KR.dcm", "RG1_J2KI.dcm")
LONG_STUDY_IMAGES = 10


@pytest.fixture(scope="module")
def orthanc() -> Iterator[tuple[Orthanc, dict[str, str]]]:
    """The shared test studies, and a study of ten distinct CR images for interrupting."""
    with orthanc_server() as server:
        studies = load_test_studies(server)
        long_study = generate_uid()
        for n in range(LONG_STUDY_IMAGES):
            server.upload(to_bytes(cr_dataset(
                256, 256, seed=300 + n, StudyInstanceUID=long_study, StudyDate="20190301",
                StudyDescription="Ten views", PatientID="LONG-STUDY-1")))
        studies["long"] = long_study
        yield server, studies


def clients(server: Orthanc) -> list[PacsClient]:
    return [DicomWebPacs(server.dicomweb_url, PACS_USER, PACS_PASSWORD),
            DimsePacs("127.0.0.1", server.dicom_port, "TESTPACS", PORTAL_AE)]


# ---- the clients' retrieve -------------------------------------------------------------------


def test_a_study_is_retrieved_as_the_pacs_files_never_parsed(app, orthanc, tmp_path,
                                                            monkeypatch):
    server, _ = orthanc
    originals = {name: (SHARED_DICOM / name).read_bytes() for name in RG1_FILES}

    def no_parsing(*args, **kwargs):
        raise AssertionError("a retrieved file was parsed outside the sandbox")

    # dicomweb-client's retrieve_study reads every instance with pydicom.dcmread.
    monkeypatch.setattr(pydicom, "dcmread", no_parsing)
    monkeypatch.setattr(pydicom.filereader, "dcmread", no_parsing)
    monkeypatch.setattr(pydicom.Dataset, "save_as", no_parsing)
    web, dicom = clients(server)

    folder = tmp_path / "web"
    folder.mkdir()
    retrieved = web.retrieve(RG1_STUDY, folder, StudyLimits(10**9, 50))
    assert [p.name for p in retrieved.files] == ["0001.dcm", "0002.dcm", "0003.dcm"]
    assert retrieved.files == sorted(folder.iterdir())
    # WADO-RS with transfer-syntax=*: the very files the PACS holds, byte for byte.
    assert sorted(hashlib.sha256(p.read_bytes()).digest() for p in retrieved.files) \
        == sorted(hashlib.sha256(data).digest() for data in originals.values())

    folder = tmp_path / "dimse"
    folder.mkdir()
    retrieved = dicom.retrieve(RG1_STUDY, folder, StudyLimits(10**9, 50))
    assert len(retrieved.files) == 3 and retrieved.failed == 0
    # C-GET: the data set as it came over the association (the PACS's own encoding of it),
    # under a file meta of the negotiated transfer syntax: each file in the syntax the PACS
    # holds it in, never transcoded.
    monkeypatch.undo()
    got = {(str(ds.SOPInstanceUID), str(ds.file_meta.TransferSyntaxUID))
           for ds in (pydicom.dcmread(p) for p in retrieved.files)}
    assert got == {(str(ds.SOPInstanceUID), str(ds.file_meta.TransferSyntaxUID))
                   for ds in (pydicom.dcmread(SHARED_DICOM / name) for name in RG1_FILES)}
    for path in retrieved.files:
        assert path.read_bytes()[128:132] == b"DICM"


@pytest.mark.parametrize("kind", ["dicomweb", "dimse"])
def test_a_retrieve_stops_at_the_study_limits(app, orthanc, tmp_path, kind):
    server, _ = orthanc
    client = clients(server)[0 if kind == "dicomweb" else 1]
    too_big = tmp_path / "too-big"
    too_big.mkdir()
    with pytest.raises(StudyRefused, match=r"larger than the 1 MB per-study limit "
                                           r"\(PACS_STUDY_MAX_BYTES\)"):
        client.retrieve(RG1_STUDY, too_big, StudyLimits(max_bytes=1024**2, max_images=50))
    # Stopped there: no more than the limit was written (the PACS's 12 MB were not).
    assert sum(p.stat().st_size for p in too_big.iterdir()) <= 1024**2

    too_many = tmp_path / "too-many"
    too_many.mkdir()
    with pytest.raises(StudyRefused, match=r"more than 2 images, the per-study limit "
                                           r"\(PACS_STUDY_MAX_IMAGES\)"):
        client.retrieve(RG1_STUDY, too_many, StudyLimits(max_bytes=10**9, max_images=2))
    assert len(list(too_many.iterdir())) <= 2


# ---- the job ---------------------------------------------------------------------------------


def test_a_study_past_a_limit_is_refused_whole_and_the_others_imported(app, orthanc):
    server, studies = orthanc
    app.config["PACS_STUDY_MAX_BYTES"] = 2 * 1024**2  # RG1 is 12 MB, the PHI study 20 KB
    for endpoint in (dicomweb(server), dimse(server)):
        job, items = import_job(endpoint, [RG1_STUDY, studies["phi"]])
        assert job.status == "done"
        assert results(items)[0] == (
            "PACS study 1 of 2", "rejected",
            "the study is larger than the 2 MB per-study limit (PACS_STUDY_MAX_BYTES); "
            "nothing of this study was imported")
        assert results(items)[1][:2] == ("PACS study 2 of 2, image 1 of 1",
                                         "imported" if endpoint.kind == "dicomweb"
                                         else "duplicate")
        assert (job.progress_done, job.progress_total) == (2, 2)
        assert not spool_dir(job.id).exists()
    assert counts() == (1, 1)

    # More images than allowed: refused from the PACS's own count, before any retrieve.
    app.config["PACS_STUDY_MAX_BYTES"] = 1024**3
    app.config["PACS_STUDY_MAX_IMAGES"] = 2
    job, items = import_job(dicomweb(server, name="Orthanc again"), [RG1_STUDY])
    assert results(items) == [(
        "PACS study 1 of 1", "rejected",
        "the study holds more than 2 images, the per-study limit (PACS_STUDY_MAX_IMAGES): "
        "the PACS lists 3; nothing of it was retrieved")]
    assert counts() == (1, 1)
    assert_no_residue(app, 1)


def test_the_study_limits_must_be_whole_numbers(database_url, tmp_path):
    from app import create_app

    for name, value in (("PACS_STUDY_MAX_BYTES", 0), ("PACS_STUDY_MAX_IMAGES", "many"),
                        ("PACS_STUDY_MAX_IMAGES", True)):
        with pytest.raises(ValueError, match=f"{name} must be a whole number of at least 1"):
            create_app({**base_config(database_url, tmp_path), name: value})


def test_a_pacs_failing_after_the_job_was_queued_fails_it_with_the_reason(
        app, orthanc, queue):  # noqa: F811
    server, studies = orthanc
    endpoint = dicomweb(server)
    refused = start_pacs_import(endpoint, [studies["phi"]], actor=None)
    # Between the queuing and the worker, the PACS's password is changed...
    save_endpoint(EndpointSettings(name=endpoint.name, kind="dicomweb", url=endpoint.url,
                                   username=PACS_USER, password="changed-meanwhile"),
                  actor=None, endpoint=endpoint)
    other = dimse(server)
    removed = start_pacs_import(other, [studies["dx"]], actor=None)
    delete_endpoint(other, actor=None)  # ...and the other endpoint is removed.
    assert jobs() == 2
    worker = BackgroundWorker(app).start()
    try:
        deadline = time.monotonic() + 60
        while not all(_job(j.id).finished for j in (refused, removed)):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        worker.stop()
    failed = _job(refused.id)
    assert failed.status == "failed" and failed.error == (
        "The PACS could not be used: the PACS refused the user name or password (HTTP 401): "
        "check the endpoint's credentials; the studies listed as imported are in the "
        "library; import the others again from the PACS search.")
    gone = _job(removed.id)
    assert gone.status == "failed"
    assert gone.error.startswith("The PACS endpoint was removed before the import could run")
    assert counts() == (0, 0) and not failed.items and not gone.items
    assert not spool_dir(refused.id).exists() and not spool_dir(removed.id).exists()
    assert_no_residue(app)


def _job(job_id: int) -> Job:
    db.session.expire_all()
    job = db.session.get(Job, job_id)
    assert job is not None
    return job


@pytest.mark.parametrize("kind", ["dicomweb", "dimse"])
def test_a_worker_killed_mid_study_and_another_started_import_every_image_once(
        app, orthanc, queue, kind):  # noqa: F811
    """The study in hand is retrieved again from its start; the images stored before the
    kill come back from the ingest's duplicate check as this job's own and are neither
    stored nor listed twice; the study after it is imported as usual."""
    server, studies = orthanc
    endpoint = dicomweb(server) if kind == "dicomweb" else dimse(server)
    job_id = start_pacs_import(endpoint, [studies["long"], studies["dx"]], actor=None).id
    total = LONG_STUDY_IMAGES + 1

    kill_once_done(worker_process(app, queue), job_id, at_least=2)
    interrupted = _job(job_id)
    before_kill = interrupted.progress_done
    assert interrupted.status == "running" and 2 <= before_kill < LONG_STUDY_IMAGES
    assert interrupted.progress_total == total  # known from the PACS's counts
    # The study in hand was on disk in the job's own folder, not in the worker's memory.
    assert (spool_dir(job_id) / "study").is_dir()

    time.sleep(1.5)  # the heartbeat is now older than JOB_STALE_AFTER
    second = worker_process(app, queue)
    try:
        deadline = time.monotonic() + 120
        while not _job(job_id).finished:
            assert time.monotonic() < deadline and second.poll() is None
            time.sleep(0.1)
    finally:
        output = stop_worker(second)
    job = _job(job_id)
    assert job.status == "done", (job.error, output)
    assert job.runs == 2 and "Taking up again jobs whose worker stopped" in output
    items = db.session.scalars(select(JobItem).where(JobItem.job_id == job_id)
                               .order_by(JobItem.position)).all()
    assert [i.position for i in items] == list(range(total))
    assert [i.status for i in items] == ["imported"] * total
    assert sorted(item_name(i) for i in items[:LONG_STUDY_IMAGES]) == sorted(
        f"PACS study 1 of 2, image {n} of {LONG_STUDY_IMAGES}"
        for n in range(1, LONG_STUDY_IMAGES + 1))
    assert item_name(items[-1]) == "PACS study 2 of 2, image 1 of 1"
    assert job.progress_done == job.progress_total == total
    # Every image exactly once in the library, the study's ten in one case.
    assert db.session.scalar(select(func.count(CaseImage.id))) == total
    assert len({i.image_id for i in items}) == total
    assert len({i.case_id for i in items[:LONG_STUDY_IMAGES]}) == 1
    # The second run took the study up from its start: the images stored before the kill
    # were found again, as duplicates, and not listed twice.
    [*_, second_run] = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "cases.import").order_by(AuditEvent.id))
    assert second_run.detail["duplicates"] == before_kill
    assert not spool_dir(job_id).exists()
    assert_deidentified(app)


def test_a_job_folder_that_cannot_be_written_fails_the_job_with_the_reason(app, orthanc,
                                                                           tmp_path):
    server, studies = orthanc
    blocked = tmp_path / "a-file-not-a-folder"
    blocked.write_text("")
    app.config["JOB_SPOOL_PATH"] = str(blocked)
    job, items = import_job(dicomweb(server), [studies["dx"]])
    assert job.status == "failed" and not items
    assert job.error.startswith("The job's folder on the worker could not be written (")
    assert "check JOB_SPOOL_PATH" in job.error
    assert counts() == (0, 0)
    assert_no_residue(app)


class _CuttingProxy(BaseHTTPRequestHandler):
    """Passes DICOMweb requests on to Orthanc, but sends only the first bytes of RG1's
    retrieve answer before closing the connection, as a PACS or network dropping out."""

    server: _ProxyServer

    def do_GET(self) -> None:
        upstream = requests.get(self.server.target + self.path.removeprefix("/dicom-web"),
                                headers={"Accept": self.headers.get("Accept", "*/*")},
                                auth=(PACS_USER, PACS_PASSWORD), timeout=30)
        body = upstream.content
        if self.path == f"/dicom-web/studies/{RG1_STUDY}":
            body = body[:5 * 1024**2]  # two of its three files whole, the third cut
        self.send_response(upstream.status_code)
        self.send_header("Content-Type", upstream.headers.get("Content-Type", ""))
        self.end_headers()  # HTTP/1.0, no length: the body ends where the connection does
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _ProxyServer(ThreadingHTTPServer):
    target = ""


def test_a_retrieve_that_breaks_off_imports_nothing_of_that_study(app, orthanc):
    server, studies = orthanc
    proxy = _ProxyServer(("127.0.0.1", 0), _CuttingProxy)
    proxy.target = server.dicomweb_url
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = dicomweb(server, url=f"http://127.0.0.1:{proxy.server_port}/dicom-web")
        job, items = import_job(endpoint, [RG1_STUDY, studies["phi"]])
    finally:
        proxy.shutdown()
        thread.join(timeout=10)
    assert job.status == "done"
    assert results(items)[0] == (
        "PACS study 1 of 2", "rejected",
        "the PACS's answer broke off before its end; nothing of this study was imported")
    assert results(items)[1][:2] == ("PACS study 2 of 2, image 1 of 1", "imported")
    assert counts() == (1, 1)  # none of RG1's two whole files
    assert not spool_dir(job.id).exists()
    assert_no_residue(app, 1)
