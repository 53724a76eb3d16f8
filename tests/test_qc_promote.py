"""Promoting a discordant QC study to the case library against a real Orthanc: the typed
reference checked against the record's pseudonym, the study found on the PACS and imported
through the PACS import (de-identified, a draft case), both reads attached as candidate
reference reads that count toward no reference until a trainer accepts one; refusals with
their reasons and nothing written; audit; roles; forms submitted as the pages render them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from bs4 import BeautifulSoup
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import force_locale
from pydicom.uid import generate_uid
from sqlalchemy import func, select

from app.admin.audit_sentences import Names, action_label, describe
from app.audit.models import AuditEvent
from app.auth.models import Clinic, User
from app.auth.roles import Role
from app.cases.models import Case, ReadKind, ReferenceRead
from app.cases.reads import reference_for
from app.extensions import db
from app.jobs.models import Job
from app.jobs.pacs_import import start_pacs_import
from app.jobs.queue import BackgroundWorker
from app.pacs.models import PacsEndpoint
from app.qc.importing import add_record
from app.qc.models import QcRecord
from app.qc.promote import PromoteError, attach_reads, is_discordant, promote
from tests.conftest import login, post_hand_built
from tests.dicom_factory import PHI, cr_dataset, to_bytes
from tests.forms import submit_form, submit_html
from tests.orthanc import SHARED_DICOM, Orthanc, orthanc_server
from tests.realservers import missing
from tests.test_ingest import assert_no_residue
from tests.test_jobs import queue  # noqa: F401  (fixture: the app on a real SQLite queue)
from tests.test_pacs import assert_deidentified, dicomweb, dimse
from tests.test_qc_import import every_stored_text

PHI_ACCESSION = PHI["AccessionNumber"]
SHARED_DX = SHARED_DICOM / "1.3.6.1.4.1.11129.5.5.110503645592756492463169821050252582267888.dcm"
SHARED_DX_STUDY = "1.3.6.1.4.1.11129.5.5.112507010803284478207522016832191866964708"
TWICE_ACCESSION = "ACC-TWICE-7"
BUTTON = "Import as a draft teaching case"


@pytest.fixture(scope="module")
def orthanc() -> Iterator[Orthanc]:
    """A real CXR of the shared set (found by its UID), a CR study with planted identifiers
    (found by its accession number) and two studies sharing one accession number."""
    if not SHARED_DX.is_file():
        missing(f"real CXR DICOM file not found at {SHARED_DX}")
    with orthanc_server() as server:
        server.upload(SHARED_DX.read_bytes())
        phi = cr_dataset(seed=41, phi=True)
        phi.StudyDate = "20210405"
        server.upload(to_bytes(phi))
        for seed in (42, 43):
            server.upload(to_bytes(cr_dataset(seed=seed, StudyInstanceUID=generate_uid(),
                                              AccessionNumber=TWICE_ACCESSION,
                                              PatientID=f"TWICE-{seed}")))
        yield server


@pytest.fixture
def people(make_user: Callable[..., User], make_clinic: Callable[..., Clinic]) -> dict[str, Any]:
    clinic = make_clinic("Mathare Clinic", country="KE")
    return {
        "amina": make_user(username="amina", clinic=clinic, full_name="Amina Wanjiru"),
        "qc": make_user(Role.TRAINER, username="dr.qc", full_name="Dr Otieno QC"),
        "trainer": make_user(Role.TRAINER, username="trainer", full_name="Tess Trainer"),
    }


def qc_record(reference: str, **values: Any) -> QcRecord:
    """A record imported as the QC centre's file gives it: by default a missed TB (3b)."""
    row = {"study_reference": reference, "reader": "amina", "read_date": "2026-03-02",
           "qc_date": "2026-03-09", "qc_radiologist": "dr.qc", "grade": "3b",
           "primary_classification": "normal", "primary_tb_likelihood": "2",
           "qc_classification": "abnormal_tb", "qc_tb_likelihood": "5",
           "qc_findings": "infiltrate; cavitary_lesion", **values}
    report = add_record(row)
    assert not report.refused, report.problems
    return db.session.scalars(select(QcRecord).order_by(QcRecord.id.desc())).first()


def page_of(qc: QcRecord) -> str:
    return f"/qc/records/{qc.id}/promote"


def promote_events() -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == "qc.promote")))


