"""Case library pages: upload, per-file report, images, pixel review, reads, publishing."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.roles import Role
from app.cases import pixels
from app.cases.models import Case, CaseImage, CaseStatus, ReferenceRead
from app.extensions import db
from tests.conftest import post_hand_built
from tests.dicom_factory import cr_dataset, to_bytes
from tests.forms import FormNotFound, submit_form


def upload(client, *files: tuple[bytes, str], **fields):
    return submit_form(client, "/cases/upload", button="Import", follow_redirects=True, fields={
        **fields, "files": [(io.BytesIO(data), name) for data, name in files]})


@pytest.fixture
def trainer(login_as):
    return login_as(Role.TRAINER)


@pytest.fixture
def case(app, client, trainer) -> Case:
    response = upload(client, (to_bytes(cr_dataset(seed=1, rows=80, columns=60)), "a.dcm"))
    assert response.status_code == 200
    return db.session.scalars(select(Case)).one()


def test_upload_mixed_files_and_zip_gives_a_report_per_file(client, trainer):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("good.dcm", to_bytes(cr_dataset(seed=2)))
        zf.writestr("../evil.dcm", to_bytes(cr_dataset(seed=3)))
        zf.writestr("mr.dcm", to_bytes(cr_dataset(seed=4, modality="MR")))
    response = upload(client, (to_bytes(cr_dataset(seed=5)), "one.dcm"),
                      (b"not dicom at all", "readme.txt"), (archive.getvalue(), "batch.zip"))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "2 imported · 0 already in the library · 3 refused" in html
    assert html.count('data-testid="file-result"') == 5
    # DICOM values are marked not for translation inside the sentence: read the page's text.
    assert "modality MR is not a chest radiograph" in BeautifulSoup(html, "html.parser").get_text()
    assert "path with &#39;..&#39; in the archive" in html
    assert "De-identification:" in html


def test_upload_of_only_bad_files_are_refused_with_reasons_on_the_job_page(client, trainer):
    response = upload(client, (b"nope", "x.dcm"))
    assert response.status_code == 200
    assert "not a DICOM file" in response.get_data(as_text=True)


def test_upload_needs_a_file_and_a_csrf_token(client, trainer):
    response = upload(client, source="x")
    assert response.status_code == 400
    assert "This field is required." in response.get_data(as_text=True)
    # Deliberately hand-built: a cross-site upload without the form's CSRF token.
    bare = client.post("/cases/upload", data={"files": (io.BytesIO(b"x"), "x.dcm")},
                       content_type="multipart/form-data")
    assert bare.status_code == 400


def test_upload_over_the_size_limit_is_413_with_a_message(app, client, trainer):
    app.config["CASE_UPLOAD_MAX_BYTES"] = 10_000
    response = upload(client, (b"x" * 50_000, "big.dcm"))
    assert response.status_code == 413
    assert "larger than the limit" in response.get_data(as_text=True)
    assert db.session.scalars(select(Case)).all() == []


def test_trainees_cannot_upload_or_browse(client, login_as):
    login_as(Role.TRAINEE_RADIOLOGIST)
    assert client.get("/cases/upload").status_code == 403
    assert client.get("/cases/").status_code == 403


def test_image_files_are_cached_by_version_and_private(app, client, case, make_user):
    image = case.images[0]
    url = f"/cases/images/{image.id}/preview?v={image.version}"
    first = client.get(url)
    assert first.status_code == 200 and first.mimetype == "image/jpeg"
    assert first.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    etag = first.headers["ETag"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert client.get(f"/cases/images/{image.id}/exact").headers["Cache-Control"] == (
        "private, no-cache")
    full = client.get(f"/cases/images/{image.id}/exact?v=1")
    assert full.mimetype == "image/jls" and full.data[:2] == b"\xff\xd8"  # JPEG-LS
    assert np.array_equal(
        pixels.decode_exact16(full.data),
        cr_dataset(seed=1, rows=80, columns=60).pixel_array,
    )
    assert client.get(f"/cases/images/{image.id}/dicom").status_code == 404

    trainee = app.test_client()
    from tests.conftest import login

    user = make_user(Role.TRAINEE_RADIOLOGIST)
    login(trainee, user.username)
    assert trainee.get(url).status_code == 404  # a draft case: not for trainees
    assert app.test_client().get(url).status_code in (302, 401)


def test_library_filters_and_pagination(app, client, trainer):
    app.config["CASES_PAGE_SIZE"] = 2
    for seed in range(3):
        upload(client, (to_bytes(cr_dataset(seed=100 + seed)), f"{seed}.dcm"))
    page = client.get("/cases/").get_data(as_text=True)
    assert "3 cases · page 1 of 2" in page
    assert "3 cases · page 2 of 2" in client.get("/cases/?page=2").get_data(as_text=True)
    first = db.session.scalars(select(Case).order_by(Case.id)).first()
    saved = submit_form(client, f"/cases/{first.id}", button="Save", fields={
        "source": "nlm", "tags": "Cavity, upper zone", "difficulty": "hard"})
    assert saved.status_code == 302
    filtered = client.get("/cases/?tag=cavity&difficulty=hard").get_data(as_text=True)
    assert "1 case ·" in filtered and f"Case {first.id}</a>" in filtered
    assert "0 cases" in client.get("/cases/?status=published").get_data(as_text=True)


def test_case_details_are_saved_and_audited(client, case):
    response = submit_form(client, f"/cases/{case.id}", button="Save", fields={
        "difficulty": "moderate", "tags": "effusion, Effusion, left",
        "teaching_notes": "Blunted left costophrenic angle.", "source": "QC centre",
        "licence": "CC BY 4.0", "exam_bank": True})
    assert response.status_code == 302
    db.session.expire_all()
    saved = db.session.get(Case, case.id)
    assert saved.tags == ["effusion", "left"]
    assert (saved.difficulty, saved.exam_bank) == ("moderate", True)
    with pytest.raises(FormNotFound):
        submit_form(client, f"/cases/{case.id}", button="Save",
                    fields={"difficulty": "impossible"})
    # Deliberately hand-built: a difficulty the form does not offer.
    bad = post_hand_built(client, f"/cases/{case.id}", {"difficulty": "impossible",
                                                        "source": "x"})
    assert bad.status_code == 400
    empty_source = submit_form(client, f"/cases/{case.id}", button="Save", fields={"source": ""})
    assert empty_source.status_code == 400


def test_redaction_burns_into_stored_pixels_and_is_audited(app, client, case):
    image = case.images[0]
    # The page's script writes the drawn rectangles into the form's hidden field.
    response = submit_form(client, f"/cases/{case.id}/review", button="Burn in permanently",
                           fields={"rectangles": "0,0,10,5;50,70,100,100"})
    assert response.status_code == 302
    db.session.expire_all()
    image = db.session.get(CaseImage, image.id)
    assert image.version == 2
    full = client.get(f"/cases/images/{image.id}/exact?v=2").data
    values = pixels.decode_exact16(full)
    original = cr_dataset(seed=1, rows=80, columns=60).pixel_array
    background = int(values[0, 0])
    assert (values[0:5, 0:10] == background).all()
    assert (values[70:80, 50:60] == background).all()  # clipped at the image edge
    assert np.array_equal(values[10:60, 12:40], original[10:60, 12:40])  # untouched elsewhere
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "case.redact")).one()
    assert event.detail["rectangles"] == [[0, 0, 10, 5], [50, 70, 100, 100]]


@pytest.mark.parametrize("rectangles", ["", "1,2,3", "a,b,c,d", "0,0,-5,5"])
def test_bad_redaction_rectangles_are_400(client, case, rectangles):
    image = case.images[0]
    if not rectangles:  # "Redact" pressed before drawing anything
        response = submit_form(client, f"/cases/{case.id}/review", button="Burn in permanently")
    else:
        # Deliberately hand-built: rectangles the page's script never writes (tampered).
        response = post_hand_built(client, f"/cases/images/{image.id}/redact",
                                   {"rectangles": rectangles, "confirm": "yes"},
                                   page=f"/cases/{case.id}/review")
    assert response.status_code == 400
    db.session.expire_all()
    assert db.session.get(CaseImage, image.id).version == 1


def test_redaction_without_the_confirmation_changes_nothing(client, case):
    image = case.images[0]
    page = client.get(f"/cases/{case.id}/review").get_data(as_text=True)
    # The page offers exactly one way to apply: the dialog's button, which says it is final.
    assert "This cannot be undone" in page
    with pytest.raises(FormNotFound):
        submit_form(client, f"/cases/{case.id}/review", button="Redact")
    # Deliberately hand-built: a post that skipped the confirmation dialog.
    response = post_hand_built(client, f"/cases/images/{image.id}/redact",
                               {"rectangles": "0,0,10,5"}, page=f"/cases/{case.id}/review")
    assert response.status_code == 400
    assert "confirm it in the dialog" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(CaseImage, image.id).version == 1


def _write_read(client, case, **answers):
    return submit_form(client, f"/cases/{case.id}/read?scheme=tb_screening", button="Save read",
                       fields=answers)


def test_publishing_needs_pixel_review_and_a_reference_read(client, case, login_as):
    def press(button: str):
        return submit_form(client, f"/cases/{case.id}", button=button)

    def publish():
        return press("Publish")

    assert press("Submit for review").status_code == 302
    no_read = publish()
    assert no_read.status_code == 409
    assert "needs a reference read" in no_read.get_data(as_text=True)
    assert _write_read(client, case, classification="abnormal_tb", tb_likelihood="5",
                       findings=["cavitary_lesion"]).status_code == 302
    db.session.expire_all()
    case = db.session.get(Case, case.id)
    case.pixel_review_needed = True
    db.session.commit()
    assert "complete the pixel review" in publish().get_data(as_text=True)
    submit_form(client, f"/cases/{case.id}/review",
                button="The images carry no identifying text: record the review")
    assert press("Back to draft").status_code == 302
    assert press("Submit for review").status_code == 302
    published = publish()
    assert published.status_code == 302
    db.session.expire_all()
    assert db.session.get(Case, case.id).status == CaseStatus.PUBLISHED.value
    with pytest.raises(FormNotFound):  # a published case offers no "Back to draft"
        press("Back to draft")
    # Deliberately hand-built: transitions and statuses the page does not offer, forged.
    bad = post_hand_built(client, f"/cases/{case.id}/status", {"status": "draft"},
                          page=f"/cases/{case.id}")
    assert bad.status_code == 409  # published -> draft is not a transition
    unknown = post_hand_built(client, f"/cases/{case.id}/status", {"status": "lost"},
                              page=f"/cases/{case.id}")
    assert unknown.status_code == 400
    assert "Unknown case status" in unknown.get_data(as_text=True)
    assert press("Retire").status_code == 302
    db.session.expire_all()
    assert db.session.get(Case, case.id).status == CaseStatus.RETIRED.value


def test_read_form_validation_and_version_history(client, case):
    missing = _write_read(client, case, classification="normal")
    assert missing.status_code == 400
    assert "&#39;TB likelihood&#39; needs an answer" in missing.get_data(as_text=True)
    with pytest.raises(FormNotFound):  # the scale offers 1 to 5
        _write_read(client, case, classification="normal", tb_likelihood="9")
    # Deliberately hand-built: a likelihood outside the scale the form offers.
    out_of_range = post_hand_built(
        client, f"/cases/{case.id}/read?scheme=tb_screening",
        {"scheme": "tb_screening", "classification": "normal", "tb_likelihood": "9"},
        page=f"/cases/{case.id}/read?scheme=tb_screening")
    assert out_of_range.status_code == 400
    assert _write_read(client, case, classification="normal", tb_likelihood="1").status_code == 302
    assert _write_read(client, case, classification="abnormal_tb",
                       tb_likelihood="4").status_code == 302
    reads = db.session.scalars(select(ReferenceRead).order_by(ReferenceRead.id)).all()
    assert [(r.version, r.current) for r in reads] == [(1, False), (2, True)]
    assert reads[0].answers["classification"] == "normal"  # history kept


def test_consensus_of_experts_with_tie_and_adjudication(app, client, case, make_user):
    from tests.conftest import login

    _write_read(client, case, classification="abnormal_tb", tb_likelihood="5",
                findings=["cavitary_lesion", "nodule"])
    second = app.test_client()
    login(second, make_user(Role.TRAINER).username)
    _write_read(second, case, classification="abnormal_tb", tb_likelihood="4",
                findings=["cavitary_lesion"])
    page = client.get(f"/cases/{case.id}").get_data(as_text=True)
    assert "consensus of 2 expert reads" in page
    assert "tied on: tb_likelihood, findings:nodule" in page
    response = submit_form(client, f"/cases/{case.id}", button="Save adjudication",
                           fields={"tb_likelihood": "5", "findings": ["cavitary_lesion"]})
    assert response.status_code == 302
    from app.cases.reads import reference_for

    db.session.expire_all()
    reference = reference_for(db.session.get(Case, case.id))
    assert reference.open_ties == ()
    assert reference.answers["tb_likelihood"] == 5
    assert reference.answers["findings"] == ["cavitary_lesion"]
    assert reference.tb_positive is True
    with pytest.raises(FormNotFound):  # nothing tied: the page offers no adjudication
        submit_form(client, f"/cases/{case.id}", button="Save adjudication")
    # Deliberately hand-built: a replayed adjudication the page no longer offers.
    nothing = post_hand_built(client, f"/cases/{case.id}/adjudicate", {},
                              page=f"/cases/{case.id}")
    assert nothing.status_code == 409


def test_a_second_reader_must_use_the_same_scheme(app, client, case, make_user):
    from tests.conftest import login

    _write_read(client, case, classification="normal", tb_likelihood="1")
    second = app.test_client()
    login(second, make_user(Role.TRAINER).username)
    page = second.get(f"/cases/{case.id}/read?scheme=ds3030").get_data(as_text=True)
    assert "every diagnostic read of this case uses it" in page and "TB likelihood" in page


def test_stored_files_are_only_the_expected_ones(app, case):
    folder = Path(app.config["IMAGE_STORAGE_PATH"])
    files = sorted(p.name for p in folder.rglob("*") if p.is_file())
    assert files == ["approx16.j2c", "display.jpg", "exact16.jls", "image.dcm", "preview.jpg",
                     "thumbnail.jpg"]


def test_library_filters_on_the_reference_read(client, case, trainer):
    other = upload(client, (to_bytes(cr_dataset(seed=7)), "b.dcm"))
    assert other.status_code == 200
    _write_read(client, case, classification="abnormal_tb", tb_likelihood="5",
                findings=["cavitary_lesion", "pleural_effusion"])
    hit = client.get("/cases/?finding=cavitary_lesion").get_data(as_text=True)
    assert "1 case ·" in hit and f"Case {case.id}</a>" in hit
    assert "1 case ·" in client.get("/cases/?tb=yes&classification=abnormal_tb").get_data(
        as_text=True)
    assert "0 cases" in client.get("/cases/?finding=miliary").get_data(as_text=True)
    # A new version of the read moves the case between filters (the form shows the earlier
    # answers: the reader unticks the findings).
    _write_read(client, case, classification="normal", tb_likelihood="1", findings=None)
    assert "0 cases" in client.get("/cases/?finding=cavitary_lesion").get_data(as_text=True)
    assert "0 cases" in client.get("/cases/?tb=yes").get_data(as_text=True)


def test_library_page_query_count_does_not_grow_with_cases(app, client, trainer):
    from sqlalchemy import event

    for seed in range(6):
        upload(client, (to_bytes(cr_dataset(seed=200 + seed, rows=16, columns=16)), f"{seed}.dcm"))

    def queries_for_page() -> int:
        statements: list[str] = []

        def count(*args, **kwargs):
            statements.append(args[2])

        engine = db.engine
        event.listen(engine, "before_cursor_execute", count)
        try:
            assert client.get("/cases/").status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(statements)

    app.config["CASES_PAGE_SIZE"] = 2
    small = queries_for_page()
    app.config["CASES_PAGE_SIZE"] = 6
    assert queries_for_page() == small


NEW_SCHEME = """{"key": "simple_normal", "version": 1, "name": "Normal or not",
 "items": [{"key": "verdict", "type": "choice", "label": "Verdict", "required": true,
            "options": [{"value": "normal", "label": "Normal"},
                        {"value": "abnormal", "label": "Abnormal"}]}],
 "tb_decision": {"item": "verdict", "positive_values": ["abnormal"]}}"""


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"key": "x", "name": "X", "items": []}', "non-empty list of"),
        (NEW_SCHEME.replace("simple_normal", "ds3030"), "built-in scheme"),
        (NEW_SCHEME.replace('"choice"', '"slider"'), "must be one of"),
        (NEW_SCHEME.replace('"verdict", "positive', '"nothing", "positive'), "must name an item"),
    ],
)
def test_bad_scheme_definitions_are_400_with_the_reason(client, trainer, definition, message):
    response = submit_form(client, "/cases/schemes", button="Add scheme",
                           fields={"definition": definition})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True).replace("&#39;", "'")


def test_trainer_adds_a_scheme_and_reads_with_it(client, case):
    def add(definition: str):
        return submit_form(client, "/cases/schemes", button="Add scheme",
                           fields={"definition": definition})

    response = add(NEW_SCHEME)
    assert response.status_code == 200
    assert "Scheme Normal or not (simple_normal@1) added." in response.get_data(as_text=True)
    again = add(NEW_SCHEME)
    assert "exists already" in again.get_data(as_text=True)
    chosen = submit_form(client, f"/cases/{case.id}/read", button="Use this scheme",
                         fields={"scheme": "simple_normal"})
    assert chosen.status_code == 200 and "Verdict" in chosen.get_data(as_text=True)
    read = submit_form(client, f"/cases/{case.id}/read?scheme=simple_normal",
                       button="Save read", fields={"verdict": "abnormal"})
    assert read.status_code == 302
    from app.cases.reads import reference_for

    db.session.expire_all()
    assert reference_for(db.session.get(Case, case.id)).tb_positive is True


def test_cli_adds_and_lists_schemes(app, tmp_path):
    path = tmp_path / "scheme.json"
    path.write_text(NEW_SCHEME)
    runner = app.test_cli_runner()
    assert "added scheme simple_normal@1" in runner.invoke(args=["cases", "add-scheme",
                                                                 str(path)]).output
    listed = runner.invoke(args=["cases", "schemes"]).output
    assert "simple_normal@1" in listed and "ds3030@1" in listed
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    result = runner.invoke(args=["cases", "add-scheme", str(bad)])
    assert result.exit_code != 0 and "a scheme is a JSON object" in result.output


def test_detail_form_shows_the_saved_values(client, case):
    submit_form(client, f"/cases/{case.id}", button="Save", fields={
        "source": "QC centre", "tags": "cavity, apex", "difficulty": "hard"})
    page = client.get(f"/cases/{case.id}").get_data(as_text=True)
    assert 'value="apex, cavity"' in page
    assert '<option selected value="hard">' in page