def count(model: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def text_of(response: Any) -> str:
    return " ".join(BeautifulSoup(response.get_data(as_text=True), "html.parser")
                    .get_text(" ").split())


# ---- the promotion, end to end ----------------------------------------------------------------


def test_trainer_promotes_a_discordant_study_by_accession(app: Flask, client: FlaskClient,
                                                          people, orthanc) -> None:
    endpoint = dicomweb(orthanc)
    qc = qc_record(PHI_ACCESSION)
    record_id = qc.id
    login(client, "trainer")
    shown = client.get(page_of(qc))
    assert shown.status_code == 200
    html = shown.get_data(as_text=True)
    assert "Amina Wanjiru" in html and qc.study_pseudonym in html

    # Typed as the trainer has it (other letter case, spaces around): the same study.
    response = submit_html(client, html, page_of(qc), button=BUTTON,
                           fields={"reference": f"  {PHI_ACCESSION.lower()} ",
                                   "endpoint": str(endpoint.id)})
    assert response.status_code == 303, text_of(response)
    qc = db.session.get(QcRecord, record_id, populate_existing=True)
    assert qc.case_id is not None and qc.promote_job_id is not None
    job = db.session.get(Job, qc.promote_job_id)
    assert job.status == "done" and job.created_by_id == people["trainer"].id

    case = db.session.get(Case, qc.case_id)
    assert case.status == "draft" and case.source == f"PACS {endpoint.name}"
    assert all(image.deid_report for image in case.images)
    assert_deidentified(app)
    assert_no_residue(app, 1)
    # Both reads, as candidates by their authors, with the record's answers.
    candidates = {r.author_id: r for r in case.current_reads}
    assert {r.kind for r in candidates.values()} == {ReadKind.CANDIDATE.value}
    assert set(candidates) == {people["amina"].id, people["qc"].id}
    assert candidates[people["amina"].id].answers == qc.primary_read
    assert candidates[people["qc"].id].answers == qc.qc_read
    assert qc.primary_read["classification"] == "normal"
    assert qc.qc_read["findings"] == ["infiltrate", "cavitary_lesion"]
    # Neither is a reference: the case has none and cannot be published on them.
    assert reference_for(case).readers == 0

    [event] = promote_events()
    assert (event.actor_id, event.object_type, event.object_id) == (
        people["trainer"].id, "qc_record", str(record_id))
    assert event.detail == {"job": job.id, "endpoint": endpoint.name}
    assert action_label("qc.promote") == "QC study promoted to the library"
    assert describe(event, Names()) == (
        f"Started the import of the QC study from the PACS {endpoint.name} as a draft teaching "
        f"case (job {job.id}), its primary and QC reads to be attached as candidate reference "
        "reads.")
    with force_locale("fr"):
        assert describe(event, Names()).startswith(
            "A lancé l'import de l'examen du contrôle qualité depuis le PACS")
    # What was typed is kept nowhere.
    assert PHI_ACCESSION.lower() not in every_stored_text()

    # The page now links to the case, and offers no second import.
    after = client.get(page_of(qc))
    soup = BeautifulSoup(after.get_data(as_text=True), "html.parser")
    assert soup.select_one('[data-testid="promoted"] a')["href"] == f"/cases/{case.id}"
    assert soup.select_one('form[data-testid="qc-promote"]') is None


def test_a_study_is_not_promoted_twice(app: Flask, client: FlaskClient, people,
                                       orthanc) -> None:
    """The page submitted a second time (a second tab, the back button): refused with the
    link, nothing more imported or attached."""
    endpoint = dicomweb(orthanc)
    qc = qc_record(SHARED_DX_STUDY)
    login(client, "trainer")
    html = client.get(page_of(qc)).get_data(as_text=True)
    fields = {"reference": SHARED_DX_STUDY, "endpoint": str(endpoint.id)}
    first = submit_html(client, html, page_of(qc), button=BUTTON, fields=fields)
    assert first.status_code == 303
    qc = db.session.get(QcRecord, qc.id, populate_existing=True)
    state = (count(Case), count(ReferenceRead), count(Job), len(promote_events()))

    second = submit_html(client, html, page_of(qc), button=BUTTON, fields=fields)
    assert second.status_code == 409
    assert f"This QC study is already in the library as case {qc.case_id}." in text_of(second)
    assert BeautifulSoup(second.get_data(as_text=True), "html.parser").select_one(
        '[data-testid="promoted"] a')["href"] == f"/cases/{qc.case_id}"
    assert (count(Case), count(ReferenceRead), count(Job), len(promote_events())) == state
    with pytest.raises(PromoteError, match="already in the library") as refused:
        promote(qc, SHARED_DX_STUDY, endpoint, actor=people["trainer"])
    assert refused.value.status == 409

    # The job taken up again (a lost worker) runs its follow-up again: nothing is added.
    attach_reads(db.session.get(Job, qc.promote_job_id), [qc.case_id], {"record_id": qc.id})
    assert count(ReferenceRead) == state[1]


def test_promoted_by_accession_over_dimse(app: Flask, people, orthanc) -> None:
    """C-FIND by accession number and C-GET: the same draft case and candidate reads."""
    endpoint = dimse(orthanc)
    qc = qc_record(PHI_ACCESSION, grade="3a", primary_classification="abnormal_not_tb",
                   qc_classification="normal", qc_findings="")
    assert qc.primary_tb == qc.qc_tb  # discordant by its grade, not its decision
    promote(qc, PHI_ACCESSION, endpoint, actor=people["trainer"])
    qc = db.session.get(QcRecord, qc.id, populate_existing=True)
    assert qc.case_id is not None
    case = db.session.get(Case, qc.case_id)
    assert case.status == "draft" and [image.modality for image in case.images] == ["CR"]
    assert_deidentified(app)
    assert sorted(r.answers["classification"] for r in case.current_reads) == [
        "abnormal_not_tb", "normal"]


def test_a_study_already_in_the_library_gets_the_reads_on_its_case(app: Flask, people,
                                                                   orthanc) -> None:
    """Not imported twice (the ingest's duplicate check): the reads go on the case that holds
    the study, and the record links to it."""
    endpoint = dicomweb(orthanc)
    earlier = start_pacs_import(endpoint, [SHARED_DX_STUDY], actor=None).id
    [existing] = db.session.scalars(select(Case)).all()
    qc = qc_record(SHARED_DX_STUDY)
    job = promote(qc, SHARED_DX_STUDY, endpoint, actor=people["trainer"])
    assert job.id != earlier
    qc = db.session.get(QcRecord, qc.id, populate_existing=True)
    assert qc.case_id == existing.id and count(Case) == 1
    assert {(r.kind, r.author_id) for r in existing.current_reads} == {
        ("candidate", people["amina"].id), ("candidate", people["qc"].id)}


def test_while_the_import_waits_for_a_worker_it_is_not_started_again(
        app: Flask, client: FlaskClient, people, orthanc, queue) -> None:  # noqa: F811
    """On a real queue: the page shows the queued job, a second submission is refused, and
    the worker that takes the job up attaches the reads."""
    endpoint = dicomweb(orthanc)
    qc = qc_record(SHARED_DX_STUDY)
    login(client, "trainer")
    html = client.get(page_of(qc)).get_data(as_text=True)
    fields = {"reference": SHARED_DX_STUDY, "endpoint": str(endpoint.id)}
    assert submit_html(client, html, page_of(qc), button=BUTTON, fields=fields).status_code \
        == 303
    qc = db.session.get(QcRecord, qc.id, populate_existing=True)
    job_id = qc.promote_job_id
    assert db.session.get(Job, job_id).status == "queued" and qc.case_id is None
    waiting = BeautifulSoup(client.get(page_of(qc)).get_data(as_text=True), "html.parser")
    assert waiting.select_one('[data-testid="promoting"] a')["href"] == f"/jobs/{job_id}"
    again = submit_html(client, html, page_of(qc), button=BUTTON, fields=fields)
    assert again.status_code == 409
    assert f"This QC study is being imported from the PACS (job {job_id})." in text_of(again)
    assert count(Job) == 1 and len(promote_events()) == 1

    worker = BackgroundWorker(app).start()
    try:
        deadline = time.monotonic() + 60
        while db.session.get(Job, job_id, populate_existing=True).status != "done":
            assert time.monotonic() < deadline, "the worker did not finish the import"
            time.sleep(0.2)
    finally:
        worker.stop()
    qc = db.session.get(QcRecord, qc.id, populate_existing=True)
    assert qc.case_id is not None and count(ReferenceRead) == 2


# ---- refusals -------------------------------------------------------------------------------


def test_a_reference_that_is_not_the_records_is_refused(app: Flask, client: FlaskClient,
                                                        people, orthanc) -> None:
    endpoint = dicomweb(orthanc)
    qc = qc_record(PHI_ACCESSION)
    login(client, "trainer")
    # Another study the PACS holds: it exists, but it is not this record's.
    response = submit_form(client, page_of(qc), button=BUTTON, fields={"reference": SHARED_DX_STUDY,
                                                        "endpoint": str(endpoint.id)})
    assert response.status_code == 400
    assert ("This reference is not the one of this QC record's study: type the Study Instance "
            "UID or accession number the QC import was given.") in text_of(response)
    # Not shown back, nothing queued, audited or linked.
    assert SHARED_DX_STUDY not in response.get_data(as_text=True)
    assert (count(Job), count(Case), promote_events()) == (0, 0, [])
    assert db.session.get(QcRecord, qc.id, populate_existing=True).promote_job_id is None

    empty = submit_form(client, page_of(qc), button=BUTTON, fields={"reference": " ",
                                                     "endpoint": str(endpoint.id)})
    assert empty.status_code == 400 and count(Job) == 0


def test_a_reference_the_pacs_does_not_hold_or_holds_twice_is_refused(
        app: Flask, client: FlaskClient, people, orthanc) -> None:
    endpoint = dicomweb(orthanc)
    login(client, "trainer")
    for reference, reason in (
            ("ACC-NOT-ON-PACS", f"The PACS {endpoint.name} holds no study with this reference."),
            (TWICE_ACCESSION, f"The PACS {endpoint.name} holds 2 studies with this accession "
                              "number: type the study's Study Instance UID instead.")):
        qc = qc_record(reference)
        response = submit_form(client, page_of(qc), button=BUTTON, fields={"reference": reference,
                                                            "endpoint": str(endpoint.id)})
        assert response.status_code == 400
        assert reason in text_of(response)
    assert (count(Job), count(Case), promote_events()) == (0, 0, [])


def test_a_pacs_that_cannot_be_used_is_the_gateways_failure(app: Flask, people,
                                                           orthanc) -> None:
    endpoint = dicomweb(orthanc, password="not-the-password", name="Wrong password")
    qc = qc_record(PHI_ACCESSION)
    with pytest.raises(PromoteError, match="the PACS could not be searched") as refused:
        promote(qc, PHI_ACCESSION, endpoint, actor=people["trainer"])
    assert refused.value.status == 502
    assert (count(Job), promote_events()) == (0, [])


def test_a_record_that_is_not_discordant_is_refused(app: Flask, client: FlaskClient, people,
                                                    orthanc) -> None:
    endpoint = dicomweb(orthanc)
    concordant = qc_record(PHI_ACCESSION, grade="2a", primary_classification="abnormal_not_tb",
                           qc_classification="normal", qc_findings="")
    login(client, "trainer")
    page = client.get(page_of(concordant))
    assert page.status_code == 200
    assert "Only a discordant QC study can be promoted" in text_of(page)
    assert BeautifulSoup(page.get_data(as_text=True), "html.parser").select_one(
        'form[data-testid="qc-promote"]') is None
    with pytest.raises(PromoteError, match="only a discordant QC study can be promoted"):
        promote(concordant, PHI_ACCESSION, endpoint, actor=people["trainer"])
    assert (count(Job), promote_events()) == (0, [])


@pytest.mark.parametrize(("grade", "primary_tb", "qc_tb", "discordant"), [
    ("1", False, False, False), ("2a", True, True, False), ("2a", None, False, False),
    ("2b", False, True, True), ("3a", False, False, True), ("3b", True, False, True),
    ("1", True, False, True),  # decisions that differ, whatever the grade says
])
def test_which_records_are_discordant(grade: str, primary_tb: bool | None,
                                      qc_tb: bool | None, discordant: bool) -> None:
    assert is_discordant(QcRecord(grade=grade, primary_tb=primary_tb, qc_tb=qc_tb)) \
        is discordant


def test_an_import_that_made_no_case_leaves_the_record_to_promote_again(
        app: Flask, client: FlaskClient, people, orthanc) -> None:
    endpoint = dicomweb(orthanc)
    qc = qc_record(SHARED_DX_STUDY)
    app.config["PACS_STUDY_MAX_BYTES"] = 1024  # the study is refused whole by the job
    login(client, "trainer")
    fields = {"reference": SHARED_DX_STUDY, "endpoint": str(endpoint.id)}
    assert submit_form(client, page_of(qc), button=BUTTON, fields=fields).status_code == 303
    qc = db.session.get(QcRecord, qc.id, populate_existing=True)
    job_id = qc.promote_job_id
    assert qc.case_id is None and job_id is not None and count(ReferenceRead) == 0
    again = client.get(page_of(qc))
    assert "made no case: its report says why." in text_of(again)
    assert BeautifulSoup(again.get_data(as_text=True), "html.parser").find(
        "a", string=f"job {job_id}")["href"] == f"/jobs/{job_id}"

    app.config["PACS_STUDY_MAX_BYTES"] = 1024**3
    assert submit_form(client, page_of(qc), button=BUTTON, fields=fields).status_code == 303
    qc = db.session.get(QcRecord, qc.id, populate_existing=True)
    assert qc.case_id is not None and qc.promote_job_id != job_id
    assert count(ReferenceRead) == 2


# ---- who ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "status"), [
    (Role.TRAINER, 200), (Role.ADMIN, 200), (Role.PROGRAMME_LEAD, 403),
    (Role.TRAINEE_RADIOLOGIST, 403), (Role.TRAINEE_RADIOGRAPHER, 403)])
def test_who_may_promote(app: Flask, client: FlaskClient, login_as, people, role: Role,
                         status: int) -> None:
    qc = qc_record("ACC-ROLES-1")
    login_as(role)
    assert client.get(page_of(qc)).status_code == status
    if status == 403:  # an attacker's request with a valid token: refused, nothing queued
        refused = post_hand_built(client, page_of(qc), {"reference": "ACC-ROLES-1"},
                                  page="/training/")
        assert refused.status_code == 403
    assert (count(Job), promote_events()) == (0, [])


def test_signed_out_and_unknown_records(app: Flask, client: FlaskClient, people) -> None:
    qc = qc_record("ACC-ROLES-2")
    assert client.get(page_of(qc)).status_code == 302
    login(client, "trainer")
    missing = client.get("/qc/records/999999/promote")
    assert missing.status_code == 404 and "There is no QC record 999999." in text_of(missing)


# ---- the case page: whose each candidate is, and accepting one -----------------------------


def test_the_case_page_says_whose_each_candidate_is_and_a_trainer_accepts_one(
        app: Flask, client: FlaskClient, people, orthanc) -> None:
    endpoint = dicomweb(orthanc)
    qc = qc_record(SHARED_DX_STUDY)
    promote(qc, SHARED_DX_STUDY, endpoint, actor=people["trainer"])
    qc = db.session.get(QcRecord, qc.id, populate_existing=True)
    login(client, "trainer")
    case_page = client.get(f"/cases/{qc.case_id}")
    soup = BeautifulSoup(case_page.get_data(as_text=True), "html.parser")
    section = soup.select_one('[data-testid="candidate-reads"]')
    words = " ".join(section.get_text(" ").split())
    assert "Neither is a reference read" in words
    primary = " ".join(section.select_one('[data-testid="candidate-primary"]').get_text(" ")
                       .split())
    assert "Primary read by Amina Wanjiru (the clinic reader whose live read was re-read)" \
        in primary and "Normal" in primary
    qc_read = " ".join(section.select_one('[data-testid="candidate-qc"]').get_text(" ").split())
    assert "QC read by Dr Otieno QC (the QC radiologist)" in qc_read
    assert "Abnormal \u2013 suggestive of TB" in qc_read
    assert "No reference read yet." in " ".join(soup.get_text(" ").split())

    # Accepting the QC read: the read page opens with its answers; the trainer saves it.
    link = section.select_one('[data-testid="candidate-qc"] a')["href"]
    read_page = client.get(link)
    assert read_page.status_code == 200
    assert "This form starts from the candidate read by Dr Otieno QC" in text_of(read_page)
    saved = submit_html(client, read_page.get_data(as_text=True), link,
                        selector="form.reference-read-form")
    assert saved.status_code == 302, text_of(saved)
    case = db.session.get(Case, qc.case_id, populate_existing=True)
    reference = reference_for(case)
    assert reference.readers == 1
    assert reference.answers["classification"] == "abnormal_tb"
    assert reference.answers["findings"] == ["infiltrate", "cavitary_lesion"]
    mine = [r for r in case.current_reads if r.kind == ReadKind.EXPERT.value]
    assert [r.author_id for r in mine] == [people["trainer"].id]


def test_endpoint_choices_are_the_configured_pacs(app: Flask, client: FlaskClient,
                                                  people) -> None:
    qc = qc_record("ACC-NO-PACS")
    login(client, "trainer")
    assert db.session.scalar(select(func.count(PacsEndpoint.id))) == 0
    assert "No PACS is configured yet" in text_of(client.get(page_of(qc)))
